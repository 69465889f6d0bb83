"""The status of a RealtimeAPI from its generation and its Deployment, as the owner sees it.

Ready is True only when the Deployment was rendered from the current generation, its controller
has observed that, and every replica is updated and available: `kubectl wait
--for=condition=Ready` (which compares observedGeneration) is then a truthful gate. A generation
whose rollout failed and was rolled back stays Ready=False (reason RolledBack) while the replicas
of the last good revision serve, so the gate fails as it should.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ferry import names
from ferry.artifacts.versions import ModelCheck, ModelReason
from ferry.spec.model import ModelSource
from ferry.status.canary import CANARY_IN_PROGRESS, NO_CANARY, CanaryView, canary_report
from ferry.status.conditions import FALSE, TRUE, UNKNOWN, Condition, condition, merge_conditions
from ferry.status.pods import NO_TROUBLE, PodState, Trouble, trouble
from ferry.status.revisions import (
    Progress,
    Revision,
    Template,
    abandon_restore,
    last_stable,
    parse_revisions,
    plan_rollback,
    restore_pending,
    revisions_status,
    roll_back,
    rolled_back,
    track,
    track_canary,
)
from ferry.status.rollout import Rollout, rollout_of, template_of, without_stale_verdict
from ferry.status.route import RouteVerdict


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


INVALID_SPEC = "InvalidSpec"
NAME_IN_USE = "NameInUse"
REJECTED = "Rejected"
# The reasons of a Blocked verdict: only the reconciler may write or lift one, so the writers
# that publish from a Deployment's or a pod's change keep it as they find it.
BLOCKING_REASONS = frozenset({INVALID_SPEC, NAME_IN_USE, REJECTED})


@dataclass(frozen=True)
class Blocked:
    """Why nothing of this generation can be applied until something changes: the spec
    (InvalidSpec), another object holding the API's names (NameInUse), or the API server's
    refusal of what was applied (Rejected)."""

    reason: str
    message: str
    phase: Phase = Phase.FAILED
    waiting: str | None = None
    """Progressing's message; None: the message."""


# Checking and CheckFailed: no verdict on the model yet.
_UNDECIDED = frozenset({ModelReason.CHECKING, ModelReason.CHECK_FAILED})


def _model_condition(model: ModelCheck) -> Condition:
    if model.available:
        return Condition("ModelAvailable", TRUE, model.reason.value, model.message)
    status = UNKNOWN if model.reason in _UNDECIDED else FALSE
    return Condition("ModelAvailable", status, model.reason.value, model.message)


def _blocked(blocked: Blocked) -> tuple[Phase, Condition, Condition]:
    return (
        blocked.phase,
        Condition("Ready", FALSE, blocked.reason, blocked.message),
        Condition("Progressing", FALSE, blocked.reason, blocked.waiting or blocked.message),
    )


def _assess(
    rollout: Rollout | None,
    generation: int,
    model: ModelCheck | None,
    found: Trouble,
    undone: tuple[Revision, Revision] | None,
    *,
    no_rollback: str | None,
    blocked: Blocked | None,
) -> tuple[Phase, Condition, Condition]:
    if blocked is not None:
        return _blocked(blocked)
    if model is not None and not model.available:
        # Nothing rolls out before its model is there; what runs keeps serving.
        serving = rollout is not None and rollout.available > 0
        if not serving:
            phase = Phase.PENDING
        elif model.reason is ModelReason.CHECKING:
            phase = Phase.PROGRESSING
        else:
            phase = Phase.DEGRADED
        return (
            phase,
            Condition("Ready", FALSE, model.reason.value, model.message),
            Condition("Progressing", FALSE, "WaitingForModel", model.message),
        )
    if rollout is None:
        return (
            Phase.PENDING,
            Condition("Ready", FALSE, "DeploymentPending", "the Deployment is not created yet"),
            Condition("Progressing", TRUE, "RolloutInProgress", "creating the Deployment"),
        )
    if undone is not None:
        failed, restored = undone
        why = f": {failed.message}" if failed.message else ""
        message = (
            f"generation {generation} failed to roll out, {failed.describe()}{why}; "
            f"rolled back to {restored.describe()}, which serves in its place"
        )
        return (
            Phase.DEGRADED,
            Condition("Ready", FALSE, "RolledBack", message),
            Condition("Progressing", FALSE, "RolledBack", message),
        )
    return _progress(rollout, generation, found, no_rollback=no_rollback)


