"""The Deployment and Service of a RealtimeAPI, as dicts ready for server-side apply.

Every value reaches the YAML through the `j` filter, which writes a `!v N` placeholder in its
place and keeps the value aside: no spec value is ever parsed as YAML, so none can add keys,
documents or structure. The YAML around the placeholders (the shape) is the same for every API
of the same form; it is parsed once and the values are put into a copy of what it parsed to.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import jinja2
import yaml

from ferry import names
from ferry.capacity.node_group import NodeGroup
from ferry.settings import Settings
from ferry.spec.model import GatewayRef, InvalidSpecError, RealtimeAPISpec
from ferry.spec.resource import ApiRef
from ferry.spec.schema import GROUP, KIND, VERSION
from ferry.status.route import RouteTarget

# Seconds a terminating pod has, beyond its drain delay and then its longest request, before the
# kubelet kills it: for the proxy to close its connections and the predictor, whose preStop
# waits for that, to exit.
EXIT_MARGIN_SECONDS = 12

CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class _Slot:
    """Where the `index`th value of a render goes in the parsed shape."""

    index: int


@jinja2.pass_context
def _slot(context: jinja2.runtime.Context, value: Any) -> str:
    values: list[Any] = context["_values"]
    values.append(value)
    return f"!v {len(values) - 1}"


def _plain(value: Any) -> Any:
    # JSON writes tuples as lists itself; mappings that are not dicts (kopf's, frozen ones) not.
    if hasattr(value, "items"):
        return dict(value.items())
    raise TypeError(f"cannot render {type(value).__name__}")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ferry.render", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - YAML, not HTML; values never reach the YAML text
        keep_trailing_newline=True,
    )
    env.filters["j"] = _slot
    return env


def owner_reference(api: ApiRef) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": api.name,
        "uid": api.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def node_group_for(spec: RealtimeAPISpec, settings: Settings) -> NodeGroup | None:
    name = spec.node_group or settings.default_node_group
    if name is None:
        return None
    group = settings.node_groups.get(name)
    if group is None:
        known = ", ".join(sorted(settings.node_groups)) or "none are configured"
        raise InvalidSpecError(
            "nodeGroup", f"{name!r} is not a node group of this operator ({known})"
        )
    return group


def route_gateway(spec: RealtimeAPISpec, settings: Settings) -> GatewayRef | None:
    """The Gateway the API's HTTPRoute attaches to: its own, else the operator's; None when it
    gets no route (none is configured, or it opts out)."""
    route = spec.route
    if not route.enabled:
        return None
    if route.gateway is not None:
        return route.gateway
    if settings.gateway is None:
        return None
    return GatewayRef(settings.gateway.namespace, settings.gateway.name, settings.gateway_listener)


def path_prefix(api: ApiRef, spec: RealtimeAPISpec) -> str:
    return spec.route.path_prefix or f"/{api.namespace}/{api.name}"


def route_target(api: ApiRef, spec: RealtimeAPISpec, settings: Settings) -> RouteTarget | None:
    """The HTTPRoute the API should have; None: it should have none."""
    gateway = route_gateway(spec, settings)
    if gateway is None:
        return None
    return RouteTarget(gateway, spec.route.hostname, path_prefix(api, spec))


def check_canary(spec: RealtimeAPISpec, target: RouteTarget | None) -> None:
    """A canary's share of the requests is the route's to send: without a route, refused."""
    if spec.canary is None or target is not None:
        return
    if not spec.route.enabled:
        raise InvalidSpecError(
            "canary", "needs the API's HTTPRoute, which spec.route.enabled turns off"
        )
    raise InvalidSpecError(
        "canary",
        "needs a Gateway: name one in spec.route.gateway or configure the operator's FERRY_GATEWAY",
    )


# Seconds the gateway waits for an answer beyond the API's own timeout, so that a request the
# proxy times out gets the proxy's 504, which says why, rather than the gateway's.
GATEWAY_TIMEOUT_MARGIN_SECONDS = 5


def drain_delay_seconds(spec: RealtimeAPISpec, settings: Settings) -> int:
    """Seconds a terminating replica keeps accepting new connections: the API's own drain
    delay, else the operator's."""
    return spec.serving.drain_delay_seconds or settings.drain_delay


def termination_grace_seconds(spec: RealtimeAPISpec, drain_delay: int) -> int:
    """The pod's grace period: the drain delay, then the longest a request accepted at its end
    may take (timeoutSeconds, queueing included), then the exit. The proxy's own grace period
    is the first two, so it answers or cuts everything before the kubelet would kill it."""
    return drain_delay + spec.serving.timeout_seconds + EXIT_MARGIN_SECONDS


def predictor_resources(spec: RealtimeAPISpec) -> dict[str, Any]:
    resources = spec.predictor.resources
    requests: dict[str, str] = {"cpu": resources.cpu, "memory": resources.memory}
    # Memory is limited at the request so a replica is never OOM-killed by a neighbour's burst;
    # CPU is left unlimited, since throttling only adds latency.
    limits: dict[str, str] = {"memory": resources.memory}
    if resources.gpu:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(resources.gpu)
    return {"requests": requests, "limits": limits}


