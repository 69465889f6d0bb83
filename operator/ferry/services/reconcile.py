"""The level-based reconcile of one RealtimeAPI: spec → Service + Deployment → status.

Create, resume and update all land here, so the outcome depends only on the current spec and
the cluster, never on which event arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ferry import names
from ferry.adapters.aws import Aws, AwsError, AwsTemporaryError
from ferry.adapters.kube import Kube, RejectedError, TemporaryKubeError
from ferry.artifacts.versions import ModelCheck, ModelReason
from ferry.render.children import (
    check_canary,
    drain_delay_seconds,
    node_group_for,
    render_deployment,
    render_service,
    route_target,
)
from ferry.services.canary import Applied, apply_canary, shift_traffic
from ferry.services.events import Recorder
from ferry.services.logs import ensure_log_group, log_group_name
from ferry.services.model import check_failed, check_model, checking
from ferry.services.replicas import set_initial_replicas
from ferry.services.retry import RetryLaterError, backoff
from ferry.services.rollout import restored_template
from ferry.services.route import apply_route, remove_route
from ferry.services.status import (
    deployment_path,
    has_canary,
    now_iso,
    publish,
    service_path,
)
from ferry.services.status_writer import StatusWriter, api_path
from ferry.settings import Settings
from ferry.spec.model import InvalidSpecError, RealtimeAPISpec
from ferry.spec.resource import ApiRef, RealtimeAPI, StoredAPI, parse_api
from ferry.status.canary import CanaryBlock, desired_weight
from ferry.status.claims import NO_CLAIMS, RouteClaims
from ferry.status.compute import (
    REJECTED,
    Blocked,
    abandoned_status,
    invalid_status,
    model_check_told,
    model_verdict,
    restore_target,
)
from ferry.status.ownership import name_in_use, owned_by
from ferry.status.pods import PodState
from ferry.status.route import RouteTarget, RouteVerdict


async def reconcile(
    kube: Kube,
    aws: Aws,
    settings: Settings,
    writer: StatusWriter,
    api: RealtimeAPI,
    *,
    record: Recorder,
    pods: Iterable[PodState] = (),
    claims: RouteClaims = NO_CLAIMS,
    attempt: int = 0,
) -> dict[str, Any]:
    """Bring the children in line with the spec; return the status fields written.

    A generation whose rollout was rolled back gets the last good revision's pod template in
    place of its own, until a new generation comes. `pods` are the API's pods and `claims` the
    HTTPRoutes' claims on requests, as the operator's watches have them; `attempt` counts the
    reconciles of this change that asked to be retried.
    Raises RetryLaterError, after publishing why, while the model is not there or could not be
    checked, while an object of the API's names is someone else's, or when the API server
    refuses what was applied.
    """
    ref, spec = api.ref, api.spec
    target = route_target(ref, spec, settings)
    try:
        # The checks of the spec against the operator's own settings rather than the spec
        # alone: the autoscaler goes on scaling what serves meanwhile.
        node_group_for(spec, settings)
        check_canary(spec, target)
    except InvalidSpecError as error:
        return await refuse(writer, api, str(error), record)

    recorded = model_verdict(spec.model, api.status, ref.generation)
    drain = drain_delay_seconds(spec, settings)
    # The children are read while the model is checked: what exists decides what may be applied.
    model, children = await asyncio.gather(
        _model(aws, spec, recorded, attempt),
        _children(
            kube,
            writer,
            api,
            record=record,
            pods=pods,
            claims=claims,
            route=target,
            drain_seconds=drain,
        ),
    )
    existing = children.deployment
    waiting = model if model is not None and not model.available else None
    if waiting is not None and (recorded is None or recorded.reason != waiting.reason):
        record("Warning", waiting.reason.value, waiting.message)
    if children.blocked is not None or waiting is not None:
        await _publish_fresh(
            kube,
            writer,
            api,
            existing,
            model,
            blocked=children.blocked,
            record=record,
            pods=pods,
            claims=claims,
            route=target,
            drain_seconds=drain,
        )
    # Looked at again with back-off from 1 s (the garbage collector may be deleting what an
    # earlier API of the name left; S3 may answer again), or from 4 s for a model that is not
    # there yet: an upload takes a while.
    if children.blocked is not None:
        raise RetryLaterError(children.blocked.message, backoff(attempt))
    if waiting is not None:
        later = 0 if waiting.reason is ModelReason.CHECK_FAILED else 2
        raise RetryLaterError(waiting.message, backoff(attempt + later))

    deployment = render_deployment(
        ref, spec, settings, model_version=model.version if model else None, replicas=None
    )
    restored = await _restored(kube, writer, api, existing, record)
    if restored is not None:
        deployment["spec"]["template"] = restored
    try:
        # One after the other: sent together, the Service's apply competes with the Deployment's
        # for the API server, and the Deployment's pods are what the API waits for.
        applied, created = await _apply(kube, deployment)
        if created:  # before the Service, which a later attempt may be the one to create
            path = deployment_path(ref.namespace, ref.name)
            applied = await set_initial_replicas(kube, path, spec.initial_replicas, applied)
        existing = applied
        await _apply(kube, render_service(ref))
    except _RefusedError as refused:
        # What was applied before stays as it is and serves; the refusal may be lifted without
        # a new generation (a policy, a quota), so it is tried again with back-off.
        await _publish_fresh(
            kube,
            writer,
            api,
            existing,
            model,
            blocked=refused.blocked,
            record=record,
            pods=pods,
            claims=claims,
            route=target,
            drain_seconds=drain,
        )
        raise RetryLaterError(refused.blocked.message, backoff(attempt)) from refused
    canary = await _canary(kube, aws, settings, api, model, attempt=attempt)
    route = await _route(kube, api, target, record, canary=canary.deployment)
    if created:
        record("Normal", "Created", f"created Deployment and Service {ref.name}")
    elif (
        children.deployment is not None
        and applied["metadata"]["generation"] != children.deployment["metadata"]["generation"]
    ):
        record(
            "Normal", "Updated", f"updated Deployment {ref.name} for generation {ref.generation}"
        )
    published = await _publish_fresh(
        kube,
        writer,
        api,
        applied,
        model,
        blocked=None,
        record=record,
        pods=pods,
        claims=claims,
        route=route,
        canary=canary.blocked,
        drain_seconds=drain,
    )
    # Last, so that a slow or absent AWS never delays serving or the status.
    await _log_group(aws, settings, ref, spec, record)
    if isinstance(route, RouteVerdict):  # the route could not be applied: told in the status
        raise RetryLaterError(route.message, backoff(attempt))
    if canary.blocked is not None:  # told in the status; the stable version serves
        raise RetryLaterError(canary.blocked.message, backoff(attempt))
    return published


async def _canary(
    kube: Kube,
    aws: Aws,
    settings: Settings,
    api: RealtimeAPI,
    model: ModelCheck | None,
    *,
    attempt: int,
) -> Applied:
    """The canary the spec asks for, applied; none when it asks for none (one still there gets
    nothing from the route, and goes once drained: ferry.services.canary.remove_canary)."""
    if api.spec.canary is None:
        return Applied(None)
    return await apply_canary(
        kube,
        aws,
        settings,
        api,
        stable_version=model.version if model is not None else None,
        attempt=attempt,
    )


async def _route(
    kube: Kube,
    api: RealtimeAPI,
    target: RouteTarget | None,
    record: Recorder,
    *,
    canary: Mapping[str, Any] | None,
) -> RouteTarget | RouteVerdict | None:
    """Apply the HTTPRoute the API should have, with the weight the `canary` Deployment allows
    its canary, or delete the one it should not have any more. Returns what the status reads
    the route's verdict from: the target, or the verdict when the route could not be applied."""
    if target is None:
        if await remove_route(kube, api):
            record("Normal", "RouteRemoved", f"deleted HTTPRoute {api.ref.name}: no Gateway")
        return None
    target = dataclasses.replace(target, canary_weight=desired_weight(api.spec.canary, canary))
    refused = await apply_route(kube, api, target)
    return target if refused is None else refused


