"""What the autoscaler's ticks and the reconciler's status writes read from memory instead of the
API server: each API's pods and its Deployment's replicas, kept current by kopf's watches of
Ferry's own Pods and Deployments; every HTTPRoute's claims on a Gateway's requests, and the APIs
whose route loses its requests to another route's.

Index functions run at every event of every object they match, so they keep only the few fields
their readers need, as small frozen values, keyed by (namespace, API name) or what they are
looked up by.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ferry import names
from ferry.services.autoscale import deployment_replicas
from ferry.spec.schema import GROUP, PLURAL, VERSION
from ferry.status.claims import RouteClaim, RouteKey
from ferry.status.conditions import condition
from ferry.status.ownership import controller_of
from ferry.status.pods import PodState
from ferry.status.route import ROUTE_CONFLICT, ROUTED, claims_of

ApiKey = tuple[str, str]
"""(namespace, RealtimeAPI name)."""

# kopf filters by label in the operator, not in the watch: every Pod event of the watched
# namespaces is received, and only Ferry's reach the index function.
_FERRYS = {"app.kubernetes.io/managed-by": names.MANAGED_BY}


def api_pods(
    body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[ApiKey, PodState]:
    """Each API's stable pods, as the autoscaler's tick and the reconciler's status writes read
    them (its canary's have a Deployment, and a demand, of their own)."""
    if labels.get(names.COMPONENT_LABEL) == names.CANARY:
        return {}
    return {(str(namespace), labels[names.API_LABEL]): PodState.of(body)}


def canary_pods(
    body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[ApiKey, PodState]:
    """Each API's canary pods, which the autoscaler scales the canary on."""
    if labels.get(names.COMPONENT_LABEL) != names.CANARY:
        return {}
    return {(str(namespace), labels[names.API_LABEL]): PodState.of(body)}


def api_replicas(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[ApiKey, tuple[str, int]]:
    """Each API's Deployment's replicas, with the uid of the API that controls it: the
    autoscaler scales only its own API's (ferry.status.ownership), never one left without an
    owner or by an earlier API of the name."""
    controller = controller_of(body)
    if controller is None or controller.get("name") != name:
        return {}  # (not None, which would keep what the Deployment was indexed under before)
    # The reconciler names an API's Deployment after the API.
    return {(str(namespace), name): (str(controller.get("uid")), deployment_replicas(body))}


def route_claims(body: kopf.Body, **_: Any) -> dict[RouteKey, RouteClaim]:
    """Every HTTPRoute's claims on the requests of the Gateways that accepted it, Ferry's and
    anyone else's: the reconciler's status writes tell an API whose requests an older route
    gets (ferry.status.claims)."""
    return claims_of(body)


def route_conflicts(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[str, ApiKey]:
    """The APIs whose status says another route gets their requests, under RouteConflict: a
    change of any route may give them back (the route that took them may be gone, and its
    claims with it)."""
    routed = condition(body.get("status") or {}, ROUTED) or {}
    if routed.get("reason") != ROUTE_CONFLICT:
        return {}
    return {ROUTE_CONFLICT: (str(namespace), name)}


def canary_replicas(
    body: kopf.Body, namespace: str | None, name: str, labels: kopf.Labels, **_: Any
) -> dict[ApiKey, tuple[str, int]]:
    """Each API's canary Deployment's replicas, with the uid of the API that controls it."""
    controller = controller_of(body)
    api = labels.get(names.API_LABEL)
    if (
        controller is None
        or labels.get(names.COMPONENT_LABEL) != names.CANARY
        or controller.get("name") != api
        or name != names.canary_name(str(api))
    ):
        return {}
    return {(str(namespace), str(api)): (str(controller.get("uid")), deployment_replicas(body))}


def register(registry: kopf.OperatorRegistry) -> None:
    # kopf passes each index to handlers as a keyword named after its id (the function's name).
    pods: Mapping[str, Any] = {**_FERRYS, names.API_LABEL: kopf.PRESENT}
    kopf.index("v1", "pods", labels=pods, registry=registry)(api_pods)
    kopf.index("apps", "v1", "deployments", labels=_FERRYS, registry=registry)(api_replicas)
    kopf.index("gateway.networking.k8s.io", "v1", "httproutes", registry=registry)(route_claims)
    kopf.index(GROUP, VERSION, PLURAL, registry=registry)(route_conflicts)
    kopf.index("v1", "pods", labels=pods, registry=registry)(canary_pods)
    kopf.index("apps", "v1", "deployments", labels=_FERRYS, registry=registry)(canary_replicas)
