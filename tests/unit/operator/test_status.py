"""Status from the Deployment: Ready only for a generation that has fully rolled out."""

from __future__ import annotations

from typing import Any

import pytest

from ferry import names
from ferry.artifacts.versions import ModelCheck, ModelReason
from ferry.spec.model import ModelSource
from ferry.status.compute import (
    INVALID_SPEC,
    NAME_IN_USE,
    REJECTED,
    Blocked,
    Phase,
    compute_status,
    invalid_status,
    model_check_told,
    model_verdict,
    recorded_block,
    status_changes,
)

NOW, LATER, LAST = "2026-11-23T10:00:00Z", "2026-11-23T10:05:00Z", "2026-11-23T10:09:00Z"


def deployment(
    *,
    api_generation: int = 2,
    generation: int = 5,
    observed: int = 5,
    desired: int = 3,
    total: int = 3,
    updated: int = 3,
    ready: int = 3,
    available: int = 3,
    progressing_reason: str = "NewReplicaSetAvailable",
) -> dict[str, Any]:
    return {
        "metadata": {
            "generation": generation,
            "annotations": {names.GENERATION_ANNOTATION: str(api_generation)},
        },
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": [{"type": "Progressing", "status": "True", "reason": progressing_reason}],
        },
    }


def status(
    dep: dict[str, Any] | None,
    previous: dict[str, Any] | None = None,
    now: str = NOW,
    model: ModelCheck | None = None,
) -> dict[str, Any]:
    return compute_status(
        api="iris",
        namespace="ml",
        generation=2,
        previous=previous or {},
        deployment=dep,
        model=model,
        now=now,
    )


def ready_of(computed: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in computed["conditions"] if c["type"] == "Ready")


@pytest.mark.parametrize(
    ("dep", "phase", "ready", "reason"),
    [
        (None, "Pending", "False", "DeploymentPending"),
        (deployment(), "Ready", "True", "Available"),
        # Rendered from an older generation of the API: not this generation's rollout.
        (deployment(api_generation=1), "Progressing", "False", "RolloutInProgress"),
        # The Deployment controller has not seen its latest spec yet.
        (deployment(observed=4), "Progressing", "False", "RolloutInProgress"),
        (
            deployment(updated=1, total=4, progressing_reason="ReplicaSetUpdated"),
            "Progressing",
            "False",
            "RolloutInProgress",
        ),
        (
            deployment(
                updated=3, total=3, ready=0, available=0, progressing_reason="ReplicaSetUpdated"
            ),
            "Pending",
            "False",
            "RolloutInProgress",
        ),
        (
            deployment(updated=1, total=4, progressing_reason="ProgressDeadlineExceeded"),
            "Degraded",
            "False",
            "ProgressDeadlineExceeded",
        ),
        (deployment(ready=2, available=2), "Degraded", "False", "ReplicasUnavailable"),
    ],
)
def test_phase_and_ready_condition(
    dep: dict[str, Any] | None, phase: str, ready: str, reason: str
) -> None:
    computed = status(dep)
    assert computed["phase"] == phase
    assert (ready_of(computed)["status"], ready_of(computed)["reason"]) == (ready, reason)
    assert all(c["observedGeneration"] == 2 for c in computed["conditions"])
    assert computed["observedGeneration"] == 2


def test_counts_endpoint_and_selector() -> None:
    computed = status(deployment(desired=3, ready=2, available=2))
    assert computed["replicaCounts"] == "2/3"
    assert computed["endpoint"] == "http://iris.ml.svc:80/"
    # The stable version's pods: what the scale subresource counts.
    assert computed["selector"] == "ferry.dev/api=iris,app.kubernetes.io/component=predictor"


def test_a_transition_time_moves_only_when_the_status_does() -> None:
    first = status(deployment(), now=NOW)
    same = status(deployment(), previous=first, now=LATER)
    assert ready_of(same)["lastTransitionTime"] == NOW
    changed = status(deployment(available=1, ready=1), previous=first, now=LATER)
    assert ready_of(changed)["lastTransitionTime"] == LATER


def test_an_unchanged_status_needs_no_write() -> None:
    first = status(deployment())
    assert status_changes(first, status(deployment(), previous=first, now=LATER)) == {}
    assert set(status_changes(first, status(deployment(ready=1, available=1), previous=first))) >= {
        "phase",
        "conditions",
        "readyReplicas",
    }


def test_status_fields_of_other_writers_are_left_alone() -> None:
    previous = {"inFlight": 3.5, "desiredReplicas": 4}
    changes = status_changes(previous, status(deployment(), previous=previous))
    assert "inFlight" not in changes
    assert "desiredReplicas" not in changes


def test_an_invalid_spec_fails_with_the_message() -> None:
    computed = invalid_status(generation=4, previous={}, message="spec.nodeGroup: nope", now=NOW)
    assert computed["phase"] == "Failed"
    assert ready_of(computed) | {} == {
        "type": "Ready",
        "status": "False",
        "reason": "InvalidSpec",
        "message": "spec.nodeGroup: nope",
        "observedGeneration": 4,
        "lastTransitionTime": NOW,
    }


