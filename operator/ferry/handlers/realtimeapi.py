"""Handlers of RealtimeAPIs and of the Deployments and pods Ferry made for them.

Each parses the API once, here, into a RealtimeAPI (ferry.spec.resource): a spec the operator
cannot follow is refused where it is met (Ready=False, reason InvalidSpec, and an Event), and the
services are handed only what was parsed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any, cast

import kopf

from ferry import names
from ferry.handlers.context import OperatorContext
from ferry.handlers.errors import guarded
from ferry.handlers.indexes import ApiKey
from ferry.services import canary as canary_service
from ferry.services import reconcile as service
from ferry.services.events import Recorder
from ferry.services.logs import delete_log_group, log_group_name
from ferry.services.status import deployment_path
from ferry.services.status_writer import api_path
from ferry.spec.model import InvalidSpecError
from ferry.spec.resource import RealtimeAPI, parse_api, stored_api
from ferry.spec.schema import GROUP, PLURAL, VERSION
from ferry.status.claims import RouteClaim, RouteClaims, RouteKey, beaten
from ferry.status.ownership import owned_by
from ferry.status.pods import PodState, unschedulable
from ferry.status.route import ROUTE_CONFLICT, claims_of

_MANAGED_BY = "app.kubernetes.io/managed-by"
_FERRYS = {_MANAGED_BY: names.MANAGED_BY}
# Seconds between looks at a canary being removed: how late after its drain delay it goes.
CANARY_REMOVAL_INTERVAL = 1.0


def recorder(body: kopf.Body) -> Recorder:
    def record(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message)

    return record


def api_recorder(api: Mapping[str, Any]) -> Recorder:
    """Events about the RealtimeAPI, from a handler of one of its children."""
    return recorder(kopf.Body(cast(kopf.RawBody, api)))


def pods_of(kwargs: Mapping[str, Any], namespace: str, api: str) -> tuple[PodState, ...]:
    """The API's pods, its canary's too: the status says what holds up either (each side's
    by its template hash)."""
    # kopf passes each index as a keyword named after its function (ferry.handlers.indexes).
    stable: kopf.Index[ApiKey, PodState] = kwargs["api_pods"]
    canary: kopf.Index[ApiKey, PodState] = kwargs["canary_pods"]
    key = (namespace, api)
    return (*stable.get(key, ()), *canary.get(key, ()))


def claims_in(kwargs: Mapping[str, Any]) -> RouteClaims:
    index: kopf.Index[RouteKey, RouteClaim] = kwargs["route_claims"]
    return index


def conflicted(kwargs: Mapping[str, Any]) -> set[ApiKey]:
    index: kopf.Index[str, ApiKey] = kwargs["route_conflicts"]
    return set(index.get(ROUTE_CONFLICT, ()))


async def _parsed(
    context: OperatorContext, body: Mapping[str, Any], record: Recorder
) -> RealtimeAPI | None:
    """The API, its spec parsed and checked; None once a spec the user must fix is refused."""
    try:
        return parse_api(body)
    except InvalidSpecError as error:
        await service.refuse(context.status, stored_api(body), str(error), record)
        return None


async def _reconcile(
    context: OperatorContext,
    body: kopf.Body,
    *,
    record: Recorder,
    pods: tuple[PodState, ...],
    claims: RouteClaims,
    attempt: int,
) -> None:
    api = await _parsed(context, body, record)
    if api is not None:
        await service.reconcile(
            context.kube,
            context.aws,
            context.settings,
            context.status,
            api,
            record=record,
            pods=pods,
            claims=claims,
            attempt=attempt,
        )


async def reconcile(body: kopf.Body, retry: int, context: OperatorContext, **kwargs: Any) -> None:
    pods = pods_of(kwargs, str(body.metadata.namespace), str(body.metadata.name))
    await guarded(
        body,
        retry,
        _reconcile(
            context,
            body,
            record=recorder(body),
            pods=pods,
            claims=claims_in(kwargs),
            attempt=retry,
        ),
    )


async def _live_api(context: OperatorContext, namespace: str, name: str) -> dict[str, Any] | None:
    """The API as it is now; None if it is gone or being deleted."""
    api = await context.kube.get(api_path(namespace, name))
    if api is None or "deletionTimestamp" in api["metadata"]:
        return None
    return api


async def deployment_changed(
    event: kopf.RawEvent, body: kopf.Body, context: OperatorContext, **kwargs: Any
) -> None:
    """Keep the API's status current, roll a failed rollout back; put back a Deployment
    someone deleted; tell of one that is no longer the API's."""
    # Ferry names an API's Deployment after the API.
    namespace, name = str(body.metadata.namespace), str(body.metadata.name)
    live = await _live_api(context, namespace, name)
    if live is None:
        return
    record = api_recorder(live)
    api = await _parsed(context, live, record)
    if api is None:
        return
    pods, claims = pods_of(kwargs, namespace, name), claims_in(kwargs)
    clients = (context.kube, context.aws, context.settings, context.status)
    if event["type"] == "DELETED":
        await service.put_back(*clients, api, record=record, pods=pods, claims=claims)
    else:
        await service.follow(
            *clients, api, deployment=body, record=record, pods=pods, claims=claims
        )


def _unschedulable(body: kopf.Body, **_: Any) -> bool:
    return unschedulable(body) is not None


