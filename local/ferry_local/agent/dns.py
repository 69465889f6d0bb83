"""A pod's resolv.conf, as the kubelet writes it from dnsPolicy and dnsConfig.

ClusterFirst (the default) asks the cluster's DNS Service, with the search path
<namespace>.svc.cluster.local, svc.cluster.local, cluster.local and ndots:5, so `iris` and
`iris.default` resolve from inside a pod as in a cluster; a hostNetwork pod gets that only with
ClusterFirstWithHostNet. Default keeps the machine's own file; None uses dnsConfig alone.
dnsConfig's nameservers and searches are appended, its options replace those of the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CLUSTER_DOMAIN = "cluster.local"
CLUSTER_FIRST = "ClusterFirst"
WITH_HOST_NET = "ClusterFirstWithHostNet"
DEFAULT = "Default"


def resolv_conf(pod: Mapping[str, Any], dns_address: str) -> str | None:
    """The file's text; None when the pod keeps the machine's own."""
    spec = pod["spec"]
    policy = spec.get("dnsPolicy") or CLUSTER_FIRST
    host_network = bool(spec.get("hostNetwork"))
    if policy == DEFAULT or (policy == CLUSTER_FIRST and host_network):
        return None
    nameservers: list[str] = []
    searches: list[str] = []
    options: dict[str, str | None] = {}
    if policy in {CLUSTER_FIRST, WITH_HOST_NET}:
        namespace = pod["metadata"]["namespace"]
        nameservers.append(dns_address)
        searches += [f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
        options["ndots"] = "5"
    config = spec.get("dnsConfig") or {}
    nameservers += [str(n) for n in config.get("nameservers") or ()]
    searches += [str(s) for s in config.get("searches") or ()]
    for option in config.get("options") or ():
        value = option.get("value")
        options[str(option.get("name"))] = None if value is None else str(value)
    lines = [f"nameserver {address}" for address in nameservers]
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        rendered = (name if value is None else f"{name}:{value}" for name, value in options.items())
        lines.append("options " + " ".join(rendered))
    return "\n".join(lines) + "\n"
