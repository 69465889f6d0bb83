"""A RealtimeAPI's canary as its status tells it: the `Canary` condition, `status.canary`, and
whether the canary holds Ready back.

The canary is a Deployment and a Service of its own beside the stable version's; the API's
HTTPRoute sends it its share of the requests only once it has an available replica, so no
request goes to a version that is not ready. Ready waits until the canary is rolled out and its
weight is on the route the Gateway accepted. Taken out of the spec (an abort, or a promotion when
the stable version now runs what the canary ran), it is first taken off the route; once the
Gateway's controller has answered for that route and the drain delay has passed
(`status.canary.removeAfter`), its Deployment and Service are deleted.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ferry.spec.model import Canary
from ferry.status.conditions import FALSE, TRUE, UNKNOWN, Condition, condition
from ferry.status.pods import NO_TROUBLE, PodState, Trouble, trouble
from ferry.status.revisions import Outcome, Revision, Template
from ferry.status.rollout import rollout_of, template_of
from ferry.status.route import RouteVerdict

CANARY = "Canary"
CANARY_IN_PROGRESS = "CanaryInProgress"
CANARY_PENDING = "CanaryPending"
CANARY_STARTING = "CanaryStarting"
CANARY_ROLLING_OUT = "CanaryRollingOut"
SHIFTING_TRAFFIC = "ShiftingTraffic"
TRAFFIC_SPLIT = "TrafficSplit"
CANARY_PROMOTED = "CanaryPromoted"
CANARY_ABORTED = "CanaryAborted"
CANARY_REMOVING = "CanaryRemoving"
DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class CanaryBlock:
    """Why the canary of this generation cannot be applied: an object of its names that is
    not the API's (NameInUse), the API server's refusal (Rejected), or its model version (the
    model check's reason). The stable version serves meanwhile."""

    reason: str
    message: str


@dataclass(frozen=True)
class CanaryView:
    """What a status write knows of the API's canary."""

    wanted: Canary | None
    """spec.canary."""
    deployment: Mapping[str, Any] | None
    """The canary's Deployment, when it is the API's own."""
    blocked: CanaryBlock | None = None
    drain_seconds: int = 0
    """How long after the Gateway's answer a canary taken off the route is deleted."""


@dataclass(frozen=True)
class CanaryReport:
    condition: Condition | None
    """The Canary condition; None when the API has no canary."""
    status: dict[str, Any] | None
    """status.canary; None when the API has no canary."""
    waiting: str | None = None
    """Why Ready is False (reason CanaryInProgress); None: the canary does not hold it."""
    degraded: bool = False
    """The canary cannot go on without a change (blocked, or past its progress deadline)."""


NO_CANARY = CanaryReport(None, None)


def available_replicas(deployment: Mapping[str, Any] | None) -> int:
    return int(((deployment or {}).get("status") or {}).get("availableReplicas", 0))


def desired_weight(wanted: Canary | None, deployment: Mapping[str, Any] | None) -> int:
    """The canary's weight the route should carry: its share while it has an available
    replica, else none."""
    if wanted is None or available_replicas(deployment) == 0:
        return 0
    return wanted.traffic_percent


def removal_due(status: Mapping[str, Any], now: str) -> bool | None:
    """Whether the canary taken off the route may be deleted now; None: not yet known (no
    answer from the Gateway, or it is not being removed)."""
    after = (status.get("canary") or {}).get("removeAfter")
    if not after:
        return None
    return _time(now) >= _time(str(after))


def recorded_block(status: Mapping[str, Any], generation: int) -> CanaryBlock | None:
    """The reconciler's verdict on this generation's canary, as the status records it."""
    told = condition(status, CANARY) or {}
    if (
        told.get("status") != FALSE
        or told.get("observedGeneration") != generation
        or told.get("reason") in _NOT_BLOCKS
    ):
        return None
    return CanaryBlock(str(told.get("reason")), str(told.get("message", "")))


# The Canary condition's False reasons that are the status's own reading, not a block.
_NOT_BLOCKS = frozenset({DEADLINE_EXCEEDED, CANARY_PROMOTED, CANARY_ABORTED, CANARY_REMOVING})
# A removed canary's outcome, as the Canary condition's reason and in words; until the
# reconciler has applied the stable version of the generation that removed it, CanaryRemoving.
_REMOVALS = {
    Outcome.PROMOTED: (CANARY_PROMOTED, "promoted"),
    Outcome.ABORTED: (CANARY_ABORTED, "aborted"),
}


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def _later(now: str, seconds: int) -> str:
    at = _time(now) + datetime.timedelta(seconds=seconds)
    return at.isoformat().replace("+00:00", "Z")


def _described(template: Template | None, wanted: Canary | None) -> tuple[str, str | None]:
    if template is not None:
        return template.image, template.model_version
    return (wanted.image if wanted else None) or "", wanted.model_version if wanted else None


def _fields(
    template: Template | None,
    wanted: Canary | None,
    deployment: Mapping[str, Any],
    weight: int,
) -> dict[str, Any]:
    image, version = _described(template, wanted)
    status = deployment.get("status") or {}
    fields: dict[str, Any] = {"image": image}
    if version is not None:
        fields["modelVersion"] = version
    fields |= {
        "trafficPercent": weight,
        "replicas": int(status.get("replicas", 0)),
        "readyReplicas": int(status.get("readyReplicas", 0)),
    }
    return fields


def canary_report(
    view: CanaryView,
    route: RouteVerdict | None,
    *,
    previous: Mapping[str, Any],
    revisions: tuple[Revision, ...],
    generation: int,
    now: str,
    pods: Iterable[PodState] = (),
) -> CanaryReport:
    """The canary's condition and status fields, and whether it holds Ready back. `route` is
    the verdict on the API's HTTPRoute (None: it has none); `revisions` the history brought
    up to date, whose last canary revision says a removed canary's outcome; `pods` the API's,
    to say what holds the canary's up."""
    wanted, deployment = view.wanted, view.deployment
    if deployment is None:
        if wanted is None:
            return NO_CANARY
        if view.blocked is not None:
            return _blocked(view.blocked, None)
        pending = "creating the canary's Deployment"
        return CanaryReport(
            Condition(CANARY, UNKNOWN, CANARY_PENDING, pending), None, f"canary: {pending}"
        )
    template = template_of(deployment)
    weight = route.canary_weight if route is not None else 0
    fields = _fields(template, wanted, deployment, weight)
    if wanted is None:
        return _removing(view, route, fields, previous=previous, revisions=revisions, now=now)
    if view.blocked is not None:
        return _blocked(view.blocked, fields)
    found = trouble(pods, template.hash) if template is not None else NO_TROUBLE
    return _serving(wanted, deployment, route, fields, generation=generation, found=found)


def _serving(
    wanted: Canary,
    deployment: Mapping[str, Any],
    route: RouteVerdict | None,
    fields: dict[str, Any],
    *,
    generation: int,
    found: Trouble,
) -> CanaryReport:
    """A canary the spec asks for: starting, rolling out, waiting for its weight on the route,
    or taking its share of the requests; `found` what holds its pods up."""
    rollout = rollout_of(deployment, generation)
    counts = f"{rollout.available}/{rollout.desired} replicas available"
    if found.message:
        counts += f"; {found.message}"
    percent, weight = wanted.traffic_percent, fields["trafficPercent"]
    if rollout.deadline_exceeded:
        message = f"the canary made no progress within its deadline: {counts}"
        return CanaryReport(
            Condition(CANARY, FALSE, DEADLINE_EXCEEDED, message), fields, message, degraded=True
        )
    if rollout.available == 0:
        message = f"starting the canary: {counts}; it gets no requests until one is"
        return CanaryReport(Condition(CANARY, UNKNOWN, CANARY_STARTING, message), fields, message)
    if not rollout.complete:
        message = f"rolling out the canary: {rollout.updated}/{rollout.desired} updated, {counts}"
        return CanaryReport(
            Condition(CANARY, UNKNOWN, CANARY_ROLLING_OUT, message), fields, message
        )
    if route is None or weight != percent or route.status != TRUE:
        message = (
            f"the route gives the canary {weight}% of the requests; {percent}% once the "
            "Gateway has taken the change"
        )
        return CanaryReport(Condition(CANARY, UNKNOWN, SHIFTING_TRAFFIC, message), fields, message)
    version = fields.get("modelVersion")
    which = f"model version {version}, " if version else ""
    message = (
        f"{percent}% of the requests go to the canary ({which}image {fields['image']}): {counts}"
    )
    return CanaryReport(Condition(CANARY, TRUE, TRAFFIC_SPLIT, message), fields)


def _blocked(blocked: CanaryBlock, fields: dict[str, Any] | None) -> CanaryReport:
    return CanaryReport(
        Condition(CANARY, FALSE, blocked.reason, blocked.message),
        fields,
        f"the canary cannot run: {blocked.message}",
        degraded=True,
    )


def _removing(
    view: CanaryView,
    route: RouteVerdict | None,
    fields: dict[str, Any],
    *,
    previous: Mapping[str, Any],
    revisions: tuple[Revision, ...],
    now: str,
) -> CanaryReport:
    """A canary the spec no longer asks for: off the route first, then deleted once the
    Gateway has answered for the route without it and the drain delay has passed."""
    ended = next((r for r in reversed(revisions) if r.canary), None)
    outcome = ended.outcome if ended is not None else Outcome.ABORTED
    reason, what = _REMOVALS.get(outcome, (CANARY_REMOVING, "removed from the spec"))
    after = (previous.get("canary") or {}).get("removeAfter")
    answered = route is None or (fields["trafficPercent"] == 0 and route.status != UNKNOWN)
    if after is None and answered:
        # The Gateway's controller has answered for the route without the canary (or the API
        # has no route): the drain delay covers its data plane catching up.
        after = _later(now, view.drain_seconds)
    if after is None:
        message = f"{what}: waiting for the Gateway to take the canary off the route"
    else:
        fields["removeAfter"] = after
        message = f"{what}: off the route; its Deployment and Service are deleted at {after}"
    return CanaryReport(Condition(CANARY, FALSE, reason, message), fields)
