"""An API's canary: its Deployment and Service beside the stable version's, its weight on the
API's HTTPRoute, and their deletion once the canary is off the route and drained.

The route is what keeps requests from failing: it sends the canary its share only while the
canary has an available replica, and the canary's objects are deleted only once the Gateway's
controller has answered for the route without it and the drain delay has passed
(ferry.status.canary). Each change of the route's canary backend, and the deletion, is made under
the API's status lock and for the API's current generation, so a stale writer can never put the
canary back on the route of an API whose canary is gone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ferry import names
from ferry.adapters.aws import Aws, AwsTemporaryError
from ferry.adapters.kube import Kube, RejectedError
from ferry.artifacts.versions import ModelCheck, ModelReason
from ferry.render.children import (
    drain_delay_seconds,
    render_deployment,
    render_service,
    route_target,
)
from ferry.services.events import Recorder
from ferry.services.model import check_failed, check_model
from ferry.services.replicas import set_initial_replicas
from ferry.services.retry import backoff
from ferry.services.route import apply_route, route_path
from ferry.services.status import deployment_path, now_iso, publish, read_canary, service_path
from ferry.services.status_writer import StatusWriter
from ferry.settings import Settings
from ferry.spec.model import ModelSource
from ferry.spec.resource import ApiRef, RealtimeAPI
from ferry.status.canary import CanaryBlock, desired_weight, removal_due
from ferry.status.claims import NO_CLAIMS, RouteClaims
from ferry.status.compute import REJECTED
from ferry.status.ownership import name_in_use, owned_by
from ferry.status.pods import PodState
from ferry.status.route import RouteTarget, canary_weight_of


def canary_paths(ref: ApiRef) -> tuple[str, str]:
    """The paths of the canary's Deployment and Service."""
    name = names.canary_name(ref.name)
    return deployment_path(ref.namespace, name), service_path(ref.namespace, name)


@dataclass(frozen=True)
class Applied:
    deployment: dict[str, Any] | None
    """The canary's Deployment as it is now (None: there is none)."""
    blocked: CanaryBlock | None = None
    """Why this generation's canary could not be applied; what ran before stays."""


async def apply_canary(
    kube: Kube,
    aws: Aws,
    settings: Settings,
    api: RealtimeAPI,
    *,
    stable_version: str | None,
    attempt: int,
) -> Applied:
    """Apply the canary's Deployment and Service, rendered from the stable version's templates
    with its image and model version (`stable_version`, the stable's model version resolved,
    unless the canary names its own)."""
    ref, spec = api.ref, api.spec
    deployment_at, service_at = canary_paths(ref)
    existing, service = await kube.get(deployment_at), await kube.get(service_at)
    blocked = name_in_use(ref, {"Deployment": existing, "Service": service})
    if blocked is not None:
        return Applied(None, CanaryBlock(blocked.reason, blocked.message))
    version = stable_version
    canary = spec.canary
    if spec.model is not None and canary is not None and canary.model_version is not None:
        source = ModelSource(spec.model.uri, canary.model_version)
        check = await _model(aws, existing, source, ref, attempt)
        if not check.available:
            why = f"its model: {check.message}"
            return Applied(existing, CanaryBlock(check.reason.value, why))
        version = check.version
    deployment = render_deployment(
        ref,
        spec.canary_spec(),
        settings,
        model_version=version,
        replicas=None,
        component=names.CANARY,
    )
    try:
        applied, created = await kube.apply(deployment, names.FIELD_MANAGER)
        if created:
            replicas = spec.autoscaling.min_replicas
            applied = await set_initial_replicas(kube, deployment_at, replicas, applied)
        await kube.apply(render_service(ref, names.CANARY), names.FIELD_MANAGER)
    except RejectedError as error:
        why = f"the API server refused it: {error.reason}"
        return Applied(existing, CanaryBlock(REJECTED, why))
    return Applied(applied)


async def _model(
    aws: Aws, existing: Mapping[str, Any] | None, source: ModelSource, ref: ApiRef, attempt: int
) -> ModelCheck:
    """The canary's model version, resolved once per generation: a canary Deployment already
    applied for this generation keeps the version it was given."""
    if existing is not None and owned_by(existing, ref.uid):
        annotations = existing["metadata"].get("annotations") or {}
        template = existing["spec"]["template"]["metadata"].get("annotations") or {}
        resolved = template.get(names.MODEL_VERSION_ANNOTATION)
        if annotations.get(names.GENERATION_ANNOTATION) == str(ref.generation) and resolved:
            return ModelCheck(ModelReason.AVAILABLE, f"version {resolved}", str(resolved))
    try:
        return await check_model(aws, source)
    except AwsTemporaryError as error:
        return check_failed(error, attempt + 1, backoff(attempt))


async def shift_traffic(
    kube: Kube, writer: StatusWriter, api: RealtimeAPI, target: RouteTarget
) -> RouteTarget:
    """Put the canary's weight on the API's route as its Deployment allows now (its share while
    it has an available replica, else none), if the route does not carry it already. Returns
    the target with that weight."""
    ref = api.ref
    async with writer.serialized(ref):
        current = await writer.current(api)
        if current is None:  # a newer generation: its own reconcile shifts
            return target
        deployment = await read_canary(kube, ref)
        target = dataclasses.replace(
            target, canary_weight=desired_weight(api.spec.canary, deployment)
        )
        route = await kube.get(route_path(ref.namespace, ref.name))
        ours = route is not None and owned_by(route, ref.uid)
        if ours and route is not None and canary_weight_of(route) != target.canary_weight:
            # A refusal is the reconciler's to tell of; it tries again with back-off.
            await apply_route(kube, api, target)
    return target


async def remove_canary(
    kube: Kube,
    writer: StatusWriter,
    settings: Settings,
    api: RealtimeAPI,
    *,
    record: Recorder,
    pods: Iterable[PodState] = (),
    claims: RouteClaims = NO_CLAIMS,
) -> bool:
    """Delete the canary's Deployment and Service once the status says it is off the route and
    drained; whether it did. The route is read again first: a canary back on it stays."""
    ref = api.ref
    async with writer.serialized(ref):
        current = await writer.current(api)
        if current is None or current.spec.canary is not None:
            return False
        if not removal_due(current.status, now_iso()):
            return False
        route = await kube.get(route_path(ref.namespace, ref.name))
        if route is not None and owned_by(route, ref.uid) and canary_weight_of(route) > 0:
            return False
        deployment_at, service_at = canary_paths(ref)
        # The Service first: a Deployment left alone is still told in the status, and deleted
        # at the next attempt.
        for path in (service_at, deployment_at):
            found = await kube.get(path)
            if found is not None and owned_by(found, ref.uid):
                await _delete(kube, path, found["metadata"]["uid"])
        stable = await kube.get(deployment_path(ref.namespace, ref.name))
        await publish(
            kube,
            writer,
            current,
            stable if stable is not None and owned_by(stable, ref.uid) else None,
            pods=pods,
            record=record,
            route=route_target(ref, current.spec, settings),
            claims=claims,
            drain_seconds=drain_delay_seconds(current.spec, settings),
        )
    record(
        "Normal",
        "CanaryRemoved",
        f"deleted Deployment and Service {names.canary_name(ref.name)}: off the route, drained",
    )
    return True


async def _delete(kube: Kube, path: str, uid: str) -> None:
    """Delete the object at `path` if it is still the one read (its uid)."""
    try:
        await kube.request("DELETE", path, body={"preconditions": {"uid": uid}})
    except RejectedError as error:
        if error.status != 404:  # noqa: PLR2004 - gone meanwhile
            raise
