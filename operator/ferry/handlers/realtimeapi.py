"""Handlers of RealtimeAPIs and of the Deployments and pods Ferry made for them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import kopf

from ferry import names
from ferry.adapters.kube import Kube
from ferry.handlers.errors import guarded
from ferry.handlers.indexes import ApiKey
from ferry.services import reconcile as service
from ferry.services.events import Recorder
from ferry.services.logs import delete_log_group, log_group_name
from ferry.services.status import api_path, deployment_path
from ferry.spec.schema import GROUP, PLURAL, VERSION
from ferry.status.pods import PodState, unschedulable

_FERRYS = {"app.kubernetes.io/managed-by": names.MANAGED_BY}


def recorder(body: kopf.Body) -> Recorder:
    def record(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message)

    return record


def api_recorder(api: Mapping[str, Any]) -> Recorder:
    """Events about the RealtimeAPI, from a handler of one of its children."""
    return recorder(kopf.Body(cast(kopf.RawBody, api)))


def pods_of(kwargs: Mapping[str, Any], namespace: str, api: str) -> tuple[PodState, ...]:
    # kopf passes each index as a keyword named after its function (ferry.handlers.indexes).
    index: kopf.Index[ApiKey, PodState] = kwargs["api_pods"]
    return tuple(index.get((namespace, api), ()))


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile(body: kopf.Body, memo: kopf.Memo, retry: int, **kwargs: Any) -> None:
    pods = pods_of(kwargs, str(body.metadata.namespace), str(body.metadata.name))
    await guarded(
        body,
        retry,
        service.reconcile(
            memo.kube, memo.aws, memo.settings, body, recorder(body), pods=pods, attempt=retry
        ),
    )


async def _live_api(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The API as it is now; None if it is gone or being deleted."""
    api = await kube.get(api_path(namespace, name))
    if api is None or "deletionTimestamp" in api["metadata"]:
        return None
    return api


@kopf.on.event("apps", "v1", "deployments", labels=_FERRYS)
async def deployment_changed(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Keep the API's status current, roll a failed rollout back; put back a Deployment
    someone deleted; tell of one that is no longer the API's."""
    # Ferry names an API's Deployment after the API.
    namespace, name = str(body.metadata.namespace), str(body.metadata.name)
    api = await _live_api(memo.kube, namespace, name)
    if api is None:
        return
    pods = pods_of(kwargs, namespace, name)
    if event["type"] == "DELETED":
        await service.put_back(
            memo.kube, memo.aws, memo.settings, api, record=api_recorder(api), pods=pods
        )
    else:
        await service.follow(
            memo.kube, memo.aws, memo.settings, api, body, record=api_recorder(api), pods=pods
        )


def _unschedulable(body: kopf.Body, **_: Any) -> bool:
    return unschedulable(body) is not None


# The Deployment does not change when the scheduler finds no node for one of its pods: only
# the pod says so, and the rollout is then reported short of capacity rather than in progress.
@kopf.on.event("v1", "pods", labels={**_FERRYS, names.API_LABEL: kopf.PRESENT}, when=_unschedulable)
async def pod_unschedulable(
    body: kopf.Body, namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    name, namespace = labels[names.API_LABEL], str(namespace)
    api, deployment = await asyncio.gather(
        _live_api(memo.kube, namespace, name),
        memo.kube.get(deployment_path(namespace, name)),
    )
    if api is None or deployment is None:
        return
    await service.follow(
        memo.kube,
        memo.aws,
        memo.settings,
        api,
        deployment,
        record=api_recorder(api),
        pods=pods_of(kwargs, namespace, name),
    )


# Optional: never a reason for a finalizer of its own. It runs while the autoscaler's timer holds
# kopf's finalizer; when the operator keeps log groups (the default) it does nothing.
@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
async def cleanup(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if memo.settings.delete_log_groups:
        group = log_group_name(
            str(body.metadata.namespace), str(body.metadata.name), memo.settings.log_group_prefix
        )
        if await delete_log_group(memo.aws, group):
            kopf.info(body, reason="LogGroupDeleted", message=group)
