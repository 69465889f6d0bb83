"""The loopback Service emulation's endpoints are the EndpointSlice controller's: ready, not
terminating, right port."""

from __future__ import annotations

from typing import Any

import pytest

from ferry_local.cluster_ip import service_port
from ferry_local.loopback_service import Endpoint, ready_endpoints, selector_query

SERVICE = {
    "metadata": {"name": "iris"},
    "spec": {
        "selector": {"ferry.dev/api": "iris", "app": "x"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": "proxy"},
            {"name": "admin", "port": 8889, "targetPort": 8889},
        ],
    },
}


def pod(
    name: str,
    ip: str | None = "127.128.0.1",
    ready: bool = True,
    deleting: bool = False,
    phase: str = "Running",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
    return {
        "metadata": meta,
        "spec": {
            "containers": [{"name": "proxy", "ports": [{"name": "proxy", "containerPort": 8888}]}]
        },
        "status": status,
    }


def test_only_ready_pods_with_an_address_that_are_not_terminating_are_endpoints() -> None:
    pods = [
        pod("b", "127.128.0.2"),
        pod("a", "127.128.0.1"),
        pod("not-ready", "127.128.0.3", ready=False),
        pod("deleting", "127.128.0.4", deleting=True),
        pod("no-ip", None),
        pod("done", "127.128.0.5", phase="Succeeded"),
    ]
    assert ready_endpoints(service_port(SERVICE, "http"), pods) == [
        Endpoint("127.128.0.1", 8888, "a"),
        Endpoint("127.128.0.2", 8888, "b"),
    ]


def test_a_numeric_target_port_needs_no_lookup() -> None:
    assert ready_endpoints(service_port(SERVICE, 8889), [pod("a")]) == [
        Endpoint("127.128.0.1", 8889, "a")
    ]


def test_a_pod_without_the_named_port_is_not_an_endpoint() -> None:
    unnamed = pod("a")
    unnamed["spec"]["containers"][0]["ports"] = []
    assert ready_endpoints(service_port(SERVICE, "http"), [unnamed]) == []


def test_the_selector_becomes_a_label_query() -> None:
    assert selector_query(SERVICE) == "app=x,ferry.dev/api=iris"
    with pytest.raises(ValueError, match="no selector"):
        selector_query({"metadata": {"name": "x"}, "spec": {}})
