"""The API's HTTPRoute: which Gateway it attaches to, what is rendered, how the Gateway's answer
becomes the Routed condition, Ready and the endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.render.children import render_route, route_gateway, route_target
from ferry.settings import Settings, SettingsError
from ferry.spec.model import GatewayRef, parse_spec
from ferry.spec.resource import ApiRef
from ferry.spec.schema import with_defaults
from ferry.status.claims import NO_CLAIMS
from ferry.status.compute import compute_status
from ferry.status.news import route_news
from ferry.status.route import (
    RouteTarget,
    RouteVerdict,
    gateway_url,
    route_verdict,
    with_recorded_refusal,
)

API = ApiRef("iris", "ml", "8d6e-uid", 3)
OPERATORS = GatewayRef("gateways", "public")
WITH_GATEWAY = Settings(gateway=OPERATORS)


def spec(**fields: Any) -> Any:
    return parse_spec(
        with_defaults({"predictor": {"image": "x.example.com/iris:1"}, **fields}), "ml"
    )


@pytest.mark.parametrize(
    ("route", "settings", "gateway"),
    [
        ({}, Settings(), None),
        ({}, WITH_GATEWAY, OPERATORS),
        ({"enabled": False}, WITH_GATEWAY, None),
        # The API's own Gateway, in its own namespace unless it says another.
        ({"gateway": {"name": "team"}}, Settings(), GatewayRef("ml", "team")),
        (
            {"gateway": {"name": "team", "namespace": "edge", "sectionName": "https"}},
            WITH_GATEWAY,
            GatewayRef("edge", "team", "https"),
        ),
        (
            {},
            Settings(gateway=OPERATORS, gateway_listener="web"),
            GatewayRef("gateways", "public", "web"),
        ),
    ],
)
def test_the_route_attaches_to_the_apis_gateway_else_the_operators(
    route: dict[str, Any], settings: Settings, gateway: GatewayRef | None
) -> None:
    assert route_gateway(spec(route=route), settings) == gateway


def test_the_route_sends_the_prefix_to_the_service_with_the_prefix_removed() -> None:
    rendered = render_route(API, spec(), OPERATORS)
    assert rendered["metadata"]["ownerReferences"][0]["uid"] == "8d6e-uid"
    assert rendered["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "namespace": "gateways",
            "name": "public",
        }
    ]
    assert "hostnames" not in rendered["spec"]
    (rule,) = rendered["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/ml/iris"}}]
    assert rule["filters"][0]["urlRewrite"]["path"] == {
        "type": "ReplacePrefixMatch",
        "replacePrefixMatch": "/",
    }
    assert rule["backendRefs"] == [{"name": "iris", "port": 80}]
    # Longer than the API's own 60 s, so that the proxy's 504 is the one clients get.
    assert rule["timeouts"] == {"request": "65s"}


def test_a_hostname_at_the_root_path_needs_no_rewrite() -> None:
    rendered = render_route(
        API,
        spec(route={"hostname": "iris.models.example.com", "pathPrefix": "/"}),
        GatewayRef("gateways", "public", "https"),
    )
    assert rendered["spec"]["hostnames"] == ["iris.models.example.com"]
    assert rendered["spec"]["parentRefs"][0]["sectionName"] == "https"
    (rule,) = rendered["spec"]["rules"]
    assert "filters" not in rule


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"FERRY_GATEWAY": "public"}, "<namespace>/<name>"),
        ({"FERRY_GATEWAY": "gateways/Public"}, "<namespace>/<name>"),
        ({"FERRY_GATEWAY": "a/b/c"}, "<namespace>/<name>"),
        ({"FERRY_GATEWAY_LISTENER": "web"}, "names no Gateway"),
        ({"FERRY_GATEWAY": "gateways/public", "FERRY_GATEWAY_LISTENER": "Web!"}, "listener's name"),
    ],
)
def test_a_bad_gateway_setting_is_refused_with_what_it_should_be(
    env: dict[str, str], words: str
) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(env)


def test_the_gateway_setting_is_read_from_namespace_and_name() -> None:
    settings = Settings.from_env(
        {"FERRY_GATEWAY": "gateways/public", "FERRY_GATEWAY_LISTENER": "web"}
    )
    assert (settings.gateway, settings.gateway_listener) == (OPERATORS, "web")
    assert Settings.from_env({"FERRY_GATEWAY": ""}).gateway is None


TARGET = RouteTarget(OPERATORS, None, "/ml/iris")


def gateway(
    listeners: list[dict[str, Any]] | None = None, addresses: list[str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": "public", "namespace": "gateways"},
        "spec": {
            "gatewayClassName": "eg",
            "listeners": listeners or [{"name": "http", "protocol": "HTTP", "port": 80}],
        },
        "status": {"addresses": [{"type": "IPAddress", "value": a} for a in addresses or ()]},
    }


def route(
    *conditions: tuple[str, str, str], generation: int = 2, observed: int = 2
) -> dict[str, Any]:
    parent = {
        "parentRef": {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "namespace": "gateways",
            "name": "public",
        },
        "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
        "conditions": [
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": f"{reason} said",
                "observedGeneration": observed,
            }
            for kind, status, reason in conditions
        ],
    }
    return {
        "metadata": {
            "name": "iris",
            "namespace": "ml",
            "uid": "route-uid",
            "creationTimestamp": "2026-12-07T10:00:00Z",
            "generation": generation,
        },
        "status": {"parents": [parent] if conditions else []},
    }


ACCEPTED = ("Accepted", "True", "Accepted")
RESOLVED = ("ResolvedRefs", "True", "ResolvedRefs")


@pytest.mark.parametrize(
    ("the_route", "the_gateway", "status", "reason"),
    [
        (route(ACCEPTED, RESOLVED), gateway(addresses=["10.0.0.7"]), "True", "Accepted"),
        (None, None, "False", "GatewayNotFound"),
        (None, gateway(), "Unknown", "RoutePending"),
        # No controller has answered, or only of an older generation of the route.
        (route(), gateway(), "Unknown", "WaitingForGateway"),
        (
            route(ACCEPTED, RESOLVED, generation=3, observed=2),
            gateway(),
            "Unknown",
            "WaitingForGateway",
        ),
        (route(ACCEPTED), gateway(), "Unknown", "WaitingForGateway"),
        # The controller's own reasons, as it gave them.
        (
            route(("Accepted", "False", "NotAllowedByListeners"), RESOLVED),
            gateway(),
            "False",
            "NotAllowedByListeners",
        ),
        (
            route(ACCEPTED, ("ResolvedRefs", "False", "BackendNotFound")),
            gateway(),
            "False",
            "BackendNotFound",
        ),
    ],
)
def test_the_verdict_is_the_gateways_answer_for_this_generation_of_the_route(
    the_route: dict[str, Any] | None, the_gateway: dict[str, Any] | None, status: str, reason: str
) -> None:
    verdict = route_verdict(TARGET, the_route, the_gateway, NO_CLAIMS)
    assert (verdict.status, verdict.reason) == (status, reason)


def test_a_refusal_quotes_the_controller() -> None:
    verdict = route_verdict(
        TARGET,
        route(("Accepted", "False", "NotAllowedByListeners"), RESOLVED),
        gateway(),
        NO_CLAIMS,
    )
    assert verdict.message == (
        "Gateway gateways/public refused the route (Accepted=False): NotAllowedByListeners said"
    )


@pytest.mark.parametrize(
    ("target", "the_gateway", "url"),
    [
        (TARGET, gateway(addresses=["10.0.0.7"]), "http://10.0.0.7/ml/iris/"),
        (RouteTarget(OPERATORS, "iris.example.com", "/"), gateway(), "http://iris.example.com/"),
        (
            TARGET,
            gateway([{"name": "web", "protocol": "HTTP", "port": 8080}], ["10.0.0.7"]),
            "http://10.0.0.7:8080/ml/iris/",
        ),
        (
            RouteTarget(GatewayRef("gateways", "public", "tls"), None, "/ml/iris"),
            gateway(
                [
                    {"name": "web", "protocol": "HTTP", "port": 80},
                    {"name": "tls", "protocol": "HTTPS", "port": 443},
                ],
                ["fd00::7"],
            ),
            "https://[fd00::7]/ml/iris/",
        ),
        # No address yet, or no HTTP listener: no URL to give.
        (TARGET, gateway(), None),
        (TARGET, gateway([{"name": "tcp", "protocol": "TCP", "port": 5432}], ["10.0.0.7"]), None),
    ],
)
def test_the_url_is_the_hostname_or_the_gateways_address_on_its_listener(
    target: RouteTarget, the_gateway: dict[str, Any], url: str | None
) -> None:
    assert gateway_url(target, the_gateway) == url


def rolled_out() -> dict[str, Any]:
    return {
        "metadata": {"generation": 5, "annotations": {"ferry.dev/api-generation": "2"}},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 5,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ],
        },
    }


def with_route(verdict: RouteVerdict | None) -> dict[str, Any]:
    return compute_status(
        api="iris",
        namespace="ml",
        generation=2,
        previous={},
        deployment=rolled_out(),
        model=None,
        now="2026-12-07T10:00:00Z",
        route=verdict,
    )


def conditions_of(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_ready_waits_for_the_gateway_and_the_endpoint_is_its_url() -> None:
    accepted = RouteVerdict("True", "Accepted", "ok", "http://10.0.0.7/ml/iris/")
    status = with_route(accepted)
    assert conditions_of(status)["Ready"] == ("True", "Available")
    assert conditions_of(status)["Routed"] == ("True", "Accepted")
    assert status["endpoint"] == "http://10.0.0.7/ml/iris/"

    waiting = with_route(RouteVerdict("Unknown", "WaitingForGateway", "waiting"))
    assert conditions_of(waiting)["Ready"] == ("False", "WaitingForGateway")
    assert waiting["phase"] == "Progressing"
    assert waiting["endpoint"] == "http://iris.ml.svc:80/"

    refused = with_route(RouteVerdict("False", "NotAllowedByListeners", "refused"))
    assert conditions_of(refused)["Ready"] == ("False", "NotAllowedByListeners")
    assert refused["phase"] == "Degraded"


def test_without_a_route_there_is_no_routed_condition() -> None:
    status = with_route(None)
    assert "Routed" not in conditions_of(status)
    assert status["endpoint"] == "http://iris.ml.svc:80/"


def test_an_event_tells_when_the_gateway_takes_or_refuses_the_route_and_only_then() -> None:
    accepted = with_route(RouteVerdict("True", "Accepted", "Gateway took it", "http://x/"))
    refused = with_route(RouteVerdict("False", "NotAllowedByListeners", "Gateway refused it"))
    waiting = with_route(RouteVerdict("Unknown", "WaitingForGateway", "waiting"))
    assert [(n.kind, n.reason) for n in route_news({}, accepted)] == [("Normal", "Routed")]
    assert [(n.kind, n.reason) for n in route_news(accepted, refused)] == [
        ("Warning", "NotAllowedByListeners")
    ]
    assert route_news(accepted, accepted) == []
    assert route_news({}, waiting) == []


def test_the_target_carries_hostname_and_default_prefix() -> None:
    assert route_target(
        API, spec(route={"hostname": "a.example.com"}), WITH_GATEWAY
    ) == RouteTarget(OPERATORS, "a.example.com", "/ml/iris")
    assert route_target(API, spec(), Settings()) is None


def test_a_refusal_of_the_route_stands_while_no_route_is_there_to_read() -> None:
    refused = with_route(RouteVerdict("False", "RouteRejected", "the API server refused it"))
    pending = RouteVerdict("Unknown", "RoutePending", "not applied yet")
    kept = with_recorded_refusal(pending, refused, 2)
    assert (kept.status, kept.reason, kept.message) == (
        "False",
        "RouteRejected",
        "the API server refused it",
    )
    # Another generation's refusal is not this one's; a route that is there speaks for itself.
    assert with_recorded_refusal(pending, refused, 3) == pending
    accepted = RouteVerdict("True", "Accepted", "ok")
    assert with_recorded_refusal(accepted, refused, 2) == accepted