@dataclass(frozen=True)
class _Children:
    deployment: dict[str, Any] | None
    """The API's own Deployment; None if there is none (or only someone else's)."""
    blocked: Blocked | None
    """NameInUse when an object of the API's names is someone else's."""


async def _children(
    kube: Kube,
    writer: StatusWriter,
    api: RealtimeAPI,
    *,
    record: Recorder,
    pods: Iterable[PodState],
    claims: RouteClaims,
    route: RouteTarget | None,
    drain_seconds: int,
) -> _Children:
    """The API's Deployment and Service as they are. When this generation's model has not been
    checked yet, the status says it is being checked, while it is: S3 may take long to answer."""
    ref, model = api.ref, api.spec.model
    deployment, service = await asyncio.gather(
        kube.get(deployment_path(ref.namespace, ref.name)),
        kube.get(service_path(ref.namespace, ref.name)),
    )
    blocked = name_in_use(ref, {"Deployment": deployment, "Service": service})
    ours = deployment if deployment is not None and owned_by(deployment, ref.uid) else None
    if model is not None and not model_check_told(api.status, ref.generation):
        await _publish_fresh(
            kube,
            writer,
            api,
            ours,
            checking(model),
            blocked=blocked,
            record=record,
            pods=pods,
            claims=claims,
            route=route,
            drain_seconds=drain_seconds,
        )
    return _Children(ours, blocked)