def _progress(
    rollout: Rollout, generation: int, found: Trouble, *, no_rollback: str | None
) -> tuple[Phase, Condition, Condition]:
    desired = rollout.desired
    counts = f"{rollout.updated}/{desired} updated, {rollout.available}/{desired} available"
    if rollout.complete:
        return (
            Phase.READY,
            Condition(
                "Ready",
                TRUE,
                "Available",
                f"{rollout.available}/{rollout.desired} replicas available",
            ),
            Condition(
                "Progressing", FALSE, "RolloutComplete", f"generation {generation} is rolled out"
            ),
        )
    if rollout.deadline_exceeded:
        message = f"the rollout made no progress within its deadline: {found.message or counts}"
        if no_rollback and rollout.current:
            message += f"; {no_rollback}"
        return (
            Phase.DEGRADED,
            Condition("Ready", FALSE, "ProgressDeadlineExceeded", message),
            Condition("Progressing", FALSE, "ProgressDeadlineExceeded", message),
        )
    if rollout.current and rollout.was_complete and rollout.updated == rollout.desired:
        # Rolled out, then short of replicas: a pod died, or a scale-up found no room.
        short = "InsufficientCapacity" if found.capacity else "ReplicasUnavailable"
        return (
            Phase.DEGRADED,
            Condition("Ready", FALSE, short, _with(counts, found.message)),
            Condition(
                "Progressing", FALSE, "RolloutComplete", f"generation {generation} is rolled out"
            ),
        )
    if found.capacity:
        message = f"rolling out generation {generation}: {counts}; {found.capacity}"
        return (
            Phase.DEGRADED if rollout.available > 0 else Phase.PENDING,
            Condition("Ready", FALSE, "InsufficientCapacity", message),
            Condition("Progressing", FALSE, "InsufficientCapacity", message),
        )
    return (
        Phase.PROGRESSING if rollout.available > 0 else Phase.PENDING,
        Condition(
            "Ready",
            FALSE,
            "RolloutInProgress",
            f"rolling out generation {generation}: {_with(counts, found.other)}",
        ),
        Condition("Progressing", TRUE, "RolloutInProgress", _with(counts, found.other)),
    )


def _with(counts: str, trouble: str | None) -> str:
    return f"{counts}; {trouble}" if trouble else counts


def _history(
    revisions: tuple[Revision, ...],
    rollout: Rollout,
    found: Trouble,
    *,
    generation: int,
    auto_rollback: bool,
    restorable: Collection[str],
    now: str,
) -> tuple[Revision, ...]:
    """The revisions brought up to date, a failed rollout of this generation rolled back when
    the spec asks for it and a good revision's template is still at hand."""
    if rollout.template is None:
        return revisions
    stalled = None
    if rollout.deadline_exceeded:
        stalled = found.message or "no new replica became available"
    progress = Progress(rollout.template, rollout.rolled_out, stalled)
    revisions = track(revisions, progress, now)
    if auto_rollback and rollout.current:
        plan = plan_rollback(revisions, restorable)
        if plan is not None:
            revisions = roll_back(revisions, plan, generation, now)
    return revisions


def _started(revisions: tuple[Revision, ...], template: Template, now: str) -> str:
    """When the history's revision of `template` started; now, for a template new to it."""
    last = last_stable(revisions)
    if last is not None and last.template_hash == template.hash:
        return last.started
    return now


def compute_status(
    *,
    api: str,
    namespace: str,
    generation: int,
    previous: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    model: ModelCheck | None,
    now: str,
    pods: Iterable[PodState] = (),
    auto_rollback: bool = True,
    restorable: Collection[str] = (),
    blocked: Blocked | None = None,
    route: RouteVerdict | None = None,
    canary: CanaryView | None = None,
) -> dict[str, Any]:
    """The status fields the reconciler owns; fields of other writers (autoscaler) are left out.

    `model` is the verdict on spec.model for this generation (None: the API has no model);
    `pods` are the API's pods, to say what holds a rollout up;
    `restorable` the template hashes of the ReplicaSets a rollback could return to;
    `blocked` why this generation cannot be applied, which Ready and Progressing then say;
    `route` the verdict on the API's HTTPRoute (None: it has none), which Ready waits for;
    `canary` the API's canary (None: it has none), which Ready waits for too.
    """
    pods = tuple(pods)
    rollout = rollout_of(deployment, generation) if deployment is not None else None
    revisions = parse_revisions(previous.get("revisions"))
    found = NO_TROUBLE
    if rollout is not None:
        if rollout.template is not None:
            found = trouble(pods, rollout.template.hash)
            rollout = without_stale_verdict(
                rollout, _started(revisions, rollout.template, now), now
            )
        revisions = _history(
            revisions,
            rollout,
            found,
            generation=generation,
            auto_rollback=auto_rollback,
            restorable=restorable,
            now=now,
        )
    if canary is not None:
        # The stable version's template of this generation tells a promotion from an abort;
        # until the reconciler has applied it, a removed canary's outcome waits.
        stable = rollout.template if rollout is not None else None
        revisions = track_canary(
            revisions,
            template_of(canary.deployment) if canary.deployment is not None else None,
            wanted=canary.wanted is not None,
            stable=stable if stable is not None and stable.generation == generation else None,
            now=now,
        )
    undone = rolled_back(revisions, generation)
    phase, ready, progressing = _assess(
        rollout,
        generation,
        model,
        found,
        undone,
        no_rollback=_why_no_rollback(revisions) if auto_rollback else None,
        blocked=blocked,
    )
    if route is not None and ready.status == TRUE and route.status != TRUE:
        phase = Phase.DEGRADED if route.status == FALSE else Phase.PROGRESSING
        ready = Condition("Ready", FALSE, route.reason, route.message)
    report = NO_CANARY
    if canary is not None:
        report = canary_report(
            canary,
            route,
            previous=previous,
            revisions=revisions,
            generation=generation,
            now=now,
            pods=pods,
        )
    if report.waiting is not None and ready.status == TRUE:
        phase = Phase.DEGRADED if report.degraded else Phase.PROGRESSING
        ready = Condition("Ready", FALSE, CANARY_IN_PROGRESS, report.waiting)
    conditions = [ready, progressing] + ([_model_condition(model)] if model else [])
    if route is not None:
        conditions.append(route.condition)
    if report.condition is not None:
        conditions.append(report.condition)
    desired = rollout.desired if rollout else 0
    available = rollout.available if rollout else 0
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase.value,
        "conditions": merge_conditions(
            conditions, previous.get("conditions") or (), generation, now
        ),
        "replicas": rollout.total if rollout else 0,
        "readyReplicas": rollout.ready if rollout else 0,
        "updatedReplicas": rollout.updated if rollout else 0,
        "availableReplicas": available,
        "replicaCounts": f"{available}/{desired}",
        "selector": names.selector(api),
        "endpoint": (route.url if route is not None else None) or names.endpoint(api, namespace),
    }
    if canary is not None and (report.status is not None or "canary" in previous):
        status["canary"] = report.status  # None removes it (a merge patch): the canary is gone
    if revisions:
        status["revisions"] = revisions_status(revisions)
    if model is not None and model.version is not None:
        status["modelVersion"] = model.version
    return status