async def _follow_named(
    context: OperatorContext, namespace: str, name: str, kwargs: Mapping[str, Any]
) -> None:
    """Publish the status of the API `name` from its Deployment as it is now."""
    live, deployment = await asyncio.gather(
        _live_api(context, namespace, name),
        context.kube.get(deployment_path(namespace, name)),
    )
    if live is None or deployment is None:
        return
    record = api_recorder(live)
    api = await _parsed(context, live, record)
    if api is None:
        return
    await service.follow(
        context.kube,
        context.aws,
        context.settings,
        context.status,
        api,
        deployment=deployment,
        record=record,
        pods=pods_of(kwargs, namespace, name),
        claims=claims_in(kwargs),
    )


async def pod_unschedulable(
    namespace: str | None, labels: kopf.Labels, context: OperatorContext, **kwargs: Any
) -> None:
    """The Deployment does not change when the scheduler finds no node for one of its pods:
    only the pod says so, and the rollout is then reported short of capacity rather than in
    progress."""
    await _follow_named(context, str(namespace), labels[names.API_LABEL], kwargs)


async def route_changed(
    event: kopf.RawEvent, body: kopf.Body, context: OperatorContext, **kwargs: Any
) -> None:
    """An HTTPRoute changed. Of Ferry's own (named after its API), the Gateway's controller
    accepted or refused it: the API's status says so. Of any route, a change may take the
    requests of an API whose route matches them after it, or give back those of an API that
    lost them to a route (which may have gone, or moved): those APIs' statuses say so too."""
    meta = body.metadata
    ours = meta.labels.get(_MANAGED_BY) == names.MANAGED_BY
    apis = {(str(meta.namespace), str(meta.name))} if ours else set()
    # At start every API is reconciled, and the index of claims is full before it is.
    if event["type"] is not None:
        if event["type"] != "DELETED":
            apis |= beaten(claims_in(kwargs), claims_of(body))
        apis |= conflicted(kwargs)
    await asyncio.gather(*(_follow_named(context, *api, kwargs) for api in apis))


async def canary_changed(
    event: kopf.RawEvent,
    namespace: str | None,
    labels: kopf.Labels,
    body: kopf.Body,
    context: OperatorContext,
    **kwargs: Any,
) -> None:
    """The canary's Deployment changed: its weight on the route follows its replicas, and the
    status says so; one deleted while the spec asks for it is put back."""
    namespace, name = str(namespace), labels[names.API_LABEL]
    live = await _live_api(context, namespace, name)
    if live is None or not owned_by(body, str(live["metadata"]["uid"])):
        return
    if event["type"] == "DELETED" and (live.get("spec") or {}).get("canary"):
        record = api_recorder(live)
        api = await _parsed(context, live, record)
        if api is not None:
            clients = (context.kube, context.aws, context.settings, context.status)
            pods = pods_of(kwargs, namespace, name)
            await service.put_back(*clients, api, record=record, pods=pods)
        return
    await _follow_named(context, namespace, name, kwargs)


def _canary_removed(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    return not spec.get("canary") and bool(status.get("canary"))


async def remove_canary(body: kopf.Body, context: OperatorContext, **kwargs: Any) -> None:
    """A canary taken out of the spec: its Deployment and Service are deleted once it is off
    the route and drained (ferry.services.canary)."""
    record = recorder(body)
    api = await _parsed(context, body, record)
    if api is None:
        return
    await canary_service.remove_canary(
        context.kube,
        context.status,
        context.settings,
        api,
        record=record,
        pods=pods_of(kwargs, api.ref.namespace, api.ref.name),
        claims=claims_in(kwargs),
    )


async def cleanup(body: kopf.Body, context: OperatorContext, **_: Any) -> None:
    """When the operator deletes log groups (it keeps them by default), the API's."""
    settings = context.settings
    if settings.delete_log_groups:
        group = log_group_name(
            str(body.metadata.namespace), str(body.metadata.name), settings.log_group_prefix
        )
        if await delete_log_group(context.aws, group):
            kopf.info(body, reason="LogGroupDeleted", message=group)


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    # kopf's id of each is its function's name, which its progress on the API is kept under.
    # Create, resume and update share one object: kopf runs it once for an API created while
    # no operator ran, which is both new and found at start.
    on_api = functools.partial(reconcile, context=context)
    kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)(on_api)
    kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)(on_api)
    kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)(on_api)
    kopf.on.event("apps", "v1", "deployments", labels=_FERRYS, registry=registry)(
        functools.partial(deployment_changed, context=context)
    )
    kopf.on.event(
        "v1",
        "pods",
        labels={**_FERRYS, names.API_LABEL: kopf.PRESENT},
        when=_unschedulable,
        registry=registry,
    )(functools.partial(pod_unschedulable, context=context))
    # Every route, not only Ferry's: another's may take an API's requests, or give them back.
    kopf.on.event("gateway.networking.k8s.io", "v1", "httproutes", registry=registry)(
        functools.partial(route_changed, context=context)
    )
    kopf.on.event(
        "apps",
        "v1",
        "deployments",
        labels={**_FERRYS, names.COMPONENT_LABEL: names.CANARY},
        registry=registry,
    )(functools.partial(canary_changed, context=context))
    # Only while a canary taken out of the spec is still there: every second, it deletes the
    # canary once the status says it is off the route and drained.
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="remove_canary",
        interval=CANARY_REMOVAL_INTERVAL,
        backoff=CANARY_REMOVAL_INTERVAL,
        when=_canary_removed,
        registry=registry,
    )(functools.partial(remove_canary, context=context))
    # Optional: never a reason for a finalizer of its own. It runs while the autoscaler's daemon
    # holds kopf's finalizer; when the operator keeps log groups (the default) it does nothing.
    kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)(
        functools.partial(cleanup, context=context)
    )
