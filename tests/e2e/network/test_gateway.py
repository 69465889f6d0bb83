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


def _namespace(cluster: ClusterInfo) -> Iterator[str]:
    name = f"g-{uuid.uuid4().hex[:8]}"
    kubectl(cluster, "create", "namespace", name)
    yield name
    kubectl(cluster, "delete", "namespace", name, "--wait=false")


@pytest.fixture
def ns(net_cluster: ClusterInfo) -> Iterator[str]:
    yield from _namespace(net_cluster)


@pytest.fixture
def other_ns(net_cluster: ClusterInfo) -> Iterator[str]:
    yield from _namespace(net_cluster)


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
    def told() -> dict[str, Any]:
        found = condition(cluster, ns, kind)
        if found is None or (found["status"], found["reason"]) != (status, reason):
            raise AssertionError(f"{kind}: {found}")  # the last one seen is in the timeout's
        return found

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
    # kopf posts Events in the background: the status can come first.
    wait_until(
        lambda: ("Normal", "Routed") in events(net_cluster, ns),
        timeout=30,
        what="the Routed Event",
    )
    route = get(net_cluster, ns, "httproute", "echo")
    assert route["metadata"]["ownerReferences"][0]["uid"] == api["metadata"]["uid"]
    assert route["spec"]["parentRefs"][0]["name"] == gateway.GATEWAY

    # Envoy has the endpoints a moment after the route is accepted (which Ready covers).
    parts = urlsplit(url)
    wait_until(
        lambda: _post(parts.hostname or "", f"{parts.path}predict", {"n": -1})[0] == 200,
        timeout=30,
        what=f"Envoy to send {url} to the API",
    )
    # One kept-alive connection to Envoy: each request still goes to any ready replica, once
    # Envoy has every replica's endpoint (Envoy Gateway pushes them a moment after Ready).
    connection = http.client.HTTPConnection(parts.hostname or "", 80, timeout=10)
    answered: dict[str, int] = {}
    sent = 0

    def every_replica_answered() -> bool:
        nonlocal sent
        for _ in range(30):
            status, echoed = _post_on(connection, f"{parts.path}predict", {"n": sent})
            assert status == 200, echoed
            # The prefix is removed on the way: the predictor saw its own path.
            assert echoed["echo"] == {"n": sent}
            answered[echoed["pod"]] = answered.get(echoed["pod"], 0) + 1
            sent += 1
        return len(answered) == 3

    try:
        wait_until(
            every_replica_answered, timeout=30, what="all 3 replicas to answer on one connection"
        )
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


def test_deleting_an_api_removes_its_route_and_the_gateway_stops_serving_it(
    net_cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str
) -> None:
    apply(net_cluster, ns, echo())
    wait_for(net_cluster, ns, "Routed", "True", "Accepted")
    kubectl(net_cluster, "delete", "-n", ns, "rtapi", "echo", "--wait=true", "--timeout=60s")

    def gone() -> bool:
        return (
            kubectl(net_cluster, "get", "-n", ns, "httproute", "echo", check=False).returncode != 0
        )

    wait_until(gone, timeout=60, what="the deleted API's HTTPRoute to be collected")
    # Envoy no longer routes the prefix: its answer for a path no route matches.
    wait_until(
        lambda: _post(cluster_network.node_address, f"/{ns}/echo/predict", {})[0] == 404,
        timeout=30,
        what="the Gateway to stop serving the deleted API's prefix",
    )


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


def _pods(cluster: ClusterInfo, ns: str) -> set[str]:
    listed = get(cluster, ns, "pods", "-l", "ferry.dev/api=echo")
    return {p["metadata"]["name"] for p in listed["items"]}


def _answering_pod(address: str, hostname: str) -> str | None:
    """The pod that answered a request for `hostname` through the Gateway; None: none did."""
    connection = http.client.HTTPConnection(address, gateway.PORT, timeout=10)
    try:
        connection.request(
            "POST", "/predict", "{}", {"Host": hostname, "Content-Type": "application/json"}
        )
        response = connection.getresponse()
        reply = response.read()
    finally:
        connection.close()
    return str(json.loads(reply)["pod"]) if response.status == 200 else None