class _RefusedError(Exception):
    def __init__(self, blocked: Blocked) -> None:
        super().__init__(blocked.message)
        self.blocked = blocked


async def _apply(kube: Kube, obj: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Server-side apply under Ferry's field manager; the API server's refusal becomes a
    Rejected verdict naming the object."""
    try:
        return await kube.apply(obj, names.FIELD_MANAGER)
    except RejectedError as error:
        what = f"{obj['kind']} {obj['metadata']['name']}"
        raise _RefusedError(
            Blocked(REJECTED, f"the API server refused {what}: {error.reason}")
        ) from error


# Seconds between attempts to put back a rolled-back generation's last good template after an
# API error: a Deployment watch event, which triggered it, is not retried by kopf.
RESTORE_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)


async def follow(
    kube: Kube,
    aws: Aws,
    settings: Settings,
    writer: StatusWriter,
    api: RealtimeAPI,
    *,
    deployment: Mapping[str, Any],
    record: Recorder,
    pods: Iterable[PodState] = (),
    claims: RouteClaims = NO_CLAIMS,
) -> None:
    """The API's Deployment or pods changed: publish the status and, when it says the rollout
    failed and was rolled back, apply the last good revision's template. A Deployment of the
    API's name that is not the API's (its owner reference removed, or an earlier API's) is the
    reconciler's to tell of; the watch brings its next change, or its deletion."""
    if not owned_by(deployment, api.ref.uid):
        with contextlib.suppress(RetryLaterError):  # told in the status
            await reconcile(
                kube, aws, settings, writer, api, record=record, pods=pods, claims=claims
            )
        return
    route = route_target(api.ref, api.spec, settings)
    if route is not None and has_canary(api):
        # The canary's Deployment (or the stable's) changed: its weight may have to.
        route = await shift_traffic(kube, writer, api, route)
    async with writer.serialized(api.ref):
        published = await publish(
            kube,
            writer,
            api,
            deployment,
            pods=pods,
            record=record,
            route=route,
            claims=claims,
            drain_seconds=drain_delay_seconds(api.spec, settings),
        )
    if not published.restore:
        return
    for delay in RESTORE_RETRY_DELAYS:
        try:
            await reconcile(
                kube,
                aws,
                settings,
                writer,
                published.api,
                record=record,
                pods=pods,
                claims=claims,
            )
        except TemporaryKubeError as error:
            record("Warning", "Retrying", f"rolling back: {error}; retrying in {delay:g}s")
            await asyncio.sleep(delay)
        except RetryLaterError:
            await asyncio.sleep(delay)  # already told in the status
        else:
            return


async def put_back(
    kube: Kube,
    aws: Aws,
    settings: Settings,
    writer: StatusWriter,
    api: RealtimeAPI,
    *,
    record: Recorder,
    pods: Iterable[PodState] = (),
    claims: RouteClaims = NO_CLAIMS,
) -> None:
    """The API's Deployment was deleted: reconcile until it is back. A watch event is not
    retried by kopf, so this retries, with back-off, for as long as the API is this generation
    (a newer one is reconciled by its own handler)."""
    ref = api.ref
    for attempt in itertools.count():
        try:
            await reconcile(
                kube,
                aws,
                settings,
                writer,
                api,
                record=record,
                pods=pods,
                claims=claims,
                attempt=attempt,
            )
        except TemporaryKubeError as error:
            delay = backoff(attempt)
            record("Warning", "Retrying", f"{error}; retrying in {delay:g}s")
        except RetryLaterError as error:
            delay = error.delay  # already told in the status
        else:
            return
        await asyncio.sleep(delay)
        current = await kube.get(api_path(ref.namespace, ref.name))
        if (
            current is None
            or current["metadata"]["uid"] != ref.uid
            or current["metadata"]["generation"] != ref.generation
            or "deletionTimestamp" in current["metadata"]
        ):
            return
        api = parse_api(current, known=api)  # the same generation: the spec as parsed


async def _restored(
    kube: Kube,
    writer: StatusWriter,
    api: RealtimeAPI,
    existing: Mapping[str, Any] | None,
    record: Recorder,
) -> dict[str, Any] | None:
    """The pod template a rolled-back generation runs instead of its own: the last good
    revision's. None when the generation was not rolled back, or that template is gone."""
    ref = api.ref
    restore = restore_target(api.status, ref.generation)
    if restore is None:
        return None
    template = await restored_template(
        kube, ref.namespace, ref.name, existing, restore.template_hash
    )
    if template is not None:
        return template
    why = f"no ReplicaSet holds the template of {restore.describe()} any more"
    now = now_iso()
    # Recorded before the spec's own template goes out, so the history never claims a restore
    # that did not happen.
    await writer.write_reconciled(api, lambda read: abandoned_status(read.status, why, now))
    record("Warning", "RollbackFailed", f"{why}; rolling out the spec again")
    return None


async def _log_group(
    aws: Aws, settings: Settings, api: ApiRef, spec: RealtimeAPISpec, record: Recorder
) -> None:
    """The API's log group: a problem there is reported, but never holds up serving."""
    group = log_group_name(api.namespace, api.name, settings.log_group_prefix)
    try:
        done = await ensure_log_group(aws, group, spec.retention_days, api.name)
    except AwsError as error:
        # Retried at the next reconcile; an operator without AWS still serves every API.
        record("Warning", "LogGroupFailed", f"log group {group}: {error}")
        return
    if done is not None:
        record("Normal", f"LogGroup{done}", f"{group}, retention {spec.retention_days} days")


async def _publish_fresh(
    kube: Kube,
    writer: StatusWriter,
    api: RealtimeAPI,
    deployment: dict[str, Any] | None,
    model: ModelCheck | None,
    *,
    blocked: Blocked | None,
    record: Recorder,
    pods: Iterable[PodState],
    claims: RouteClaims,
    route: RouteTarget | RouteVerdict | None,
    canary: CanaryBlock | Literal["recorded"] | None = "recorded",
    drain_seconds: int,
) -> dict[str, Any]:
    """Publish against the API and its Deployment as they are now, not as this reconcile saw
    them: the Deployment watcher may have written since, the Deployment may have moved on (its
    pods turned ready while the reconcile went on), and a newer generation is not ours."""
    async with writer.serialized(api.ref):
        current = await writer.current(api)
        if current is None:
            return {}
        if deployment is not None:
            ref = api.ref
            fresh = await kube.get(deployment_path(ref.namespace, ref.name))
            deployment = fresh if fresh is not None and owned_by(fresh, ref.uid) else None
        published = await publish(
            kube,
            writer,
            current,
            deployment,
            model,
            blocked=blocked,
            pods=pods,
            record=record,
            route=route,
            claims=claims,
            canary=canary,
            drain_seconds=drain_seconds,
        )
    return published.changes


async def _model(
    aws: Aws, spec: RealtimeAPISpec, recorded: ModelCheck | None, attempt: int
) -> ModelCheck | None:
    """The verdict on spec.model for this generation, given the one `recorded` in the status.
    "latest" is resolved once per change: a verdict already recorded for this generation stands,
    so a resume never rolls out a version that was pushed since. An AWS fault a retry may fix is
    no verdict: CheckFailed says what failed, and when the next attempt comes."""
    if spec.model is None:
        return None
    if recorded is not None and recorded.available:
        return recorded  # resolved once per generation
    try:
        return await check_model(aws, spec.model)
    except AwsTemporaryError as error:
        return check_failed(error, attempt + 1, backoff(attempt))


async def refuse(
    writer: StatusWriter, api: StoredAPI, message: str, record: Recorder
) -> dict[str, Any]:
    """Ready=False with reason InvalidSpec, and an Event the first time: the user has to change
    the spec. Returns the status fields written."""
    now = now_iso()
    written = await writer.write_reconciled(
        api,
        lambda read: invalid_status(
            generation=read.ref.generation, previous=read.status, message=message, now=now
        ),
    )
    changes = written.changes if written is not None else {}
    if changes:
        record("Warning", "InvalidSpec", message)
    return changes
