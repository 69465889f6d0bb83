"""The status of a RealtimeAPI from its generation and its Deployment, as the owner sees it.

Ready is True only when the Deployment was rendered from the current generation, its controller
has observed that, and every replica is updated and available: `kubectl wait
--for=condition=Ready` (which compares observedGeneration) is then a truthful gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ferry import names
from ferry.artifacts.versions import ModelCheck, ModelReason
from ferry.status.conditions import FALSE, TRUE, UNKNOWN, Condition, condition, merge_conditions


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


@dataclass(frozen=True)
class Rollout:
    """How far the Deployment is in rolling out the current generation."""

    current: bool
    desired: int
    total: int
    updated: int
    ready: int
    available: int
    deadline_exceeded: bool
    was_complete: bool

    @property
    def complete(self) -> bool:
        return (
            self.current
            and self.updated == self.desired
            and self.total == self.updated
            and self.available >= self.desired
        )


def rollout_of(deployment: Mapping[str, Any], generation: int) -> Rollout:
    metadata = deployment.get("metadata", {})
    status = deployment.get("status") or {}
    annotations = metadata.get("annotations") or {}
    observed = status.get("observedGeneration", 0) >= metadata.get("generation", 1)
    progressing = condition(status, "Progressing") or {}
    return Rollout(
        current=observed and annotations.get(names.GENERATION_ANNOTATION) == str(generation),
        desired=int(deployment.get("spec", {}).get("replicas", 0)),
        total=int(status.get("replicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        ready=int(status.get("readyReplicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        deadline_exceeded=progressing.get("reason") == "ProgressDeadlineExceeded",
        was_complete=progressing.get("reason") == "NewReplicaSetAvailable",
    )


def _model_condition(model: ModelCheck) -> Condition:
    if model.available:
        return Condition("ModelAvailable", TRUE, model.reason.value, model.message)
    status = UNKNOWN if model.reason is ModelReason.CHECKING else FALSE
    return Condition("ModelAvailable", status, model.reason.value, model.message)


def _assess(
    rollout: Rollout | None, generation: int, model: ModelCheck | None
) -> tuple[Phase, Condition, Condition]:
    if model is not None and not model.available:
        # Nothing rolls out before its model is there; what runs keeps serving.
        serving = rollout is not None and rollout.available > 0
        return (
            Phase.DEGRADED if serving else Phase.PENDING,
            Condition("Ready", FALSE, model.reason.value, model.message),
            Condition("Progressing", FALSE, "WaitingForModel", model.message),
        )
    if rollout is None:
        return (
            Phase.PENDING,
            Condition("Ready", FALSE, "DeploymentPending", "the Deployment is not created yet"),
            Condition("Progressing", TRUE, "RolloutInProgress", "creating the Deployment"),
        )
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
        return (
            Phase.DEGRADED,
            Condition("Ready", FALSE, "ProgressDeadlineExceeded", f"the rollout stalled: {counts}"),
            Condition(
                "Progressing", FALSE, "ProgressDeadlineExceeded", f"the rollout stalled: {counts}"
            ),
        )
    if rollout.current and rollout.was_complete and rollout.updated == rollout.desired:
        return (
            Phase.DEGRADED,
            Condition("Ready", FALSE, "ReplicasUnavailable", counts),
            Condition(
                "Progressing", FALSE, "RolloutComplete", f"generation {generation} is rolled out"
            ),
        )
    phase = Phase.PROGRESSING if rollout.available > 0 else Phase.PENDING
    return (
        phase,
        Condition(
            "Ready", FALSE, "RolloutInProgress", f"rolling out generation {generation}: {counts}"
        ),
        Condition("Progressing", TRUE, "RolloutInProgress", counts),
    )


def compute_status(
    *,
    api: str,
    namespace: str,
    generation: int,
    previous: Mapping[str, Any],
    deployment: Mapping[str, Any] | None,
    model: ModelCheck | None,
    now: str,
) -> dict[str, Any]:
    """The status fields the reconciler owns; fields of other writers (autoscaler) are left out.

    `model` is the verdict on spec.model for this generation (None: the API has no model).
    """
    rollout = rollout_of(deployment, generation) if deployment is not None else None
    phase, ready, progressing = _assess(rollout, generation, model)
    conditions = [ready, progressing] + ([_model_condition(model)] if model else [])
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
        "endpoint": names.endpoint(api, namespace),
    }
    if model is not None and model.version is not None:
        status["modelVersion"] = model.version
    return status


# No verdict on the model for this generation yet: only the reconciler may write the first one.
NOT_RECORDED = ModelCheck(ModelReason.CHECKING, "the model of this generation is not checked yet")


def model_verdict(
    spec: Mapping[str, Any], status: Mapping[str, Any], generation: int
) -> ModelCheck | None:
    """The reconciler's verdict on the model recorded for this generation; NOT_RECORDED if there
    is none yet, None if the API has no model."""
    if not spec.get("model"):
        return None
    verdict = condition(status, "ModelAvailable")
    if (
        verdict is None
        or verdict.get("observedGeneration") != generation
        or verdict.get("reason") == ModelReason.CHECKING.value
    ):
        return NOT_RECORDED
    reason = ModelReason(verdict["reason"])
    version = status.get("modelVersion") if reason is ModelReason.AVAILABLE else None
    return ModelCheck(reason, str(verdict.get("message", "")), version)


def invalid_status(
    *, generation: int, previous: Mapping[str, Any], message: str, now: str
) -> dict[str, Any]:
    """A spec only the operator could refuse: Failed until the user changes it."""
    return {
        "observedGeneration": generation,
        "phase": Phase.FAILED.value,
        "conditions": merge_conditions(
            [
                Condition("Ready", FALSE, "InvalidSpec", message),
                Condition("Progressing", FALSE, "InvalidSpec", "waiting for a valid spec"),
            ],
            previous.get("conditions") or (),
            generation,
            now,
        ),
    }


def status_changes(previous: Mapping[str, Any], computed: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `computed` that differ from `previous`: empty means nothing to write."""
    return {key: value for key, value in computed.items() if previous.get(key) != value}
