"""Publishing a RealtimeAPI's status from its Deployment, writing only what changed."""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ferry import names
from ferry.adapters.kube import ConflictError, Kube, TemporaryKubeError, path_of
from ferry.artifacts.versions import ModelCheck
from ferry.services.events import Recorder
from ferry.services.rollout import restorable_templates
from ferry.spec.schema import GROUP, KIND, VERSION
from ferry.status.compute import (
    NOT_RECORDED,
    Blocked,
    compute_status,
    model_verdict,
    needs_restore,
    recorded_block,
    status_changes,
)
from ferry.status.news import blocked_news, rollout_news
from ferry.status.pods import PodState
from ferry.status.rollout import rollout_of


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


def service_path(namespace: str, name: str) -> str:
    return path_of("v1", "Service", namespace, name)


async def write_status(
    kube: Kube, api: Mapping[str, Any], computed: Mapping[str, Any], *, guarded: bool = False
) -> dict[str, Any]:
    """Patch the fields that changed; each patch costs a write and a watch event, so skip none.

    `guarded` makes the write conditional on the API being as it was read (ConflictError
    otherwise): for a status that carries history, which a write from a stale read would lose.
    """
    meta = api["metadata"]
    changes = status_changes(api.get("status") or {}, computed)
    if changes:
        patch: dict[str, Any] = {"status": changes}
        if guarded:
            patch["metadata"] = {"resourceVersion": meta["resourceVersion"]}
        await kube.patch_merge(
            status_path(meta["namespace"], meta["name"]), patch, names.FIELD_MANAGER
        )
    return changes


# Writers of an API's status race (the reconciler, the Deployment and pod watchers, the
# autoscaler): a guarded write that loses reads again and recomputes, this many times.
CONFLICT_RETRIES = 8


@dataclass(frozen=True)
class Published:
    changes: dict[str, Any]
    """The status fields written."""
    api: Mapping[str, Any]
    """The API as last read, with the status as written."""
    restore: bool = False
    """The status says this generation was rolled back, but the Deployment still has the failed
    template: the reconciler has the last good one to apply."""


async def publish(
    kube: Kube,
    api: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    model: ModelCheck | Literal["recorded"] | None = "recorded",
    *,
    blocked: Blocked | Literal["recorded"] | None = "recorded",
    pods: Iterable[PodState] = (),
    record: Recorder | None = None,
) -> Published:
    """Write the status; `model` is the reconciler's fresh verdict, or "recorded" for the one
    already in the status (a Deployment event carries no news about the model); `blocked` the
    same for why the generation cannot be applied (None: nothing blocks it). `pods` are the
    API's pods as the operator's watch has them; `record` posts what the change has to tell."""
    meta = api["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], int(meta["generation"])
    auto_rollback = bool((api.get("spec", {}).get("rollout") or {}).get("autoRollback", True))
    restorable: Collection[str] = ()
    if deployment is not None and auto_rollback:
        rollout = rollout_of(deployment, generation)
        if rollout.current and rollout.deadline_exceeded:
            restorable = await restorable_templates(kube, namespace, name)
    pods = tuple(pods)
    for _ in range(CONFLICT_RETRIES):
        verdict = model
        if verdict == "recorded":
            verdict = model_verdict(api.get("spec", {}), api.get("status") or {}, generation)
            if verdict is NOT_RECORDED:
                return Published({}, api)  # the reconciler is still checking; it publishes first
        previous = api.get("status") or {}
        block = recorded_block(previous, generation) if blocked == "recorded" else blocked
        computed = compute_status(
            api=name,
            namespace=namespace,
            generation=generation,
            previous=previous,
            deployment=deployment,
            model=verdict,
            now=now_iso(),
            pods=pods,
            auto_rollback=auto_rollback,
            restorable=restorable,
            blocked=block,
        )
        try:
            changes = await write_status(kube, api, computed, guarded=True)
        except ConflictError:
            fresh = await kube.get(api_path(namespace, name))
            if fresh is None or int(fresh["metadata"]["generation"]) != generation:
                return Published({}, api)  # gone, or a newer generation: not ours to publish
            api = fresh
            continue
        if record is not None:
            for news in [*rollout_news(previous, computed), *blocked_news(previous, computed)]:
                record(news.kind, news.reason, news.message)
        written = {**api, "status": {**previous, **changes}}
        return Published(changes, written, needs_restore(computed, deployment))
    raise TemporaryKubeError(f"the status of {namespace}/{name} kept changing while written")