def test_a_hostname_and_path_another_api_took_first_leave_the_api_unready_until_it_is_freed(
    net_cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str, other_ns: str
) -> None:
    hostname = f"{ns}.models.test"
    route = {"hostname": hostname, "pathPrefix": "/"}
    apply(net_cluster, ns, echo(**route))
    wait_for(net_cluster, ns, "Ready", "True", "Available")
    apply(net_cluster, other_ns, echo(**route))

    # Both routes are Accepted by the Gateway, but the older one's rule takes the requests.
    ready = wait_for(net_cluster, other_ns, "Ready", "False", "RouteConflict")
    assert f"HTTPRoute {ns}/echo" in ready["message"], ready
    assert "spec.route.hostname or spec.route.pathPrefix" in ready["message"], ready
    assert ("Warning", "RouteConflict") in events(net_cluster, other_ns)
    first = _pods(net_cluster, ns)
    address = cluster_network.node_address
    answered = wait_until(
        lambda: _answering_pod(address, hostname),
        timeout=10,
        what=f"Envoy to send {hostname} to an API",
    )
    assert answered in first
    assert {_answering_pod(address, hostname) for _ in range(10)} <= first
    routed = condition(net_cluster, ns, "Routed")
    assert routed is not None
    assert (routed["status"], routed["reason"]) == ("True", "Accepted")

    # The first API goes: the second is served, and says so, without being touched. (Envoy
    # Gateway marks the second route's overlap, and clears the mark then; with a controller that
    # does not, the next test shows the API told all the same.)
    kubectl(net_cluster, "delete", "-n", ns, "rtapi", "echo")
    wait_for(net_cluster, other_ns, "Routed", "True", "Accepted")
    wait_for(net_cluster, other_ns, "Ready", "True", "Available")
    second = _pods(net_cluster, other_ns)
    wait_until(
        lambda: _answering_pod(address, hostname) in second,
        timeout=10,
        what=f"Envoy to send {hostname} to the API of {other_ns}",
    )


def _accept(cluster: ClusterInfo, ns: str, route: str, gateway_name: str) -> None:
    """Write what a Gateway controller that does not mark overlapping routes writes (Envoy
    Gateway adds RouteRulesOverlap, which changes the losing route too; others do not): the
    route is Accepted on the Gateway, and its backends resolved, and nothing more."""
    generation = get(cluster, ns, "httproute", route)["metadata"]["generation"]
    conditions = [
        {
            "type": kind,
            "status": "True",
            "reason": kind,
            "message": "written by the test",
            "observedGeneration": generation,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        for kind in ("Accepted", "ResolvedRefs")
    ]
    status = {
        "parents": [
            {
                "parentRef": {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": gateway_name,
                },
                "controllerName": "test.ferry.dev/quiet",
                "conditions": conditions,
            }
        ]
    }
    kubectl(
        cluster,
        *("patch", "-n", ns, "httproute", route, "--subresource=status", "--type=merge"),
        "-p",
        json.dumps({"status": status}),
    )


def test_another_route_that_moves_onto_the_apis_hostname_and_path_takes_it_until_it_goes(
    net_cluster: ClusterInfo, ns: str
) -> None:
    # A Gateway of a class no controller here serves: the test is its controller.
    quiet = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "quiet"},
        "spec": {
            "gatewayClassName": "quiet",
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
        },
    }
    hostname = f"{ns}.models.test"
    another = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "another"},
        "spec": {
            "parentRefs": [{"name": "quiet"}],
            "hostnames": [hostname],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/elsewhere"}}]}],
        },
    }
    # Older than the API's route, or created in the same second and first by name.
    apply(net_cluster, ns, quiet, another)
    _accept(net_cluster, ns, "another", "quiet")
    apply(net_cluster, ns, echo(gateway={"name": "quiet"}, hostname=hostname, pathPrefix="/"))
    wait_until(
        lambda: (
            kubectl(net_cluster, "get", "-n", ns, "httproute", "echo", check=False).returncode == 0
        ),
        timeout=60,
        what="the API's HTTPRoute",
    )
    _accept(net_cluster, ns, "echo", "quiet")
    # Ready: its Deployment and pods have settled, and no event of theirs publishes it again.
    wait_for(net_cluster, ns, "Ready", "True", "Available")

    # The older route moves onto the API's hostname and path: it gets the requests first.
    another["spec"]["rules"] = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]
    apply(net_cluster, ns, another)
    routed = wait_for(net_cluster, ns, "Routed", "False", "RouteConflict")
    assert f"HTTPRoute {ns}/another" in routed["message"], routed
    assert ("Warning", "RouteConflict") in events(net_cluster, ns)
    route_version = get(net_cluster, ns, "httproute", "echo")["metadata"]["resourceVersion"]

    # It goes: the API has its requests back, though nothing of the API or its route changed.
    kubectl(net_cluster, "delete", "-n", ns, "httproute", "another")
    wait_for(net_cluster, ns, "Routed", "True", "Accepted")
    assert get(net_cluster, ns, "httproute", "echo")["metadata"]["resourceVersion"] == (
        route_version
    )
