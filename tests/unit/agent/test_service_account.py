"""A pod's service account volume is filled as the kubelet fills it, and a container that mounts
it at the in-cluster path gets a KUBECONFIG that uses it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry_local.agent.env import ContainerConfigError
from ferry_local.agent.serviceaccount import (
    KUBECONFIG_FILE,
    SERVICE_ACCOUNT_DIR,
    ApiAccess,
    fill_projected,
    in_cluster_env,
)
from ferry_local.agent.volumes import Mount, PodFolder

SERVER = "https://127.0.0.1:41041"
CA = "-----BEGIN CERTIFICATE-----\n...\n"
# What the ServiceAccount admission adds to a pod that does not opt out.
API_ACCESS = {
    "name": "kube-api-access-x1",
    "projected": {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    },
}
POD = {
    "metadata": {"name": "ferry-0", "namespace": "ferry-system", "uid": "u1"},
    "spec": {"serviceAccountName": "ferry", "volumes": [API_ACCESS]},
}


async def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
    return {"ca.crt": CA} if (kind, name) == ("ConfigMap", "kube-root-ca.crt") else None


def access(issued: list[tuple[str, str | None, int]]) -> ApiAccess:
    async def issue(pod: Mapping[str, Any], audience: str | None, seconds: int) -> str:
        issued.append((pod["spec"]["serviceAccountName"], audience, seconds))
        return "token-of-ferry"

    return ApiAccess(SERVER, issue)


async def test_the_api_access_volume_holds_token_ca_namespace_and_a_kubeconfig(
    tmp_path: Path,
) -> None:
    issued: list[tuple[str, str | None, int]] = []
    folder = PodFolder(tmp_path)
    await fill_projected(folder, POD, lookup, access(issued))
    volume = folder.volume("kube-api-access-x1").resolve()
    assert issued == [("ferry", None, 3607)]
    assert (volume / "token").read_text() == "token-of-ferry"
    assert (volume / "ca.crt").read_text() == CA
    assert (volume / "namespace").read_text() == "ferry-system"
    config = yaml.safe_load((volume / KUBECONFIG_FILE).read_text())
    (cluster,) = config["clusters"]
    assert cluster["cluster"] == {"server": SERVER, "certificate-authority": str(volume / "ca.crt")}
    (user,) = config["users"]
    assert user["user"] == {"tokenFile": str(volume / "token")}
    assert config["contexts"][0]["context"]["namespace"] == "ferry-system"


async def test_a_token_for_another_audience_is_asked_for_that_audience(tmp_path: Path) -> None:
    issued: list[tuple[str, str | None, int]] = []
    volume = {
        "name": "vault",
        "projected": {"sources": [{"serviceAccountToken": {"audience": "vault", "path": "jwt"}}]},
    }
    pod = {**POD, "spec": {"serviceAccountName": "ferry", "volumes": [volume]}}
    folder = PodFolder(tmp_path)
    await fill_projected(folder, pod, lookup, access(issued))
    assert issued == [("ferry", "vault", 3600)]
    config = yaml.safe_load((folder.volume("vault") / KUBECONFIG_FILE).read_text())
    assert "certificate-authority" not in config["clusters"][0]["cluster"]
    assert config["users"][0]["user"]["tokenFile"].endswith("/vault/jwt")


async def test_a_missing_ca_config_map_makes_the_pod_wait_with_the_reason(tmp_path: Path) -> None:
    async def nothing(kind: str, namespace: str, name: str) -> dict[str, str] | None:
        return None

    with pytest.raises(
        ContainerConfigError, match=re.escape('configmap "kube-root-ca.crt" not found')
    ):
        await fill_projected(PodFolder(tmp_path), POD, nothing, access([]))


async def test_a_source_the_agent_cannot_fill_is_named(tmp_path: Path) -> None:
    volume = {"name": "bundle", "projected": {"sources": [{"clusterTrustBundle": {"path": "b"}}]}}
    pod = {**POD, "spec": {"volumes": [volume]}}
    with pytest.raises(ContainerConfigError, match="clusterTrustBundle"):
        await fill_projected(PodFolder(tmp_path), pod, lookup, access([]))


def test_only_a_container_mounting_the_in_cluster_path_gets_the_in_cluster_config() -> None:
    host = Path("/state/pods/p/volumes/kube-api-access-x1")
    env = in_cluster_env(SERVER, [Mount("kube-api-access-x1", SERVICE_ACCOUNT_DIR, host)])
    assert env == {
        "KUBECONFIG": str(host / KUBECONFIG_FILE),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "41041",
    }
    assert in_cluster_env(SERVER, [Mount("tmp", "/tmp", Path("/state/pods/p/volumes/tmp"))]) == {}