class _ShapeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser where PyYAML was built with it (its wheels are), reading `!v N` as a
    slot."""


_ShapeLoader.add_constructor("!v", lambda _, node: _Slot(int(node.value)))


# PyYAML builds the parsed document in Python: 2 ms of a Deployment's 2.5 ms render, paid
# between an API's creation and its Deployment's, and by every API at an operator's start.
@lru_cache(maxsize=256)
def _shape(text: str) -> Any:
    return yaml.load(text, Loader=_ShapeLoader)  # noqa: S506 (a safe loader)


def _fill(shape: Any, values: list[Any]) -> Any:
    if isinstance(shape, _Slot):
        # Through JSON, as the API server will see it: plain dicts, lists and scalars.
        return json.loads(json.dumps(values[shape.index], default=_plain))
    if isinstance(shape, dict):
        return {_fill(k, values): _fill(v, values) for k, v in shape.items()}
    if isinstance(shape, list):
        return [_fill(item, values) for item in shape]
    return shape


def _render(template: str, **context: Any) -> dict[str, Any]:
    values: list[Any] = []
    text = _environment().get_template(template).render(_values=values, **context)
    rendered: dict[str, Any] = _fill(_shape(text), values)
    return rendered


def _common(api: ApiRef, component: str = names.PREDICTOR) -> dict[str, Any]:
    canary = component == names.CANARY
    return {
        "api": api,
        "name": names.canary_name(api.name) if canary else api.name,
        "labels": names.labels(api.name, component),
        # The stable Deployment keeps the selector it was created with (it cannot change).
        "selector": names.component_labels(api.name, component)
        if canary
        else names.selector_labels(api.name),
        "pods": names.component_labels(api.name, component),
        "owner": owner_reference(api),
    }


def render_service(api: ApiRef, component: str = names.PREDICTOR) -> dict[str, Any]:
    """The Service of the API's stable pods, or (component canary) of its canary's."""
    return _render("service.yaml.j2", service_port=names.SERVICE_PORT, **_common(api, component))


def render_route(
    api: ApiRef, spec: RealtimeAPISpec, gateway: GatewayRef, canary_weight: int = 0
) -> dict[str, Any]:
    """The HTTPRoute that sends the Gateway's requests for the API to its Service: under its
    path prefix (removed on the way), for its hostname if it has one; `canary_weight` percent
    of them to the canary's Service (0: the canary is not on the route)."""
    parent: dict[str, str] = {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": gateway.namespace,
        "name": gateway.name,
    }
    if gateway.section is not None:
        parent["sectionName"] = gateway.section
    timeout = spec.serving.timeout_seconds + GATEWAY_TIMEOUT_MARGIN_SECONDS
    backends: list[dict[str, Any]] = [{"name": api.name, "weight": None}]
    if canary_weight > 0:
        backends = [
            {"name": api.name, "weight": 100 - canary_weight},
            {"name": names.canary_name(api.name), "weight": canary_weight},
        ]
    return _render(
        "httproute.yaml.j2",
        route=spec.route,
        backends=backends,
        parent=parent,
        path_prefix=path_prefix(api, spec),
        service_port=names.SERVICE_PORT,
        request_timeout=f"{timeout}s",
        **_common(api),
    )


def render_deployment(
    api: ApiRef,
    spec: RealtimeAPISpec,
    settings: Settings,
    *,
    model_version: str | None,
    replicas: int | None,
    component: str = names.PREDICTOR,
) -> dict[str, Any]:
    """The Deployment; `replicas` only when creating it: afterwards the autoscaler owns them.
    The canary's (component canary) is rendered from `spec.canary_spec()`."""
    drain_delay = drain_delay_seconds(spec, settings)
    deployment = _render(
        "deployment.yaml.j2",
        spec=spec,
        replicas=replicas,
        model_version=model_version,
        node_group=node_group_for(spec, settings),
        image=settings.image,
        predictor_resources=predictor_resources(spec),
        container_security=CONTAINER_SECURITY,
        drain_delay_seconds=drain_delay,
        termination_grace_seconds=termination_grace_seconds(spec, drain_delay),
        model_dir=names.MODEL_DIR,
        proxy_port=names.PROXY_PORT,
        proxy_admin_port=names.PROXY_ADMIN_PORT,
        generation_annotation=names.GENERATION_ANNOTATION,
        image_annotation=names.IMAGE_ANNOTATION,
        model_version_annotation=names.MODEL_VERSION_ANNOTATION,
        **_common(api, component),
    )
    template = deployment["spec"]["template"]
    template["metadata"]["annotations"][names.TEMPLATE_HASH_ANNOTATION] = template_hash(template)
    return deployment


# The label the Deployment controller adds to each ReplicaSet's copy of the pod template.
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"


def reusable_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """A pod template as a ReplicaSet or Deployment holds it, fit to apply to the Deployment
    again: without the controller's own label and the empty creation time it prints."""
    copied: dict[str, Any] = copy.deepcopy(dict(template))
    metadata = copied.setdefault("metadata", {})
    metadata.pop("creationTimestamp", None)
    (metadata.get("labels") or {}).pop(POD_TEMPLATE_HASH_LABEL, None)
    return copied


def template_hash(template: Any) -> str:
    """A digest of a rendered pod template: equal templates, equal digests, whatever the order
    of their keys."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
