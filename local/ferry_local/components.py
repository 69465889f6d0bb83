"""What each control-plane component is started with: pure functions from a plan to argv."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path

from ferry_local import aws, dns, gateway
from ferry_local.agent.main import command as agent_command
from ferry_local.layout import ClusterLayout
from ferry_local.network import (
    KUBE_PROXY_HEALTHZ_PORT,
    KUBE_PROXY_METRICS_PORT,
    NODE_MASK,
    RECORD,
    ClusterNetwork,
)
from ferry_local.pki import FRONT_PROXY_CA, FRONT_PROXY_CLIENT, SERVICE_CIDR, Credentials
from ferry_local.toolchain import Toolchain

LOOPBACK = "127.0.0.1"
# kwok hands simulated pods addresses from this loopback block: nothing listens there, so a client
# that tries one fails at once on this machine instead of sending packets anywhere else.
KWOK_POD_CIDR = "127.64.0.0/10"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
IN_CLUSTER_CLIENTS = frozenset({"kube-proxy", "coredns", "envoy-gateway"})


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    moto: int
    operator_liveness: int
    operator_metrics: int
    agent: int

    @classmethod
    def free(cls) -> Ports:
        """Ports nothing listens on now; all sockets stay bound until every port is chosen."""
        with ExitStack() as stack:
            chosen = []
            for _ in fields(cls):
                sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind((LOOPBACK, 0))
                chosen.append(sock.getsockname()[1])
        return cls(*chosen)


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    health_url: str
    # The API server's health needs a client certificate; the others answer /healthz to anyone.
    needs_client_cert: bool = False
    env: Mapping[str, str] | None = None
    netns: str | None = None
    """The network namespace it runs in (the cluster's, for kube-proxy and CoreDNS); None: the
    host's."""


@dataclass(frozen=True)
class Plan:
    layout: ClusterLayout
    toolchain: Toolchain
    creds: Credentials
    ports: Ports
    with_operator: bool = False
    network: ClusterNetwork | None = None
    """The cluster's network, made for the node agent's pods (with the operator)."""

    def kubeconfig_for(self, client: str) -> Path:
        return self.layout.run / f"{client}.kubeconfig"

    @property
    def apiserver_url(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.apiserver}"

    def apiserver_url_for(self, client: str) -> str:
        """kube-proxy, CoreDNS and Envoy Gateway run in the cluster's namespace and reach the
        API server at the host's end of the link; every other client on 127.0.0.1."""
        if client in IN_CLUSTER_CLIENTS and self.network is not None:
            return f"https://{self.network.host_address}:{self.ports.apiserver}"
        return self.apiserver_url

    @property
    def service_cidr(self) -> str:
        return self.network.service_cidr if self.network is not None else SERVICE_CIDR


def etcd(plan: Plan) -> Component:
    ports = plan.ports
    client = f"http://{LOOPBACK}:{ports.etcd_client}"
    peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
    return Component(
        "etcd",
        [
            str(plan.toolchain.binary("etcd")),
            "--name=ferry",
            f"--data-dir={plan.layout.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=ferry={peer}",
            # A throwaway cluster: its data is wiped at the next `up`, so durability buys nothing
            # and fsync costs seconds per test on a busy disk.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        f"{client}/health",
    )


def kube_apiserver(plan: Plan) -> Component:
    creds = plan.creds
    return Component(
        "kube-apiserver",
        [
            str(plan.toolchain.binary("kube-apiserver")),
            f"--etcd-servers=http://{LOOPBACK}:{plan.ports.etcd_client}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={plan.ports.apiserver}",
            f"--tls-cert-file={creds.cert('apiserver')}",
            f"--tls-private-key-file={creds.key('apiserver')}",
            f"--client-ca-file={creds.ca}",
            f"--requestheader-client-ca-file={creds.cert(FRONT_PROXY_CA)}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={creds.cert(FRONT_PROXY_CLIENT)}",
            f"--proxy-client-key-file={creds.key(FRONT_PROXY_CLIENT)}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={creds.service_account_pub}",
            f"--service-account-signing-key-file={creds.service_account_key}",
            f"--service-cluster-ip-range={plan.service_cidr}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # The `kubernetes` Service cannot point at a loopback address; nothing here needs it.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ],
        f"{plan.apiserver_url}/readyz",
        needs_client_cert=True,
    )


def kube_controller_manager(plan: Plan) -> Component:
    kubeconfig = plan.kubeconfig_for("kube-controller-manager")
    return Component(
        "kube-controller-manager",
        [
            str(plan.toolchain.binary("kube-controller-manager")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={plan.ports.controller_manager}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={plan.creds.service_account_key}",
            f"--root-ca-file={plan.creds.ca}",
            f"--cluster-signing-cert-file={plan.creds.ca}",
            f"--cluster-signing-key-file={plan.creds.key('ca')}",
            f"--cluster-name={plan.layout.name}",
            f"--service-cluster-ip-range={plan.service_cidr}",
            *node_cidrs(plan.network),
            "--profiling=false",
            "--v=1",
        ],
        f"https://{LOOPBACK}:{plan.ports.controller_manager}/healthz",
    )


def node_cidrs(network: ClusterNetwork | None) -> list[str]:
    """With a cluster network, each Node gets a /24 of its pod block (spec.podCIDR)."""
    if network is None:
        return []
    return [
        "--allocate-node-cidrs=true",
        f"--cluster-cidr={network.pod_cidr}",
        f"--node-cidr-mask-size={NODE_MASK}",
    ]


def kube_scheduler(plan: Plan) -> Component:
    kubeconfig = plan.kubeconfig_for("kube-scheduler")
    return Component(
        "kube-scheduler",
        [
            str(plan.toolchain.binary("kube-scheduler")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={plan.ports.scheduler}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
        f"https://{LOOPBACK}:{plan.ports.scheduler}/healthz",
    )


def kwok(plan: Plan) -> Component:
    address = f"{LOOPBACK}:{plan.ports.kwok}"
    return Component(
        "kwok",
        [
            str(plan.toolchain.binary("kwok")),
            f"--kubeconfig={plan.kubeconfig_for('kwok')}",
            f"--config={plan.toolchain.kwok_stages}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={KWOK_POD_CIDR}",
            f"--node-ip={LOOPBACK}",
            f"--node-port={plan.ports.kwok}",
            f"--server-address={address}",
            "--node-lease-duration-seconds=40",
        ],
        f"http://{address}/healthz",
    )


def control_plane(plan: Plan) -> list[Component]:
    """In start order; each waits for the previous one to be healthy."""
    return [
        etcd(plan),
        kube_apiserver(plan),
        kube_controller_manager(plan),
        kube_scheduler(plan),
        kwok(plan),
    ]


def moto(plan: Plan) -> Component:
    return Component(
        "moto", aws.server_argv(plan.ports.moto, plan.layout.run), aws.health_url(plan.ports.moto)
    )


def aws_env(plan: Plan) -> dict[str, str]:
    return aws.env_for(f"http://{LOOPBACK}:{plan.ports.moto}")


def pods_aws_env(plan: Plan) -> dict[str, str]:
    """moto as pods reach it: in their own namespaces, at the host's end of the link."""
    if plan.network is None:
        return aws_env(plan)
    return aws.env_for(f"http://{plan.network.host_address}:{plan.ports.moto}")


AGENT_NODE = "ferry-local"
# The node group of the agent's node; the operator sends APIs that name no group there, so the
# examples run for real while kwok's nodes stay for simulated pods.
LOCAL_NODE_GROUP = {
    "name": "local",
    "labels": {"ferry.dev/node-group": "local"},
    "taints": [{"key": "ferry.dev/node-group", "value": "local", "effect": "NoSchedule"}],
}
EXAMPLES_IMAGES = Path(__file__).resolve().parents[2] / "examples" / "images.yaml"


def node_agent(plan: Plan) -> Component:
    """The node that runs pods as local processes; they may reach moto for their models."""
    extra = [f"--pass-env={name}" for name in pods_aws_env(plan)]
    if EXAMPLES_IMAGES.exists():
        extra.append(f"--images={EXAMPLES_IMAGES}")
    if plan.network is not None:
        extra.append(f"--network={plan.layout.run / RECORD}")
    return Component(
        "node-agent",
        agent_command(
            plan.layout.kubeconfig,
            AGENT_NODE,
            plan.layout.agent_state,
            plan.ports.agent,
            "--stop-grace=5",
            *extra,
        ),
        f"http://{LOOPBACK}:{plan.ports.agent}/healthz",
        env={**os.environ, **pods_aws_env(plan)},
    )


def kube_proxy(plan: Plan, network: ClusterNetwork) -> Component:
    """kube-proxy for the agent's node, in nftables mode, in the cluster's namespace: its rules
    rewrite Service addresses to pod addresses there, per connection, as on a node."""
    node = network.node_address
    return Component(
        "kube-proxy",
        [
            str(plan.toolchain.binary("kube-proxy")),
            f"--kubeconfig={plan.kubeconfig_for('kube-proxy')}",
            "--proxy-mode=nftables",
            f"--hostname-override={AGENT_NODE}",
            f"--cluster-cidr={network.pod_cidr}",
            f"--healthz-bind-address={node}:{KUBE_PROXY_HEALTHZ_PORT}",
            f"--metrics-bind-address={node}:{KUBE_PROXY_METRICS_PORT}",
            # The conntrack table's size and timeouts are the machine's, not the namespace's.
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--profiling=false",
            "--v=1",
        ],
        f"http://{node}:{KUBE_PROXY_HEALTHZ_PORT}/healthz",
        netns=network.netns,
    )


def operator(plan: Plan) -> Component:
    """Ferry's own operator, cluster-wide, with AWS at the local moto server."""
    return Component(
        "ferry-operator",
        [
            str(Path(sys.executable).parent / "ferry-operator"),
            f"--kubeconfig={plan.layout.kubeconfig}",
        ],
        f"http://{LOOPBACK}:{plan.ports.operator_liveness}/healthz",
        env={
            **os.environ,
            **aws_env(plan),
            # kopf's login reads it as well as the operator's own client.
            "KUBECONFIG": str(plan.layout.kubeconfig),
            "FERRY_LIVENESS_PORT": str(plan.ports.operator_liveness),
            "FERRY_METRICS_PORT": str(plan.ports.operator_metrics),
            "FERRY_NODE_GROUPS": json.dumps([LOCAL_NODE_GROUP]),
            "FERRY_DEFAULT_NODE_GROUP": str(LOCAL_NODE_GROUP["name"]),
            # With the cluster's network, every API gets a route on its Gateway.
            "FERRY_GATEWAY": f"{gateway.NAMESPACE}/{gateway.GATEWAY}" if plan.network else "",
        },
    )


def corefile(plan: Plan) -> Path:
    return plan.layout.run / "Corefile"


def coredns(plan: Plan, network: ClusterNetwork) -> Component:
    """The cluster's DNS on the node's address, in the cluster's namespace (ferry_local.dns);
    healthy once its kubernetes plugin has read the API server."""
    return Component(
        "coredns",
        [str(plan.toolchain.binary("coredns")), "-conf", str(corefile(plan))],
        f"http://{network.node_address}:{dns.READY_PORT}/ready",
        netns=network.netns,
    )


def gateway_folders(plan: Plan) -> gateway.GatewayFolders:
    return gateway.GatewayFolders(plan.layout.run / "envoy-gateway")


def envoy_gateway(plan: Plan, network: ClusterNetwork) -> Component:
    """Envoy Gateway in the cluster's namespace, Envoy its child (ferry_local.gateway); healthy
    once its controller has read the API server."""
    folders = gateway_folders(plan)
    return Component(
        "envoy-gateway",
        gateway.argv(folders, plan.toolchain.binary("envoy-gateway")),
        f"http://{network.node_address}:{gateway.READY_PORT}/readyz",
        env={
            **os.environ,
            "KUBECONFIG": str(plan.kubeconfig_for("envoy-gateway")),
            "ENVOY_GATEWAY_NAMESPACE": gateway.NAMESPACE,
        },
        netns=network.netns,
    )
