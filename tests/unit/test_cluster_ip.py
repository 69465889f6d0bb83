"""What the ClusterIP client sends to, and what it refuses: a Service's port, a headless Service,
an address no local cluster's network holds."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from ferry_local.cluster_ip import (
    ClusterIPClient,
    NoClusterIPError,
    cluster_address,
    ready_endpoint_count,
    service_port,
)
from ferry_local.network import choose_block, host_networks

SERVICE = {
    "metadata": {"name": "iris", "namespace": "default"},
    "spec": {
        "clusterIP": "10.96.0.12",
        "ports": [
            {"name": "http", "port": 80, "targetPort": "proxy"},
            {"name": "admin", "port": 8889, "targetPort": 8889},
        ],
    },
}


def with_cluster_ip(address: str | None) -> dict[str, Any]:
    return {**SERVICE, "spec": {**SERVICE["spec"], "clusterIP": address}}


def test_which_service_port() -> None:
    with pytest.raises(ValueError, match="has 2 ports"):
        service_port(SERVICE, None)
    with pytest.raises(ValueError, match="no port 'grpc'"):
        service_port(SERVICE, "grpc")
    only = {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}}
    assert service_port(only, None) == {"port": 80}
    assert service_port(SERVICE, 8889)["name"] == "admin"


@pytest.mark.parametrize("address", [None, "", "None"])
def test_a_headless_service_has_no_url_and_says_so(address: str | None) -> None:
    with pytest.raises(NoClusterIPError, match="service default/iris is headless"):
        cluster_address(with_cluster_ip(address), "http")


def test_an_address_no_local_cluster_routes_is_not_sent_to() -> None:
    unrouted = ipaddress.IPv4Network(choose_block(host_networks(), 0))
    for address in [
        "10.96.0.12",  # a cluster without the network: the default route would take it out
        "127.0.0.1",
        str(unrouted.network_address + 12),  # of the clusters' blocks, but no cluster's here
        "fd00::12",
    ]:
        with pytest.raises(NoClusterIPError, match=f"ClusterIP {address}, which this machine"):
            cluster_address(with_cluster_ip(address), "http")


def test_ready_endpoints_are_counted_across_slices() -> None:
    def endpoint(ready: bool | None) -> dict[str, Any]:
        conditions = {} if ready is None else {"ready": ready}
        return {"addresses": ["10.1.0.2"], "conditions": conditions}

    slices = [
        {"endpoints": [endpoint(True), endpoint(False), endpoint(None)]},
        {"endpoints": None},
        {"endpoints": [endpoint(True)]},
    ]
    assert ready_endpoint_count(slices) == 2


def test_connections_are_kept_alive_or_one_per_request_and_nothing_else() -> None:
    with pytest.raises(ValueError, match="keep-alive, per-request, not 'pooled'"):
        ClusterIPClient(None, "default", "iris", connections="pooled")  # type: ignore[arg-type]
