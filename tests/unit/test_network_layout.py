"""The cluster network's layout: a /16 of its own that nothing on the machine routes, cut into
pods, Services and the host's link."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from ferry_local import components
from ferry_local.agent.network import AddressPool
from ferry_local.dns import corefile, manifests
from ferry_local.layout import ClusterLayout
from ferry_local.netns import NetworkError
from ferry_local.network import BLOCKS, ClusterNetwork, choose_block, cluster_id
from ferry_local.pki import Credentials
from ferry_local.toolchain import Toolchain

NETWORK = ClusterNetwork("a1b2c3", "10.200.0.0/16", (6443, 5000))


def nets(*cidrs: str) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(cidr) for cidr in cidrs]


def test_a_block_is_cut_into_pods_services_and_the_hosts_link() -> None:
    assert NETWORK.pod_cidr == "10.200.0.0/17"
    assert NETWORK.service_cidr == "10.200.128.0/18"
    assert NETWORK.link_cidr == "10.200.255.252/30"
    assert NETWORK.host_address == "10.200.255.253"
    assert NETWORK.node_address == "10.200.255.254"
    assert NETWORK.dns_address == "10.200.128.10"
    parts = nets(NETWORK.pod_cidr, NETWORK.service_cidr, NETWORK.link_cidr)
    assert not any(a.overlaps(b) for a in parts for b in parts if a is not b)


def test_interface_names_fit_the_kernels_fifteen_characters() -> None:
    assert len(NETWORK.host_link) <= 15


def test_the_record_reads_back_as_written() -> None:
    assert ClusterNetwork.from_json(NETWORK.to_json()) == NETWORK


def test_a_block_nothing_on_the_machine_routes_is_chosen() -> None:
    taken = nets("0.0.0.0/0", "192.0.2.0/24", "10.192.0.0/17", "10.193.0.0/16")
    assert choose_block(taken, 0) == "10.194.0.0/16"


def test_a_route_covering_the_whole_range_leaves_no_block() -> None:
    with pytest.raises(NetworkError, match="every /16"):
        choose_block(nets("10.0.0.0/8"), 0)


def test_the_round_starts_at_the_clusters_own_place_and_wraps() -> None:
    assert choose_block([], 5) == "10.197.0.0/16"
    last = len(list(BLOCKS.subnets(new_prefix=16))) - 1
    assert choose_block(nets("10.255.0.0/16"), last) == "10.192.0.0/16"


def test_cluster_folders_get_ids_of_their_own(tmp_path: Path) -> None:
    assert cluster_id(tmp_path / "one") != cluster_id(tmp_path / "two")
    assert cluster_id(tmp_path / "one") == cluster_id(tmp_path / "one")


def test_pods_on_a_bridge_never_get_the_gateway_or_a_loopback_check() -> None:
    pool = AddressPool.on_bridge("10.200.3.0/29", "10.200.3.1")
    given = {pool.allocate() for _ in range(5)}
    assert given == {f"10.200.3.{n}" for n in range(2, 7)}
    assert not pool.reserve("10.200.3.1")


@pytest.fixture
def plan(tmp_path: Path) -> components.Plan:
    layout = ClusterLayout(tmp_path / "demo")
    toolchain = Toolchain(tmp_path / "cache", {"kubernetes": "v1.37.2"})
    return components.Plan(
        layout, toolchain, Credentials(layout.pki), components.Ports.free(), True, NETWORK
    )


def test_the_controller_manager_gives_each_node_a_slice_of_the_pod_block(
    plan: components.Plan,
) -> None:
    argv = components.kube_controller_manager(plan).argv
    assert "--allocate-node-cidrs=true" in argv
    assert f"--cluster-cidr={NETWORK.pod_cidr}" in argv
    assert "--node-cidr-mask-size=24" in argv
    assert f"--service-cluster-ip-range={NETWORK.service_cidr}" in argv
    assert f"--service-cluster-ip-range={NETWORK.service_cidr}" in (
        components.kube_apiserver(plan).argv
    )


def test_kube_proxy_runs_in_nftables_mode_in_the_clusters_namespace(
    plan: components.Plan,
) -> None:
    proxy = components.kube_proxy(plan, NETWORK)
    assert proxy.netns == NETWORK.netns
    assert "--proxy-mode=nftables" in proxy.argv
    assert f"--hostname-override={components.AGENT_NODE}" in proxy.argv
    assert proxy.health_url.startswith(f"http://{NETWORK.node_address}:")
    assert any(f"{plan.layout.root}/" in arg for arg in proxy.argv)  # `down` finds it
    assert plan.apiserver_url_for("kube-proxy") == (
        f"https://{NETWORK.host_address}:{plan.ports.apiserver}"
    )
    assert plan.apiserver_url_for("admin") == plan.apiserver_url


def test_the_agents_pods_get_namespaces_and_reach_moto_at_the_hosts_end(
    plan: components.Plan,
) -> None:
    agent = components.node_agent(plan)
    assert f"--network={plan.layout.run / 'network.json'}" in agent.argv
    assert agent.env is not None
    endpoint = f"http://{NETWORK.host_address}:{plan.ports.moto}"
    assert endpoint in agent.env.values()


def test_coredns_serves_cluster_local_on_the_node_address_and_forwards_nothing(
    plan: components.Plan,
) -> None:
    text = corefile(NETWORK, plan.kubeconfig_for("coredns"))
    assert f"bind {NETWORK.node_address}" in text
    assert "kubernetes cluster.local" in text
    assert "forward" not in text
    component = components.coredns(plan, NETWORK)
    assert component.netns == NETWORK.netns
    assert any(f"{plan.layout.root}/" in arg for arg in component.argv)
    assert plan.apiserver_url_for("coredns").startswith(f"https://{NETWORK.host_address}:")


def test_the_kube_dns_service_holds_the_tenth_address_and_points_at_the_node() -> None:
    kinds = {item["kind"]: item for item in manifests(NETWORK)}
    assert kinds["Service"]["spec"]["clusterIP"] == NETWORK.dns_address
    assert "selector" not in kinds["Service"]["spec"]
    (endpoint,) = kinds["EndpointSlice"]["endpoints"]
    assert endpoint["addresses"] == [NETWORK.node_address]
    labels = kinds["EndpointSlice"]["metadata"]["labels"]
    assert labels["kubernetes.io/service-name"] == "kube-dns"
    assert kinds["ClusterRoleBinding"]["subjects"][0]["name"] == "system:coredns"