def test_nothing_is_ready_while_the_model_is_missing_and_what_runs_keeps_serving() -> None:
    missing = ModelCheck(ModelReason.VERSION_NOT_FOUND, "no objects under s3://acme/iris/9/")
    fresh = status(None, model=missing)
    assert fresh["phase"] == "Pending"
    assert (ready_of(fresh)["status"], ready_of(fresh)["reason"]) == ("False", "VersionNotFound")
    serving = status(deployment(api_generation=1), model=missing)
    assert serving["phase"] == "Degraded"
    model = next(c for c in serving["conditions"] if c["type"] == "ModelAvailable")
    assert (model["status"], model["reason"]) == ("False", "VersionNotFound")


def test_a_resolved_version_is_recorded_and_read_back_for_the_same_generation() -> None:
    found = ModelCheck(ModelReason.AVAILABLE, "version 7", "7")
    computed = status(deployment(), model=found)
    assert computed["modelVersion"] == "7"
    spec = ModelSource("s3://acme/iris", "latest")
    assert model_verdict(spec, computed, generation=2) == ModelCheck(
        ModelReason.AVAILABLE, "version 7", "7"
    )
    # A newer generation has not been checked yet.
    assert model_verdict(spec, computed, generation=3).reason is ModelReason.CHECKING
    assert model_verdict(None, computed, generation=2) is None


def model_of(computed: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in computed["conditions"] if c["type"] == "ModelAvailable")


def test_a_model_being_checked_is_unknown_and_what_runs_is_still_progressing() -> None:
    checking = ModelCheck(ModelReason.CHECKING, "looking for version 9 at s3://acme/iris/9/")
    fresh = status(None, model=checking)
    assert fresh["phase"] == "Pending"
    assert (model_of(fresh)["status"], model_of(fresh)["reason"]) == ("Unknown", "Checking")
    assert (ready_of(fresh)["status"], ready_of(fresh)["reason"]) == ("False", "Checking")
    assert status(deployment(api_generation=1), model=checking)["phase"] == "Progressing"


def test_a_failed_check_is_no_verdict_and_is_told_until_one_comes() -> None:
    failed = ModelCheck(ModelReason.CHECK_FAILED, "attempt 2 failed: …; next attempt in 2s")
    serving = status(deployment(api_generation=1), model=failed)
    assert serving["phase"] == "Degraded"
    assert (model_of(serving)["status"], model_of(serving)["reason"]) == ("Unknown", "CheckFailed")
    spec = ModelSource("s3://acme/iris", "9")
    # The Deployment's watchers publish nothing until the reconciler has a verdict...
    assert model_verdict(spec, serving, generation=2).reason is ModelReason.CHECKING
    # ...and the reconciler does not say "checking" again over what the last attempt met.
    assert model_check_told(serving, generation=2)
    assert not model_check_told(serving, generation=3)
    assert not model_check_told({}, generation=2)


NAME_TAKEN = Blocked(NAME_IN_USE, "Service iris is not this API's: …")


def test_a_blocked_generation_says_why_in_ready_and_progressing() -> None:
    computed = compute_status(
        api="iris",
        namespace="ml",
        generation=2,
        previous={},
        deployment=deployment(),
        model=None,
        now=NOW,
        blocked=NAME_TAKEN,
    )
    assert computed["phase"] == "Failed"
    for kind in ("Ready", "Progressing"):
        found = next(c for c in computed["conditions"] if c["type"] == kind)
        assert (found["status"], found["reason"], found["message"]) == (
            "False",
            "NameInUse",
            NAME_TAKEN.message,
        )
    # The counts still say what the API's own Deployment runs.
    assert computed["replicaCounts"] == "3/3"


@pytest.mark.parametrize(
    "blocked",
    [
        NAME_TAKEN,
        Blocked(REJECTED, "the API server refused Deployment iris: …"),
        Blocked(NAME_IN_USE, "left by an earlier API", Phase.PENDING),
    ],
)
def test_a_blocked_verdict_is_read_back_as_written_for_its_generation_only(
    blocked: Blocked,
) -> None:
    computed = status(deployment(api_generation=1))
    written = compute_status(
        api="iris",
        namespace="ml",
        generation=2,
        previous=computed,
        deployment=deployment(api_generation=1),
        model=None,
        now=LATER,
        blocked=blocked,
    )
    assert recorded_block(written, generation=2) == Blocked(
        blocked.reason, blocked.message, blocked.phase, blocked.message
    )
    assert recorded_block(written, generation=3) is None
    assert recorded_block(computed, generation=2) is None
    # Published again from the Deployment with the recorded verdict: nothing to write.
    again = compute_status(
        api="iris",
        namespace="ml",
        generation=2,
        previous=written,
        deployment=deployment(api_generation=1),
        model=None,
        now=LAST,
        blocked=recorded_block(written, generation=2),
    )
    assert status_changes(written, again) == {}


def test_an_invalid_spec_is_read_back_as_a_blocked_verdict() -> None:
    computed = invalid_status(generation=4, previous={}, message="spec.nodeGroup: nope", now=NOW)
    assert recorded_block(computed, generation=4) == Blocked(
        INVALID_SPEC, "spec.nodeGroup: nope", Phase.FAILED, "waiting for a valid spec"
    )
