"""Publishing a RealtimeAPI's status from its Deployment, through the status writer."""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ferry import names
from ferry.adapters.kube import Kube, path_of
from ferry.artifacts.versions import ModelCheck
from ferry.services.events import Recorder
from ferry.services.rollout import restorable_templates
from ferry.services.route import read_verdict
from ferry.services.status_writer import StatusWriter
from ferry.spec.resource import ApiRef, RealtimeAPI
from ferry.status.canary import CanaryBlock, CanaryView
from ferry.status.canary import recorded_block as recorded_canary_block
from ferry.status.claims import NO_CLAIMS, RouteClaims
from ferry.status.compute import (
    NOT_RECORDED,
    Blocked,
    compute_status,
    model_verdict,
    needs_restore,
    recorded_block,
)
from ferry.status.news import blocked_news, canary_news, rollout_news, route_news
from ferry.status.ownership import owned_by
from ferry.status.pods import PodState
from ferry.status.rollout import rollout_of
from ferry.status.route import RouteTarget, RouteVerdict, with_recorded_refusal


def now_iso() -> str:
    return (
        datetime.datetime.now(datetime.UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


def has_canary(api: RealtimeAPI) -> bool:
    """The spec asks for a canary, or the status says one is still there."""
    return api.spec.canary is not None or bool(api.status.get("canary"))


async def read_canary(kube: Kube, ref: ApiRef) -> dict[str, Any] | None:
    """The API's own canary Deployment; None if there is none (or only someone else's)."""
    deployment = await kube.get(deployment_path(ref.namespace, names.canary_name(ref.name)))
    return deployment if deployment is not None and owned_by(deployment, ref.uid) else None


def deployment_path(namespace: str, name: str) -> str:
    return path_of("apps/v1", "Deployment", namespace, name)


def service_path(namespace: str, name: str) -> str:
    return path_of("v1", "Service", namespace, name)


@dataclass(frozen=True)
class Published:
    changes: dict[str, Any]
    """The status fields written."""
    api: RealtimeAPI
    """The API as last read, with the status as written."""
    restore: bool = False
    """The status says this generation was rolled back, but the Deployment still has the failed
    template: the reconciler has the last good one to apply."""


async def publish(
    kube: Kube,
    writer: StatusWriter,
    api: RealtimeAPI,
    deployment: Mapping[str, Any] | None,
    model: ModelCheck | Literal["recorded"] | None = "recorded",
    *,
    blocked: Blocked | Literal["recorded"] | None = "recorded",
    pods: Iterable[PodState] = (),
    record: Recorder | None = None,
    route: RouteTarget | RouteVerdict | None = None,
    claims: RouteClaims = NO_CLAIMS,
    canary: CanaryBlock | Literal["recorded"] | None = "recorded",
    drain_seconds: int,
) -> Published:
    """Write the status; `model` is the reconciler's fresh verdict, or "recorded" for the one
    already in the status (a Deployment event carries no news about the model); `blocked` the
    same for why the generation cannot be applied (None: nothing blocks it). `pods` are the
    API's pods as the operator's watch has them; `record` posts what the change has to tell;
    `route` the HTTPRoute the API should have, read here for its Gateway's verdict (or the
    verdict itself, when it could not be applied; None: it has none); `canary` why this
    generation's canary could not be applied, as `blocked` is for the stable version, and
    `drain_seconds` how long after the Gateway's answer a canary off the route is deleted;
    `claims` the other routes' claims on requests, as the operator's watch has them."""
    ref = api.ref
    auto_rollback = api.spec.rollout.auto_rollback
    restorable: Collection[str] = ()
    if deployment is not None and auto_rollback:
        rollout = rollout_of(deployment, ref.generation)
        if rollout.current and rollout.deadline_exceeded:
            restorable = await restorable_templates(kube, ref.namespace, ref.name)
    pods = tuple(pods)
    verdict_on_route = (
        await read_verdict(kube, api, route, claims) if isinstance(route, RouteTarget) else route
    )
    # Read only for an API with a canary, asked for or still there: the rest pay nothing.
    with_canary = has_canary(api)
    canary_deployment = await read_canary(kube, ref) if with_canary else None

    def compute(read: RealtimeAPI) -> Mapping[str, Any] | None:
        verdict = model
        if verdict == "recorded":
            verdict = model_verdict(read.spec.model, read.status, ref.generation)
            if verdict is NOT_RECORDED:
                return None  # the reconciler is still checking; it publishes first
        block = recorded_block(read.status, ref.generation) if blocked == "recorded" else blocked
        return compute_status(
            api=ref.name,
            namespace=ref.namespace,
            generation=ref.generation,
            previous=read.status,
            deployment=deployment,
            model=verdict,
            now=now_iso(),
            pods=pods,
            auto_rollback=auto_rollback,
            restorable=restorable,
            blocked=block,
            route=None
            if verdict_on_route is None
            else with_recorded_refusal(verdict_on_route, read.status, ref.generation),
            canary=CanaryView(
                read.spec.canary,
                canary_deployment,
                recorded_canary_block(read.status, ref.generation)
                if canary == "recorded"
                else canary,
                drain_seconds,
            )
            if with_canary
            else None,
        )

    written = await writer.write_reconciled(api, compute)
    if written is None:
        return Published({}, api)
    if record is not None:
        previous, computed = written.previous, written.computed
        for news in [
            *rollout_news(previous, computed),
            *blocked_news(previous, computed),
            *route_news(previous, computed),
            *canary_news(previous, computed),
        ]:
            record(news.kind, news.reason, news.message)
    return Published(written.changes, written.api, needs_restore(written.computed, deployment))
