"""A RealtimeAPI reached through the local Gateway (Envoy Gateway and Envoy, on the node's
address): its HTTPRoute, the Gateway's verdict in its status, and Envoy balancing each request,
not each connection, over its ready replicas."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ferry_local import gateway
from ferry_local.cluster import ClusterInfo
from ferry_local.network import ClusterNetwork
from ferry_local.wait import wait_until
from tests.e2e.network.conftest import apply, get
from tests.support.ferry_operator import REPO, kubectl

ECHO = REPO / "examples" / "custom-container" / "realtimeapi.yaml"


@pytest.fixture
def ns(net_cluster: ClusterInfo) -> Iterator[str]:
    name = f"g-{uuid.uuid4().hex[:8]}"
    kubectl(net_cluster, "create", "namespace", name)
    yield name
    kubectl(net_cluster, "delete", "namespace", name, "--wait=false")


def echo(replicas: int = 1, **route: Any) -> dict[str, Any]:
    api: dict[str, Any] = yaml.safe_load(ECHO.read_text())
    api["spec"]["autoscaling"] = {"minReplicas": replicas, "maxReplicas": replicas}
    if route:
        api["spec"]["route"] = route
    return api


def condition(cluster: ClusterInfo, ns: str, kind: str) -> dict[str, Any] | None:
    status = get(cluster, ns, "rtapi", "echo").get("status") or {}
    return next((c for c in status.get("conditions") or () if c["type"] == kind), None)


def wait_for(cluster: ClusterInfo, ns: str, kind: str, status: str, reason: str) -> dict[str, Any]:
    def told() -> dict[str, Any] | None:
        found = condition(cluster, ns, kind)
        if found is not None and (found["status"], found["reason"]) == (status, reason):
            return found
        return None

    return wait_until(told, timeout=90, what=f"rtapi/echo {kind}={status} ({reason}) in {ns}")


def events(cluster: ClusterInfo, ns: str) -> list[tuple[str, str]]:
    listed = get(cluster, ns, "events", "--field-selector", "involvedObject.name=echo")
    return [(e["type"], e["reason"]) for e in listed["items"]]


def test_an_api_is_served_through_the_gateway_at_the_url_in_its_status_balanced_per_request(
    net_cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str
) -> None:
    apply(net_cluster, ns, echo(replicas=3))
    kubectl(net_cluster, "wait", "-n", ns, "--for=condition=Ready", "rtapi/echo", "--timeout=120s")
    api = get(net_cluster, ns, "rtapi", "echo")
    url = f"http://{cluster_network.node_address}/{ns}/echo/"
    assert api["status"]["endpoint"] == url
    routed = condition(net_cluster, ns, "Routed")
    assert routed is not None
    assert (routed["status"], routed["reason"]) == ("True", "Accepted")
    assert ("Normal", "Routed") in events(net_cluster, ns)
    route = get(net_cluster, ns, "httproute", "echo")
    assert route["metadata"]["ownerReferences"][0]["uid"] == api["metadata"]["uid"]
    assert route["spec"]["parentRefs"][0]["name"] == gateway.GATEWAY

    # Envoy has the endpoints a moment after the route is accepted (which Ready covers).
    parts = urlsplit(url)
    wait_until(
        lambda: _post(parts.hostname or "", f"{parts.path}predict", {"n": -1})[0] == 200,
        timeout=10,
        what=f"Envoy to send {url} to the API",
    )
    # One kept-alive connection to Envoy: each request still goes to any ready replica.
    connection = http.client.HTTPConnection(parts.hostname or "", 80, timeout=10)
    answered: dict[str, int] = {}
    try:
        for index in range(60):
            status, echoed = _post_on(connection, f"{parts.path}predict", {"n": index})
            assert status == 200, echoed
            # The prefix is removed on the way: the predictor saw its own path.
            assert echoed["echo"] == {"n": index}
            answered[echoed["pod"]] = answered.get(echoed["pod"], 0) + 1
    finally:
        connection.close()
    assert len(answered) == 3, answered


def _post_on(
    connection: http.client.HTTPConnection, path: str, body: dict[str, Any]
) -> tuple[int, Any]:
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    reply = response.read()
    return response.status, json.loads(reply) if response.status == 200 else reply


def _post(host: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(host, 80, timeout=10)
    try:
        return _post_on(connection, path, body)
    finally:
        connection.close()


def test_a_gateway_that_does_not_exist_leaves_the_api_unready_saying_so(
    net_cluster: ClusterInfo, ns: str
) -> None:
    apply(net_cluster, ns, echo(gateway={"name": "nowhere"}))
    ready = wait_for(net_cluster, ns, "Ready", "False", "GatewayNotFound")
    assert f"Gateway {ns}/nowhere does not exist" in ready["message"]
    assert ("Warning", "GatewayNotFound") in events(net_cluster, ns)


def test_a_gateway_that_refuses_the_route_gives_its_reason(
    net_cluster: ClusterInfo, ns: str
) -> None:
    # A Gateway whose one listener takes routes of its own namespace only.
    closed = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": f"closed-{ns}"},
        "spec": {
            "gatewayClassName": gateway.GATEWAY_CLASS,
            "listeners": [
                {
                    "name": "http",
                    "protocol": "HTTP",
                    "port": 8080,
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
        },
    }
    apply(net_cluster, gateway.NAMESPACE, closed)
    try:
        apply(
            net_cluster,
            ns,
            echo(gateway={"name": f"closed-{ns}", "namespace": gateway.NAMESPACE}),
        )
        ready = wait_for(net_cluster, ns, "Ready", "False", "NotAllowedByListeners")
        assert f"Gateway {gateway.NAMESPACE}/closed-{ns} refused the route" in ready["message"]
        assert ("Warning", "NotAllowedByListeners") in events(net_cluster, ns)
    finally:
        kubectl(net_cluster, "delete", "-n", gateway.NAMESPACE, "gateway", f"closed-{ns}")


def test_an_api_that_opts_out_loses_its_route_and_its_gateway_url(
    net_cluster: ClusterInfo, ns: str
) -> None:
    apply(net_cluster, ns, echo())
    wait_for(net_cluster, ns, "Routed", "True", "Accepted")
    apply(net_cluster, ns, echo(enabled=False))
    kubectl(net_cluster, "wait", "-n", ns, "--for=condition=Ready", "rtapi/echo", "--timeout=60s")

    def gone() -> bool:
        return (
            kubectl(net_cluster, "get", "-n", ns, "httproute", "echo", check=False).returncode != 0
        )

    wait_until(gone, timeout=30, what="the HTTPRoute of the opted-out API to be deleted")
    assert condition(net_cluster, ns, "Routed") is None
    assert (
        get(net_cluster, ns, "rtapi", "echo")["status"]["endpoint"] == f"http://echo.{ns}.svc:80/"
    )
    assert ("Normal", "RouteRemoved") in events(net_cluster, ns)


def test_an_httproute_of_the_apis_name_that_is_not_its_own_is_left_alone(
    net_cluster: ClusterInfo, ns: str
) -> None:
    theirs = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "echo"},
        "spec": {
            "parentRefs": [{"name": gateway.GATEWAY, "namespace": gateway.NAMESPACE}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": f"/{ns}/theirs"}}]}],
        },
    }
    apply(net_cluster, ns, theirs)
    apply(net_cluster, ns, echo())
    ready = wait_for(net_cluster, ns, "Routed", "False", "RouteNameInUse")
    assert "is not this API's" in ready["message"]
    route = get(net_cluster, ns, "httproute", "echo")
    assert route["spec"]["rules"][0]["matches"][0]["path"]["value"] == f"/{ns}/theirs"
    assert "ownerReferences" not in route["metadata"]
