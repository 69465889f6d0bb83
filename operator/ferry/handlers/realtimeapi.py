"""Handlers of RealtimeAPIs and of the Deployments Ferry made for them."""

from __future__ import annotations

from typing import Any

import kopf

from ferry import names
from ferry.handlers.errors import guarded
from ferry.services import reconcile as service
from ferry.services.events import Recorder
from ferry.services.logs import delete_log_group, log_group_name
from ferry.services.status import api_path, publish
from ferry.spec.schema import GROUP, PLURAL, VERSION


def recorder(body: kopf.Body) -> Recorder:
    def record(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message)

    return record


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    await guarded(
        body, retry, service.reconcile(memo.kube, memo.aws, memo.settings, body, recorder(body))
    )


@kopf.on.event(
    "apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": names.MANAGED_BY}
)
async def deployment_changed(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """Keep the owner's status current; put back a Deployment someone deleted."""
    owner = next(
        (ref for ref in body.metadata.get("ownerReferences", []) if ref.get("controller")), None
    )
    if owner is None or owner.get("kind") != "RealtimeAPI":
        return
    api = await memo.kube.get(api_path(str(body.metadata.namespace), owner["name"]))
    if (
        api is None
        or api["metadata"]["uid"] != owner["uid"]
        or "deletionTimestamp" in api["metadata"]
    ):
        return
    if event["type"] == "DELETED":
        await service.reconcile(memo.kube, memo.aws, memo.settings, api, recorder(body))
    else:
        await publish(memo.kube, api, body)


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
