"""A container's environment as the kubelet builds it, and its $(VAR) expansion.

envFrom first, then `env` in order, each value expanded against the variables before it; then
command and args are expanded against the whole environment. Secrets and ConfigMaps are read
from the API server; what is missing and not optional leaves the container waiting with
CreateContainerConfigError, as on a real node.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

# (kind, namespace, name) -> the object's data (Secret data already decoded), None if missing.
Lookup = Callable[[str, str, str], Awaitable[dict[str, str] | None]]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ContainerConfigError(ValueError):
    """The container cannot be configured yet (a missing Secret key, an unsupported field)."""


def expand(text: str, values: Mapping[str, str]) -> str:
    """The kubelet's expansion: $(NAME) if defined, $$ for a literal $, anything else verbatim."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        following = text[index + 1] if index + 1 < len(text) else ""
        if char != "$" or not following:
            out.append(char)
            index += 1
        elif following == "$":
            out.append("$")
            index += 2
        elif following == "(":
            close = text.find(")", index + 2)
            if close == -1:
                out.append(text[index:])
                break
            name = text[index + 2 : close]
            out.append(values[name] if name in values else text[index : close + 1])
            index = close + 1
        else:
            out.append(char + following)
            index += 2
    return "".join(out)


def field_value(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    """The downward API's fieldRef for the fields a process can make use of."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    if match := _SUBSCRIPT.match(path):
        return str(meta.get(match[1], {}).get(match[2], ""))
    raise ContainerConfigError(f"fieldRef {path!r} is not supported by the local node agent")


async def _key(lookup: Lookup, kind: str, namespace: str, ref: Mapping[str, Any]) -> str | None:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    data = await lookup(kind, namespace, name)
    if data is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


async def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    pod_ip: str,
    host_ip: str,
    lookup: Lookup,
) -> dict[str, str]:
    namespace = pod.get("metadata", {}).get("namespace", "")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        prefix = source.get("prefix", "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if (ref := source.get(field)) is None:
                continue
            data = await lookup(kind, namespace, ref.get("name", ""))
            if data is None and not ref.get("optional"):
                raise ContainerConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
            for key, value in (data or {}).items():
                # As the kubelet: keys that are not valid variable names are skipped.
                if _ENV_NAME.match(prefix + key):
                    env[prefix + key] = value
    for var in container.get("env") or ():
        name, source = var["name"], var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value", ""), env)
        elif "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind = "Secret" if "secretKeyRef" in source else "ConfigMap"
            ref = source.get("secretKeyRef") or source["configMapKeyRef"]
            if (found := await _key(lookup, kind, namespace, ref)) is not None:
                env[name] = found
        else:
            raise ContainerConfigError(
                f"env {name}: {sorted(source)} is not supported by the local node agent"
            )
    return env


def object_data(obj: Mapping[str, Any]) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's data decoded (stringData never comes back from the API)."""
    if obj.get("kind") == "Secret":
        return {
            key: base64.b64decode(value).decode(errors="replace")
            for key, value in (obj.get("data") or {}).items()
        }
    return dict(obj.get("data") or {})
