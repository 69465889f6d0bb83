"""The API's HTTPRoute: applied when it should have one, deleted when it should not, and read
back, with its Gateway, for the verdict the status carries."""

from __future__ import annotations

import asyncio

from ferry import names
from ferry.adapters.kube import GATEWAY_API, Kube, RejectedError, path_of
from ferry.render.children import render_route
from ferry.spec.model import GatewayRef
from ferry.spec.resource import RealtimeAPI
from ferry.status.claims import RouteClaims
from ferry.status.conditions import FALSE, UNKNOWN
from ferry.status.ownership import owned_by
from ferry.status.route import ROUTE_REJECTED, RouteTarget, RouteVerdict, route_verdict

ROUTE_NAME_IN_USE = "RouteNameInUse"


def route_path(namespace: str, name: str) -> str:
    return path_of(GATEWAY_API, "HTTPRoute", namespace, name)


def gateway_path(gateway: GatewayRef) -> str:
    return path_of(GATEWAY_API, "Gateway", gateway.namespace, gateway.name)


async def apply_route(kube: Kube, api: RealtimeAPI, target: RouteTarget) -> RouteVerdict | None:
    """Apply the API's HTTPRoute; a verdict when it could not be (another object holds the
    name, or the API server refused it), None when it was."""
    ref = api.ref
    try:
        existing = await kube.get(route_path(ref.namespace, ref.name))
    except RejectedError as error:
        return RouteVerdict(FALSE, ROUTE_REJECTED, f"HTTPRoute {ref.name} cannot be read: {error}")
    if existing is not None and not owned_by(existing, ref.uid):
        return name_in_use(api)
    try:
        route = render_route(ref, api.spec, target.gateway, target.canary_weight)
        await kube.apply(route, names.FIELD_MANAGER)
    except RejectedError as error:
        if error.status == 404:  # noqa: PLR2004
            return not_served(api)
        why = error.reason or str(error)
        return RouteVerdict(
            FALSE, ROUTE_REJECTED, f"the API server refused HTTPRoute {ref.name}: {why}"
        )
    return None


def name_in_use(api: RealtimeAPI) -> RouteVerdict:
    ref = api.ref
    return RouteVerdict(
        FALSE,
        ROUTE_NAME_IN_USE,
        f"HTTPRoute {ref.namespace}/{ref.name} exists and is not this API's: delete or rename "
        "it, and the API's own takes its place",
    )


def not_served(api: RealtimeAPI) -> RouteVerdict:
    return RouteVerdict(
        FALSE,
        ROUTE_REJECTED,
        f"the API server refused HTTPRoute {api.ref.name}: this cluster does not serve Gateway "
        "API (gateway.networking.k8s.io/v1): install its CRDs and a Gateway controller, or unset "
        "the Gateway",
    )


async def remove_route(kube: Kube, api: RealtimeAPI) -> bool:
    """Delete the API's own HTTPRoute, if it has one; whether it did."""
    ref = api.ref
    path = route_path(ref.namespace, ref.name)
    existing = await kube.get(path)
    if existing is None or not owned_by(existing, ref.uid):
        return False
    try:
        await kube.request("DELETE", path)
    except RejectedError as error:
        if error.status == 404:  # noqa: PLR2004 - gone meanwhile
            return False
        raise
    return True


async def read_verdict(
    kube: Kube, api: RealtimeAPI, target: RouteTarget, claims: RouteClaims
) -> RouteVerdict:
    """The verdict on the API's HTTPRoute as its Gateway's controller reports it now, beside
    the other routes' `claims` on the same requests."""
    ref = api.ref
    try:
        route, gateway = await asyncio.gather(
            kube.get(route_path(ref.namespace, ref.name)), kube.get(gateway_path(target.gateway))
        )
    except RejectedError as error:  # Ferry's RBAC, most likely
        return RouteVerdict(UNKNOWN, "RouteUnreadable", f"cannot read the route: {error}")
    if route is not None and not owned_by(route, ref.uid):
        return name_in_use(api)
    if gateway is None and route is None and await kube.get(f"/apis/{GATEWAY_API}") is None:
        return not_served(api)
    return route_verdict(target, route, gateway, claims)
