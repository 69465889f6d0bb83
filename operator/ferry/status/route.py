"""Whether a RealtimeAPI's HTTPRoute is in use, read from what its Gateway's controller wrote.

Gateway API has the controller of each parent Gateway write one entry under the route's
`status.parents`, with the conditions Accepted (the Gateway takes the route) and ResolvedRefs
(its backends exist and may be referenced). The API is Ready only when both are True for the
Gateway Ferry attached it to, at the route's current generation; when the controller refuses,
the condition carries its reason and message. A route the Gateway accepts may still get
nothing: when an older route matches the same hostname and path on a listener they share, the
Gateway sends it the requests (ferry.status.claims), and the verdict says which route to
change. The URL clients use comes from the route's hostname or the Gateway's address, and from
the listener's protocol and port.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ferry import names
from ferry.spec.model import GatewayRef
from ferry.status.claims import RouteClaim, RouteClaims, RouteKey, first_claim, path_key
from ferry.status.conditions import FALSE, TRUE, UNKNOWN, Condition, condition

ROUTED = "Routed"
GATEWAY_NOT_FOUND = "GatewayNotFound"
WAITING_FOR_GATEWAY = "WaitingForGateway"
ROUTE_PENDING = "RoutePending"
ROUTE_REJECTED = "RouteRejected"
ROUTE_CONFLICT = "RouteConflict"
_GATEWAY_GROUP = "gateway.networking.k8s.io"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class RouteVerdict:
    status: str
    """True, False (the Gateway refused the route, or is missing) or Unknown (no answer yet)."""
    reason: str
    message: str
    url: str | None = None
    """Where clients reach the API through the Gateway; None until its address is known."""
    canary_weight: int = 0
    """The canary's weight on the route as read (0: not on it)."""

    @property
    def condition(self) -> Condition:
        return Condition(ROUTED, self.status, self.reason, self.message)


@dataclass(frozen=True)
class RouteTarget:
    """What the API's route should be: on which Gateway, for which host and path."""

    gateway: GatewayRef
    hostname: str | None
    path_prefix: str
    canary_weight: int = 0
    """Percent of the requests for the canary's Service (0: the canary is not on the route)."""


def route_verdict(
    target: RouteTarget,
    route: Mapping[str, Any] | None,
    gateway: Mapping[str, Any] | None,
    claims: RouteClaims,
) -> RouteVerdict:
    """The verdict on the API's HTTPRoute `route` (None: not applied yet) attached to
    `gateway` (None: there is no such Gateway), beside the other routes' `claims`."""
    where = target.gateway.describe()
    if gateway is None:
        return RouteVerdict(
            FALSE,
            GATEWAY_NOT_FOUND,
            f"{where} does not exist: create it, or name another in spec.route.gateway "
            "(or the operator's FERRY_GATEWAY)",
        )
    if route is None:
        return RouteVerdict(UNKNOWN, ROUTE_PENDING, f"the HTTPRoute for {where} is not applied yet")
    url = gateway_url(target, gateway)
    weight = canary_weight_of(route)
    class_name = (gateway.get("spec") or {}).get("gatewayClassName", "")
    waiting = RouteVerdict(
        UNKNOWN,
        WAITING_FOR_GATEWAY,
        f"waiting for the controller of GatewayClass {class_name!r} to accept the route on {where}",
        url,
        weight,
    )
    generation = int(route["metadata"].get("generation", 0))
    answer = _parent_status(route, target.gateway) or {}
    # Only what the controller said of this generation of the route.
    conditions = {
        c.get("type"): c
        for c in answer.get("conditions") or ()
        if int(c.get("observedGeneration", generation)) >= generation
    }
    for kind in ("Accepted", "ResolvedRefs"):
        told = conditions.get(kind) or {}
        if told.get("status") == FALSE:
            why = told.get("message") or told.get("reason")
            return RouteVerdict(
                FALSE,
                str(told.get("reason") or f"Not{kind}"),
                f"{where} refused the route ({kind}=False): {why}",
                url,
                weight,
            )
    if any(
        (conditions.get(kind) or {}).get("status") != TRUE for kind in ("Accepted", "ResolvedRefs")
    ):
        return waiting
    conflict = _conflict(target, route, claims)
    if conflict is not None:
        return conflict
    served = f"served at {url}" if url else "the Gateway has no address yet"
    return RouteVerdict(TRUE, "Accepted", f"{where} accepted the route; {served}", url, weight)


def canary_weight_of(route: Mapping[str, Any]) -> int:
    """The weight of the canary's Service on the API's route (Ferry's weights add up to 100)."""
    api = route["metadata"].get("name")
    for rule in (route.get("spec") or {}).get("rules") or ():
        for backend in rule.get("backendRefs") or ():
            if backend.get("name") == names.canary_name(str(api)):
                return int(backend.get("weight", 1))
    return 0


def _conflict(
    target: RouteTarget, route: Mapping[str, Any], claims: RouteClaims
) -> RouteVerdict | None:
    """RouteConflict when an older route gets the requests the API's route matches. It has no
    URL: the Gateway sends those requests to the other route."""
    meta = route["metadata"]
    gateway = target.gateway
    path = path_key(target.path_prefix)
    key = RouteKey(gateway.namespace, gateway.name, target.hostname or "", path)
    mine = RouteClaim(
        str(meta.get("namespace")),
        str(meta.get("name")),
        str(meta.get("uid")),
        str(meta.get("creationTimestamp")),
        (gateway.section,) if gateway.section else (),
    )
    first = first_claim(claims, key, mine)
    if first is None:
        return None
    host = f"host {target.hostname}" if target.hostname else "any host"
    return RouteVerdict(
        FALSE,
        ROUTE_CONFLICT,
        f"HTTPRoute {first.namespace}/{first.name} (created {first.created}) matched {host} "
        f"under path {path} on {gateway.describe()} before this API's route (created "
        f"{mine.created}), so the Gateway sends those requests to it: change "
        "spec.route.hostname or spec.route.pathPrefix, or that route",
    )


