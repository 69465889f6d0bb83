"""A pod's service account as its processes can use it: the in-cluster config, by file paths.

In a container, a client finds the API server through KUBERNETES_SERVICE_HOST and _PORT, and its
credentials at /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}: the
projected volume the API server's ServiceAccount admission adds to every pod that does not opt
out. Processes share the host's filesystem, so that fixed path cannot hold each pod's own token.
Instead the agent fills a projected volume's folder as the kubelet fills the volume (a token
requested for the pod's ServiceAccount and bound to the pod, ConfigMap and Secret keys, downward
API fields), and a container that mounts one at the in-cluster path gets KUBECONFIG: a file in
that folder naming the API server, the CA and the token file. kubectl, client-go,
kubernetes_asyncio and kopf all read KUBECONFIG, so the process acts as the pod's
ServiceAccount, with exactly its RBAC.

The token is requested once, at the pod's start, for the source's expirationSeconds, and is not
refreshed: for the admission's 3607 s the API server issues a token bound to the pod that lasts
up to a year (its --service-account-extend-token-expiration, on by default).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ferry_local.agent.env import ContainerConfigError, Lookup, field_value
from ferry_local.agent.volumes import Mount, PodFolder, source_items, write_volumes

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
KUBECONFIG_FILE = "kubeconfig"
CA_FILE = "ca.crt"
DEFAULT_TOKEN_SECONDS = 3600

# (pod, audience or None for the API server's own, seconds) -> a token bound to the pod.
TokenIssuer = Callable[[Mapping[str, Any], str | None, int], Awaitable[str]]


@dataclass(frozen=True)
class ApiAccess:
    """Where pods reach the API server, and how their tokens are issued."""

    server: str
    """The API server's URL, https://127.0.0.1:<port> in the local environment."""
    issue_token: TokenIssuer


def kubeconfig(server: str, token: Path, ca: Path | None, namespace: str) -> dict[str, Any]:
    """The in-cluster config as a kubeconfig: the token file, the CA if the volume holds one, and
    the pod's namespace as the default."""
    cluster: dict[str, str] = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": cluster}],
        "users": [{"name": "service-account", "user": {"tokenFile": str(token)}}],
        "contexts": [
            {
                "name": "in-cluster",
                "context": {
                    "cluster": "in-cluster",
                    "user": "service-account",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "in-cluster",
    }


def in_cluster_env(server: str, mounts: Iterable[Mount]) -> dict[str, str]:
    """What a container that mounts a service account folder at the in-cluster path gets."""
    for mount in mounts:
        if mount.mount_path.rstrip("/") == SERVICE_ACCOUNT_DIR:
            address = urlsplit(server)
            return {
                "KUBECONFIG": str(mount.host_path / KUBECONFIG_FILE),
                "KUBERNETES_SERVICE_HOST": address.hostname or "",
                "KUBERNETES_SERVICE_PORT": str(address.port or 443),
            }
    return {}


async def _source_files(
    pod: Mapping[str, Any], source: Mapping[str, Any], lookup: Lookup, access: ApiAccess
) -> dict[str, str]:
    """relative path -> content of one source of a projected volume."""
    namespace = pod["metadata"]["namespace"]
    if (token := source.get("serviceAccountToken")) is not None:
        seconds = int(token.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
        return {token["path"]: await access.issue_token(pod, token.get("audience"), seconds)}
    for kind, field in (("ConfigMap", "configMap"), ("Secret", "secret")):
        if (ref := source.get(field)) is not None:
            name = ref.get("name", "")
            return source_items(kind, name, ref, await lookup(kind, namespace, name))
    if (downward := source.get("downwardAPI")) is not None:
        files = {}
        for item in downward.get("items") or ():
            if "fieldRef" not in item:
                raise ContainerConfigError(
                    f"downwardAPI item {item.get('path')!r}: only fieldRef is supported by the "
                    "local node agent"
                )
            files[item["path"]] = field_value(pod, item["fieldRef"]["fieldPath"], "", "")
        return files
    raise ContainerConfigError(
        f"projected source {sorted(source)} is not supported by the local node agent"
    )


async def fill_projected(
    folder: PodFolder, pod: Mapping[str, Any], lookup: Lookup, access: ApiAccess
) -> None:
    """Write each projected volume's files, and a kubeconfig beside a service account token."""
    files: dict[str, dict[str, str]] = {}
    for volume in pod["spec"].get("volumes") or ():
        if (projected := volume.get("projected")) is None:
            continue
        contents: dict[str, str] = {}
        sources = projected.get("sources") or ()
        for source in sources:
            contents.update(await _source_files(pod, source, lookup, access))
        tokens = [s["serviceAccountToken"]["path"] for s in sources if "serviceAccountToken" in s]
        if tokens:
            where = folder.volume(volume["name"]).resolve()
            ca = where / CA_FILE if CA_FILE in contents else None
            config = kubeconfig(access.server, where / tokens[0], ca, pod["metadata"]["namespace"])
            contents[KUBECONFIG_FILE] = yaml.safe_dump(config, sort_keys=False)
        files[volume["name"]] = contents
    write_volumes(folder, files)
