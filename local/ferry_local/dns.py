"""The cluster's DNS: CoreDNS in the cluster's namespace, behind the `kube-dns` Service.

CoreDNS runs as a supervised component on the node's address, as a node-local DNS would, and
answers for cluster.local from the API server (its kubernetes plugin, with RBAC as kubeadm
grants it). Nothing is forwarded: the cluster is sealed, so a name outside cluster.local gets no
answer from it. The `kube-dns` Service in kube-system holds the tenth address of the Service
block, as kubeadm's does, and its EndpointSlice (written here, since CoreDNS is no pod) points
at the node's address; kube-proxy serves it like any other, and pods' resolv.conf names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ferry_local.agent.dns import CLUSTER_DOMAIN
from ferry_local.network import ClusterNetwork
from ferry_local.rbac import cluster_role_for_user

PORT = 53
HEALTH_PORT = 8090
READY_PORT = 8181
NAMESPACE = "kube-system"
SERVICE = "kube-dns"
USER = "system:coredns"
MANAGED_BY = "ferry-local"


def corefile(network: ClusterNetwork, kubeconfig: Path) -> str:
    node = network.node_address
    return f"""\
.:{PORT} {{
    bind {node}
    errors
    health {node}:{HEALTH_PORT}
    ready {node}:{READY_PORT}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
}}
"""


def manifests(network: ClusterNetwork) -> list[dict[str, Any]]:
    """CoreDNS's RBAC, the kube-dns Service and the EndpointSlice that points it at CoreDNS."""
    ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    rules = [
        {
            "apiGroups": [""],
            "resources": ["endpoints", "services", "pods", "namespaces"],
            "verbs": ["list", "watch"],
        },
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["list", "watch"],
        },
    ]
    return [
        *cluster_role_for_user(USER, rules),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": SERVICE,
                "namespace": NAMESPACE,
                "labels": {"k8s-app": SERVICE, "kubernetes.io/name": "CoreDNS"},
            },
            "spec": {
                "clusterIP": network.dns_address,
                "ports": [
                    {"name": name, "port": PORT, "targetPort": PORT, "protocol": protocol}
                    for name, protocol in ports
                ],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{SERVICE}-coredns",
                "namespace": NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": SERVICE,
                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [network.node_address], "conditions": {"ready": True}}],
            "ports": [
                {"name": name, "port": PORT, "protocol": protocol} for name, protocol in ports
            ],
        },
    ]
