"""A pod's resolv.conf from its dnsPolicy and dnsConfig, as the kubelet writes it."""

from __future__ import annotations

from typing import Any

import pytest

from ferry_local.agent.dns import resolv_conf

DNS = "10.200.128.10"
CLUSTER = (
    f"nameserver {DNS}\n"
    "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
    "options ndots:5\n"
)


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "p"}, "spec": spec}


def test_a_pod_asks_the_cluster_dns_with_its_namespaces_search_path() -> None:
    assert resolv_conf(pod(), DNS) == CLUSTER
    assert resolv_conf(pod(dnsPolicy="ClusterFirst"), DNS) == CLUSTER


@pytest.mark.parametrize(
    "spec", [{"dnsPolicy": "Default"}, {"hostNetwork": True}], ids=["Default", "hostNetwork"]
)
def test_default_and_host_network_pods_keep_the_machines_own_file(spec: dict[str, Any]) -> None:
    assert resolv_conf(pod(**spec), DNS) is None


def test_a_host_network_pod_asks_the_cluster_with_cluster_first_with_host_net() -> None:
    assert resolv_conf(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), DNS) == CLUSTER


def test_dns_config_adds_nameservers_and_searches_and_overrides_options() -> None:
    config = {
        "nameservers": ["10.200.0.53"],
        "searches": ["corp.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    assert resolv_conf(pod(dnsConfig=config), DNS) == (
        f"nameserver {DNS}\nnameserver 10.200.0.53\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "options ndots:2 edns0\n"
    )


def test_policy_none_uses_dns_config_alone() -> None:
    config = {"nameservers": ["10.200.0.53"]}
    assert resolv_conf(pod(dnsPolicy="None", dnsConfig=config), DNS) == "nameserver 10.200.0.53\n"
