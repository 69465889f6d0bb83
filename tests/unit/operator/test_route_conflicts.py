"""Two routes that match the same requests on one Gateway: which claims a route makes, which
route Gateway API gives the requests to, and how the API whose route loses them is told."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ferry.spec.model import GatewayRef
from ferry.status.claims import RouteClaim, RouteClaims, RouteKey, beaten
from ferry.status.news import route_news
from ferry.status.route import RouteTarget, claims_of, route_verdict
from tests.unit.operator.test_route import ACCEPTED, RESOLVED, gateway, route, with_route

PUBLIC = GatewayRef("gateways", "public")
HOST = "iris.example.com"
# The API's own route (tests.unit.operator.test_route.route): ml/iris, created at 10:00:00.
OURS = route(ACCEPTED, RESOLVED)


def key(hostname: str = HOST, path: str = "/", gateway: str = "public") -> RouteKey:
    return RouteKey("gateways", gateway, hostname, path)


def claim(
    name: str = "other",
    created: str = "2026-12-07T09:00:00Z",
    namespace: str = "team",
    sections: tuple[str, ...] = (),
    uid: str = "other-uid",
) -> RouteClaim:
    return RouteClaim(namespace, name, uid, created, sections)


def verdict(target: RouteTarget, claims: RouteClaims) -> tuple[str, str]:
    ours = copy.deepcopy(OURS)
    if target.gateway.section is not None:  # the controller answers for the listener named
        ours["status"]["parents"][0]["parentRef"]["sectionName"] = target.gateway.section
    found = route_verdict(target, ours, gateway(addresses=["10.0.0.7"]), claims)
    return found.status, found.reason


TARGET = RouteTarget(PUBLIC, HOST, "/")
ON_HTTP = RouteTarget(GatewayRef("gateways", "public", "http"), HOST, "/")
NEWER = "2026-12-07T11:00:00Z"
SAME_TIME = "2026-12-07T10:00:00Z"


@pytest.mark.parametrize(
    ("target", "claims", "expected"),
    [
        # An older route on the same hostname and path gets the requests.
        (TARGET, {key(): [claim()]}, ("False", "RouteConflict")),
        # A newer one does not: its own API is told.
        (TARGET, {key(): [claim(created=NEWER)]}, ("True", "Accepted")),
        # Created in the same second: the first by "namespace/name" ("ml/iris" < "team/other").
        (TARGET, {key(): [claim(created=SAME_TIME)]}, ("True", "Accepted")),
        (TARGET, {key(): [claim(created=SAME_TIME, namespace="a")]}, ("False", "RouteConflict")),
        # The API's own route, by uid, is no rival (a route re-created under the name is).
        (TARGET, {key(): [claim(uid="route-uid")]}, ("True", "Accepted")),
        # Another hostname, no hostname, another path, another Gateway: other requests.
        (TARGET, {key(hostname="other.example.com"): [claim()]}, ("True", "Accepted")),
        (TARGET, {key(hostname=""): [claim()]}, ("True", "Accepted")),
        (TARGET, {key(path="/iris"): [claim()]}, ("True", "Accepted")),
        (TARGET, {key(gateway="private"): [claim()]}, ("True", "Accepted")),
        # Without a hostname, the key is "any host".
        (
            RouteTarget(PUBLIC, None, "/ml/iris"),
            {key("", "/ml/iris"): [claim()]},
            ("False", "RouteConflict"),
        ),
        # Listeners: the same one, or either route on every listener, is shared.
        (ON_HTTP, {key(): [claim(sections=("http",))]}, ("False", "RouteConflict")),
        (ON_HTTP, {key(): [claim()]}, ("False", "RouteConflict")),
        (TARGET, {key(): [claim(sections=("https",))]}, ("False", "RouteConflict")),
        (ON_HTTP, {key(): [claim(sections=("https",))]}, ("True", "Accepted")),
        (ON_HTTP, {key(): [claim(sections=("admin", "http"))]}, ("False", "RouteConflict")),
    ],
)
def test_an_older_route_on_the_same_gateway_host_and_path_takes_the_apis_requests(
    target: RouteTarget, claims: RouteClaims, expected: tuple[str, str]
) -> None:
    assert verdict(target, claims) == expected


def test_a_conflict_names_the_route_that_took_the_requests_and_what_to_change() -> None:
    claims = {key(): [claim(created=NEWER), claim("first", "2026-12-07T08:00:00Z"), claim()]}
    found = route_verdict(TARGET, OURS, gateway(addresses=["10.0.0.7"]), claims)
    assert found.message == (
        "HTTPRoute team/first (created 2026-12-07T08:00:00Z) matched host iris.example.com "
        "under path / on Gateway gateways/public before this API's route (created "
        "2026-12-07T10:00:00Z), so the Gateway sends those requests to it: change "
        "spec.route.hostname or spec.route.pathPrefix, or that route"
    )
    # The Gateway's URL reaches the other route's backends, not this API.
    assert found.url is None
    assert with_route(found)["endpoint"] == "http://iris.ml.svc:80/"


def test_a_route_the_gateway_refuses_is_told_so_before_any_conflict() -> None:
    refused = route(("Accepted", "False", "NotAllowedByListeners"), RESOLVED)
    found = route_verdict(TARGET, refused, gateway(), {key(): [claim()]})
    assert found.reason == "NotAllowedByListeners"


def test_a_conflict_is_a_warning_event_once() -> None:
    accepted = with_route(route_verdict(TARGET, OURS, gateway(), {}))
    conflict = with_route(route_verdict(TARGET, OURS, gateway(), {key(): [claim()]}))
    assert [(n.kind, n.reason) for n in route_news(accepted, conflict)] == [
        ("Warning", "RouteConflict")
    ]
    assert route_news(conflict, conflict) == []
    assert [(n.kind, n.reason) for n in route_news(conflict, accepted)] == [("Normal", "Routed")]


def http_route(**spec: Any) -> dict[str, Any]:
    """team/other, created 09:00, accepted by Gateway gateways/public (any listener)."""
    body: dict[str, Any] = {
        "metadata": {
            "name": "other",
            "namespace": "team",
            "uid": "other-uid",
            "creationTimestamp": "2026-12-07T09:00:00Z",
        },
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}],
            **spec,
        },
    }
    body["status"] = {
        "parents": [
            {
                "parentRef": ref,
                "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}],
            }
            for ref in body["spec"]["parentRefs"]
        ]
    }
    return body


def prefix(value: str, **match: Any) -> dict[str, Any]:
    return {"path": {"type": "PathPrefix", "value": value}, **match}


@pytest.mark.parametrize(
    ("spec", "claims"),
    [
        ({}, {key(""): claim()}),
        # One key per hostname and path prefix; a trailing "/" matches the same requests.
        (
            {
                "hostnames": ["a.example.com", "b.example.com"],
                "rules": [{"matches": [prefix("/x/"), prefix("/y")]}, {"matches": [prefix("/x")]}],
            },
            {
                key(host, path): claim()
                for host in ("a.example.com", "b.example.com")
                for path in ("/x", "/y")
            },
        ),
        # No matches, or a match without a path: every path.
        ({"rules": [{}]}, {key(""): claim()}),
        ({"rules": [{"matches": [{}]}]}, {key(""): claim()}),
        # Exact paths, and matches on headers, query parameters or the method, take a share.
        (
            {
                "rules": [
                    {
                        "matches": [
                            {"path": {"type": "Exact", "value": "/x"}},
                            prefix("/h", headers=[{"name": "x-canary", "value": "1"}]),
                            prefix("/q", queryParams=[{"name": "v", "value": "2"}]),
                            prefix("/m", method="POST"),
                        ]
                    }
                ]
            },
            {},
        ),
        # The listeners it attaches to on each Gateway; none named: all of them.
        (
            {
                "parentRefs": [
                    {"name": "public", "namespace": "gateways", "sectionName": "https"},
                    {"name": "public", "namespace": "gateways", "sectionName": "http"},
                    {"name": "private", "namespace": "gateways"},
                ]
            },
            {
                key(""): claim(sections=("http", "https")),
                key("", gateway="private"): claim(),
            },
        ),
        (
            {
                "parentRefs": [
                    {"name": "public", "namespace": "gateways", "sectionName": "https"},
                    {"name": "public", "namespace": "gateways"},
                ]
            },
            {key(""): claim()},
        ),
        # A Service (a mesh's parent) is no Gateway.
        (
            {"parentRefs": [{"group": "", "kind": "Service", "name": "public"}]},
            {},
        ),
    ],
)
def test_a_route_claims_each_hostname_and_path_prefix_on_each_gateway(
    spec: dict[str, Any], claims: dict[RouteKey, RouteClaim]
) -> None:
    assert claims_of(http_route(**spec)) == claims


def test_a_gateway_in_the_routes_namespace_is_the_default_parent() -> None:
    body = http_route(parentRefs=[{"name": "public"}])
    body["status"]["parents"][0]["parentRef"] = {"name": "public"}
    assert claims_of(body) == {RouteKey("team", "public", "", "/"): claim()}


def test_a_route_no_gateway_accepted_claims_nothing() -> None:
    refused = http_route()
    refused["status"]["parents"][0]["conditions"][0]["status"] = "False"
    assert claims_of(refused) == {}
    unanswered = copy.deepcopy(refused)
    unanswered["status"] = {}
    assert claims_of(unanswered) == {}


def test_a_change_of_a_route_tells_the_routes_it_now_takes_requests_from() -> None:
    mine = claims_of(http_route())
    index = {
        key(""): [
            mine[key("")],
            claim("newer", NEWER, "ml", uid="u1"),
            claim("older", "2026-12-07T08:00:00Z", "ml", uid="u2"),
            claim("elsewhere", NEWER, "ml", ("https",), uid="u3"),
        ],
        key("other.example.com"): [claim("host", NEWER, "ml", uid="u4")],
    }
    assert beaten(index, mine) == {("ml", "newer"), ("ml", "elsewhere")}
