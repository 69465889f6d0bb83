"""Handlers of RealtimeAPIs and of the Deployments Ferry made for them."""

from __future__ import annotations

from typing import Any

import kopf

from ferry import names
from ferry.handlers.errors import guarded
from ferry.services import reconcile as service
from ferry.services.events import Recorder
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
