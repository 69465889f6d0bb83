"""Publishing a RealtimeAPI's status from its Deployment, writing only what changed."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Literal

from ferry import names
from ferry.adapters.kube import Kube, path_of
from ferry.artifacts.versions import ModelCheck
from ferry.spec.schema import GROUP, KIND, VERSION
from ferry.status.compute import NOT_RECORDED, compute_status, model_verdict, status_changes


def now_iso() -> str:
    return (
        datetime.datetime.now(datetime.UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


def api_path(namespace: str, name: str) -> str:
    return path_of(f"{GROUP}/{VERSION}", KIND, namespace, name)


def status_path(namespace: str, name: str) -> str:
    return api_path(namespace, name) + "/status"


def deployment_path(namespace: str, name: str) -> str:
    return path_of("apps/v1", "Deployment", namespace, name)


async def write_status(
    kube: Kube, api: Mapping[str, Any], computed: Mapping[str, Any]
) -> dict[str, Any]:
    """Patch the fields that changed; each patch costs a write and a watch event, so skip none."""
    meta = api["metadata"]
    changes = status_changes(api.get("status") or {}, computed)
    if changes:
        await kube.patch_merge(
            status_path(meta["namespace"], meta["name"]), {"status": changes}, names.FIELD_MANAGER
        )
    return changes


async def publish(
    kube: Kube,
    api: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    model: ModelCheck | Literal["recorded"] | None = "recorded",
) -> dict[str, Any]:
    """Write the status; `model` is the reconciler's fresh verdict, or "recorded" for the one
    already in the status (a Deployment event carries no news about the model)."""
    meta = api["metadata"]
    generation = int(meta["generation"])
    if model == "recorded":
        model = model_verdict(api.get("spec", {}), api.get("status") or {}, generation)
        if model is NOT_RECORDED:
            return {}  # the reconciler is still checking; it publishes the first status
    computed = compute_status(
        api=meta["name"],
        namespace=meta["namespace"],
        generation=generation,
        previous=api.get("status") or {},
        deployment=deployment,
        model=model,
        now=now_iso(),
    )
    return await write_status(kube, api, computed)