def claims_of(route: Mapping[str, Any]) -> dict[RouteKey, RouteClaim]:
    """What requests the HTTPRoute `route` takes from the routes that match them after it:
    on each Gateway that accepted it, its hostnames (or any host) under the path prefix of each
    rule's match on the path alone. (A match that also asks for headers, query parameters or a
    method is more specific than any path-only match, whichever route is older: it takes a
    share of the requests, not all of them.)"""
    meta = route["metadata"]
    namespace = str(meta.get("namespace"))
    spec = route.get("spec") or {}
    # The listeners the route has on each Gateway that accepted it; () for every listener.
    listeners: dict[tuple[str, str], tuple[str, ...]] = {}
    for ref in spec.get("parentRefs") or ():
        if (ref.get("group", _GATEWAY_GROUP), ref.get("kind", "Gateway")) != (
            _GATEWAY_GROUP,
            "Gateway",
        ):
            continue  # a Service, for a mesh: no Gateway's requests
        gateway = GatewayRef(ref.get("namespace") or namespace, ref["name"], ref.get("sectionName"))
        if not _accepted(route, gateway):
            continue
        # Interned: every route on a Gateway names it, and the index keeps one copy.
        where = (sys.intern(gateway.namespace), sys.intern(gateway.name))
        known = listeners.get(where)
        if gateway.section is None or known == ():
            listeners[where] = ()
        else:
            listeners[where] = tuple(sorted({*(known or ()), gateway.section}))
    paths = {path_key(prefix) for rule in spec.get("rules") or [{}] for prefix in _prefixes(rule)}
    hostnames = spec.get("hostnames") or [""]
    claims = {}
    for (gateway_namespace, gateway_name), sections in listeners.items():
        # One value for all of the Gateway's keys: the index holds it once.
        claim = RouteClaim(
            namespace,
            str(meta.get("name")),
            str(meta.get("uid")),
            str(meta.get("creationTimestamp")),
            sections,
        )
        for hostname in hostnames:
            for path in paths:
                claims[RouteKey(gateway_namespace, gateway_name, str(hostname), path)] = claim
    return claims


def _prefixes(rule: Mapping[str, Any]) -> Iterator[str]:
    # A rule without matches, and a match without a path, match every path (PathPrefix "/").
    for match in rule.get("matches") or [{}]:
        if match.get("headers") or match.get("queryParams") or match.get("method"):
            continue
        path = match.get("path") or {}
        if path.get("type", "PathPrefix") == "PathPrefix":
            yield str(path.get("value", "/"))


def _accepted(route: Mapping[str, Any], gateway: GatewayRef) -> bool:
    answer = _parent_status(route, gateway) or {}
    return any(
        c.get("type") == "Accepted" and c.get("status") == TRUE
        for c in answer.get("conditions") or ()
    )


def _parent_status(route: Mapping[str, Any], gateway: GatewayRef) -> Mapping[str, Any] | None:
    namespace = route["metadata"].get("namespace")
    for parent in (route.get("status") or {}).get("parents") or ():
        ref = parent.get("parentRef") or {}
        if (
            ref.get("kind", "Gateway") == "Gateway"
            and ref.get("name") == gateway.name
            and (ref.get("namespace") or namespace) == gateway.namespace
            and ref.get("sectionName") == gateway.section
        ):
            found: Mapping[str, Any] = parent
            return found
    return None


def gateway_url(target: RouteTarget, gateway: Mapping[str, Any]) -> str | None:
    """http(s)://host[:port]/prefix/ of the API through `gateway`: the route's hostname, else
    the Gateway's first address; the listener the route names, else the first HTTP(S) one."""
    listeners: Sequence[Mapping[str, Any]] = (gateway.get("spec") or {}).get("listeners") or ()
    usable = [
        listener
        for listener in listeners
        if str(listener.get("protocol", "")).lower() in _DEFAULT_PORTS
        and (target.gateway.section is None or listener.get("name") == target.gateway.section)
    ]
    if not usable:
        return None
    listener = usable[0]
    host = target.hostname
    if host is None:
        addresses = (gateway.get("status") or {}).get("addresses") or ()
        if not addresses:
            return None
        host = str(addresses[0].get("value"))
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
    scheme = str(listener["protocol"]).lower()
    port = int(listener.get("port", _DEFAULT_PORTS[scheme]))
    authority = host if port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = target.path_prefix.rstrip("/") + "/"
    return f"{scheme}://{authority}{path}"


def with_recorded_refusal(
    verdict: RouteVerdict, status: Mapping[str, Any], generation: int
) -> RouteVerdict:
    """A route the API server refused is not there to read (RoutePending): the reconciler's
    refusal, recorded for this generation, stands until it applies the route."""
    told = condition(status, ROUTED) or {}
    if (
        verdict.reason == ROUTE_PENDING
        and told.get("reason") == ROUTE_REJECTED
        and told.get("observedGeneration") == generation
    ):
        return RouteVerdict(FALSE, ROUTE_REJECTED, str(told.get("message", "")))
    return verdict