def _why_no_rollback(revisions: tuple[Revision, ...]) -> str:
    """Why a stalled rollout with autoRollback on was not rolled back."""
    last = last_stable(revisions)
    if last is not None and last.rollback_of is not None:
        return "it was itself a rollback, which is never rolled back in turn"
    return "there is no earlier good revision to roll back to"


def needs_restore(status: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> bool:
    """The status says the Deployment's template was rolled back, yet the Deployment has it."""
    template = template_of(deployment) if deployment is not None else None
    revisions = parse_revisions(status.get("revisions"))
    return template is not None and restore_pending(revisions, template)


def abandoned_status(status: Mapping[str, Any], why: str, now: str) -> dict[str, Any]:
    """The revisions once a rollback found nothing to return to."""
    revisions = abandon_restore(parse_revisions(status.get("revisions")), why, now)
    return {"revisions": revisions_status(revisions)}


def restore_target(status: Mapping[str, Any], generation: int) -> Revision | None:
    """The revision whose template this generation must run instead of its own: the last good
    one, when this generation's rollout was rolled back."""
    undone = rolled_back(parse_revisions(status.get("revisions")), generation)
    return undone[1] if undone is not None else None


# No verdict on the model for this generation yet: only the reconciler may write the first one.
NOT_RECORDED = ModelCheck(ModelReason.CHECKING, "the model of this generation is not checked yet")


def model_verdict(
    model: ModelSource | None, status: Mapping[str, Any], generation: int
) -> ModelCheck | None:
    """The reconciler's verdict on the spec's model recorded for this generation; NOT_RECORDED
    if there is none yet, None if the API has no model."""
    if model is None:
        return None
    verdict = condition(status, "ModelAvailable")
    if (
        verdict is None
        or verdict.get("observedGeneration") != generation
        or verdict.get("reason") in _UNDECIDED
    ):
        return NOT_RECORDED
    reason = ModelReason(verdict["reason"])
    version = status.get("modelVersion") if reason is ModelReason.AVAILABLE else None
    return ModelCheck(reason, str(verdict.get("message", "")), version)


def model_check_told(status: Mapping[str, Any], generation: int) -> bool:
    """The status already says something of this generation's model: a verdict, or that it is
    being checked, or how the last attempt failed."""
    told = condition(status, "ModelAvailable")
    return told is not None and told.get("observedGeneration") == generation


def recorded_block(status: Mapping[str, Any], generation: int) -> Blocked | None:
    """The reconciler's Blocked verdict on this generation, as the status records it."""
    ready = condition(status, "Ready") or {}
    if ready.get("reason") not in BLOCKING_REASONS or ready.get("observedGeneration") != generation:
        return None
    progressing = condition(status, "Progressing") or {}
    return Blocked(
        str(ready["reason"]),
        str(ready.get("message", "")),
        Phase(status.get("phase", Phase.FAILED.value)),
        progressing.get("message"),
    )


def invalid_status(
    *, generation: int, previous: Mapping[str, Any], message: str, now: str
) -> dict[str, Any]:
    """A spec only the operator could refuse: Failed until the user changes it."""
    phase, ready, progressing = _blocked(
        Blocked(INVALID_SPEC, message, waiting="waiting for a valid spec")
    )
    return {
        "observedGeneration": generation,
        "phase": phase.value,
        "conditions": merge_conditions(
            [ready, progressing], previous.get("conditions") or (), generation, now
        ),
    }


def status_changes(previous: Mapping[str, Any], computed: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `computed` that differ from `previous`: empty means nothing to write."""
    return {key: value for key, value in computed.items() if previous.get(key) != value}
