"""Status of rollouts: what holds pods up, capacity shortage, rollbacks, and the Events they
make."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import pytest

from ferry import names
from ferry.render.children import reusable_template, template_hash
from ferry.status.compute import abandoned_status, compute_status, needs_restore, restore_target
from ferry.status.news import News, blocked_news, rollout_news
from ferry.status.pods import PodState, trouble, unschedulable
from tests.unit.operator.test_render import deployment as rendered_deployment

NOW, LATER, LAST = "2026-11-23T10:00:00Z", "2026-11-23T10:05:00Z", "2026-11-23T10:09:00Z"
INSUFFICIENT = "0/3 nodes are available: 3 Insufficient cpu. preemption: not helpful."


def deployment(
    digest: str,
    *,
    api_generation: int = 2,
    desired: int = 2,
    updated: int = 2,
    total: int = 2,
    available: int = 2,
    progressing: str = "NewReplicaSetAvailable",
    progressing_since: str | None = None,
    image: str = "iris:1",
) -> dict[str, Any]:
    since = {"lastUpdateTime": progressing_since} if progressing_since else {}
    return {
        "metadata": {
            "generation": 4,
            "annotations": {names.GENERATION_ANNOTATION: str(api_generation)},
        },
        "spec": {
            "replicas": desired,
            "template": {
                "metadata": {
                    "annotations": {
                        names.TEMPLATE_HASH_ANNOTATION: digest,
                        names.IMAGE_ANNOTATION: image,
                    }
                }
            },
        },
        "status": {
            "observedGeneration": 4,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": [
                {"type": "Progressing", "status": "True", "reason": progressing, **since}
            ],
        },
    }


def pod(
    name: str,
    digest: str,
    *,
    ready: bool = False,
    scheduled: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    leaving: bool = False,
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if scheduled is not None:
        conditions.append({"type": "PodScheduled", **scheduled})
    metadata: dict[str, Any] = {
        "name": name,
        "annotations": {names.TEMPLATE_HASH_ANNOTATION: digest},
    }
    if leaving:
        metadata["deletionTimestamp"] = NOW
    return {
        "metadata": metadata,
        "status": {
            "conditions": conditions,
            "containerStatuses": containers or [],
            "initContainerStatuses": init or [],
        },
    }


UNSCHEDULABLE = {"status": "False", "reason": "Unschedulable", "message": INSUFFICIENT}


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "state": {"waiting": {"reason": reason, "message": message}},
    }


def status(
    dep: dict[str, Any],
    previous: dict[str, Any] | None = None,
    *,
    pods: Sequence[dict[str, Any]] = (),
    now: str = NOW,
    generation: int = 2,
    auto_rollback: bool = True,
    restorable: Collection[str] = (),
) -> dict[str, Any]:
    return compute_status(
        api="iris",
        namespace="ml",
        generation=generation,
        previous=previous or {},
        deployment=dep,
        model=None,
        now=now,
        pods=[PodState.of(p) for p in pods],
        auto_rollback=auto_rollback,
        restorable=restorable,
    )


def cond(computed: dict[str, Any], kind: str) -> tuple[str, str]:
    found = next(c for c in computed["conditions"] if c["type"] == kind)
    return found["status"], found["reason"]


def message(computed: dict[str, Any], kind: str = "Ready") -> str:
    return str(next(c for c in computed["conditions"] if c["type"] == kind)["message"])


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([pod("a", "new", ready=True)], None),
        (
            [pod("a", "new", scheduled=UNSCHEDULABLE)],
            f"pod a does not fit any node: {INSUFFICIENT}",
        ),
        (
            [pod("a", "new", containers=[waiting("predictor", "ErrImagePull", "no such image")])],
            "pod a: container predictor: ErrImagePull: no such image",
        ),
        (
            [pod("a", "new", init=[waiting("fetch-model", "CrashLoopBackOff")])],
            "pod a: init container fetch-model: CrashLoopBackOff",
        ),
        (
            [
                pod(
                    "a",
                    "new",
                    containers=[{"name": "proxy", "ready": False, "state": {"running": {}}}],
                )
            ],
            "pod a: container proxy is running but not ready",
        ),
        (
            [
                pod(
                    "a",
                    "new",
                    init=[{"name": "fetch-model", "state": {"terminated": {"exitCode": 2}}}],
                )
            ],
            "pod a: init container fetch-model exited with code 2",
        ),
        ([pod("a", "new", containers=[waiting("predictor", "ContainerCreating")])], None),
        # Old pods and pods on their way out are not the new revision's trouble.
        ([pod("a", "old", containers=[waiting("predictor", "ErrImagePull")])], None),
        ([pod("a", "new", leaving=True, containers=[waiting("p", "ErrImagePull")])], None),
    ],
)
def test_what_holds_the_pods_of_a_revision_up(
    pods: list[dict[str, Any]], expected: str | None
) -> None:
    assert trouble([PodState.of(p) for p in pods], "new").message == expected


def test_a_capacity_shortage_is_told_apart_from_other_scheduling_failures() -> None:
    selector = {
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
    }
    found = trouble(
        [PodState.of(pod("b", "new", scheduled=selector)), PodState.of(pod("a", "new"))], "new"
    )
    assert found.capacity is None
    assert found.other is not None and found.other.startswith("pod b cannot be scheduled")
    assert unschedulable(pod("a", "new", scheduled=UNSCHEDULABLE)) == INSUFFICIENT
    assert unschedulable(pod("a", "new", scheduled={"status": "True"})) is None


def test_a_rollout_short_of_capacity_is_not_left_in_progress() -> None:
    computed = status(
        deployment("new", updated=1, total=3, progressing="ReplicaSetUpdated"),
        pods=[pod("iris-x", "new", scheduled=UNSCHEDULABLE)],
    )
    assert cond(computed, "Ready") == ("False", "InsufficientCapacity")
    assert cond(computed, "Progressing") == ("False", "InsufficientCapacity")
    assert "Insufficient cpu" in message(computed)
    assert computed["phase"] == "Degraded", "the old replicas still serve"


def test_a_scale_up_with_no_room_keeps_the_rollout_complete_but_not_ready() -> None:
    computed = status(
        deployment("new", desired=3, updated=3, total=3, available=2),
        pods=[pod("iris-x", "new", scheduled=UNSCHEDULABLE)],
    )
    assert cond(computed, "Ready") == ("False", "InsufficientCapacity")
    assert cond(computed, "Progressing") == ("False", "RolloutComplete")


def test_the_trouble_of_a_rollout_in_progress_is_in_its_message() -> None:
    computed = status(
        deployment("new", updated=1, total=3, progressing="ReplicaSetUpdated"),
        pods=[pod("iris-x", "new", containers=[waiting("predictor", "CrashLoopBackOff")])],
    )
    assert cond(computed, "Progressing") == ("True", "RolloutInProgress")
    assert message(computed).endswith("pod iris-x: container predictor: CrashLoopBackOff")


def rolled_out(digest: str, generation: int = 1) -> dict[str, Any]:
    """The status once `digest` rolled out for generation 1."""
    first = status(deployment(digest, api_generation=generation), generation=generation)
    return status(deployment(digest, api_generation=generation), first, generation=generation)


def stalled(previous: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return status(
        deployment(
            "bad", updated=1, total=3, progressing="ProgressDeadlineExceeded", image="iris:2"
        ),
        previous,
        pods=[pod("iris-b", "bad", containers=[waiting("predictor", "ErrImagePull")])],
        now=LATER,
        **kwargs,
    )


def test_a_stalled_rollout_is_rolled_back_and_stays_so_for_its_generation() -> None:
    good = rolled_out("good")
    started = status(
        deployment("bad", updated=0, total=3, progressing="ReplicaSetUpdated", image="iris:2"),
        good,
    )
    undone = stalled(started, restorable={"good", "bad"})
    assert cond(undone, "Ready") == ("False", "RolledBack")
    assert cond(undone, "Progressing") == ("False", "RolledBack")
    assert undone["phase"] == "Degraded"
    assert message(undone) == (
        "generation 2 failed to roll out, revision 2 (image iris:2): pod iris-b: container "
        "predictor: ErrImagePull; rolled back to revision 3 (image iris:1), which serves in its "
        "place"
    )
    assert [(r["revision"], r["outcome"]) for r in undone["revisions"]] == [
        (1, "Complete"),
        (2, "RolledBack"),
        (3, "InProgress"),
    ]
    assert needs_restore(undone, deployment("bad"))
    assert not needs_restore(undone, deployment("good"))
    target = restore_target(undone, generation=2)
    assert target is not None and target.template_hash == "good"
    assert restore_target(undone, generation=3) is None

    applied = status(deployment("good"), undone, now=LAST)
    assert cond(applied, "Ready") == ("False", "RolledBack"), "kubectl wait must still fail"
    assert applied["revisions"][-1]["outcome"] == "Complete"
    assert rollout_news(undone, applied) == [
        News("Normal", "RolloutComplete", "revision 3 (image iris:1) is rolled out")
    ]
    news = rollout_news(started, undone)
    assert [(n.kind, n.reason) for n in news] == [("Warning", "RolledBack")]
    assert news[0].message == message(undone)


def test_without_auto_rollback_a_stalled_rollout_fails_and_the_api_degrades() -> None:
    good = rolled_out("good")
    failed = stalled(good, auto_rollback=False, restorable={"good", "bad"})
    assert cond(failed, "Ready") == ("False", "ProgressDeadlineExceeded")
    assert failed["phase"] == "Degraded"
    assert "ErrImagePull" in message(failed)
    assert failed["revisions"][-1]["outcome"] == "Failed"
    assert [(n.kind, n.reason) for n in rollout_news(good, failed)] == [
        ("Warning", "ProgressDeadlineExceeded")
    ]


def test_with_nothing_to_roll_back_to_the_status_says_so() -> None:
    failed = stalled(rolled_out("good"), restorable={"bad"})
    assert cond(failed, "Ready") == ("False", "ProgressDeadlineExceeded")
    assert message(failed).endswith("there is no earlier good revision to roll back to")


def test_a_restore_abandoned_leaves_the_generation_no_longer_rolled_back() -> None:
    undone = stalled(rolled_out("good"), restorable={"good", "bad"})
    abandoned = {**undone, **abandoned_status(undone, "its ReplicaSet is gone", LAST)}
    assert restore_target(abandoned, generation=2) is None
    assert not needs_restore(abandoned, deployment("bad"))


def test_capacity_news_is_told_once() -> None:
    short = status(
        deployment("new", updated=1, total=3, progressing="ReplicaSetUpdated"),
        pods=[pod("iris-x", "new", scheduled=UNSCHEDULABLE)],
    )
    assert [n.reason for n in rollout_news({}, short)] == ["InsufficientCapacity"]
    assert rollout_news(short, short) == []


def test_a_rendered_template_carries_its_hash_and_a_replica_sets_copy_applies_again() -> None:
    rendered = {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "p"}]}}
    same = {"spec": {"containers": [{"name": "p"}]}, "metadata": {"labels": {"a": "1"}}}
    assert template_hash(rendered) == template_hash(same)
    changed = {**rendered, "spec": {"containers": [{"name": "q"}]}}
    assert template_hash(changed) != template_hash(rendered)
    from_replica_set: dict[str, Any] = {
        "metadata": {
            "creationTimestamp": None,
            "labels": {"a": "1", "pod-template-hash": "5d8f"},
        },
        "spec": {"containers": [{"name": "p"}]},
    }
    assert reusable_template(from_replica_set) == rendered
    assert from_replica_set["metadata"]["labels"]["pod-template-hash"] == "5d8f", "not changed"


def test_the_pod_template_names_its_revision_and_only_pod_changes_make_a_new_one() -> None:
    def digest(**spec: Any) -> str:
        rendered = rendered_deployment(**spec)
        annotations = rendered["spec"]["template"]["metadata"]["annotations"]
        without = {k: v for k, v in annotations.items() if k != names.TEMPLATE_HASH_ANNOTATION}
        template = {
            **rendered["spec"]["template"],
            "metadata": {**rendered["spec"]["template"]["metadata"], "annotations": without},
        }
        assert annotations[names.TEMPLATE_HASH_ANNOTATION] == template_hash(template)
        return str(annotations[names.TEMPLATE_HASH_ANNOTATION])

    base = digest()
    assert digest() == base
    assert digest(autoscaling={"maxReplicas": 7}) == base
    assert digest(rollout={"maxSurge": 2}) == base
    assert digest(predictor={"image": "registry.example.com/iris:1.5.0"}) != base
    assert digest(model={"uri": "s3://acme/iris", "version": "8"}) != digest(
        model={"uri": "s3://acme/iris", "version": "9"}
    )


def test_a_rollback_that_stalls_is_not_rolled_back_again_and_says_so() -> None:
    undone = stalled(rolled_out("good"), restorable={"good", "bad"})
    applied = status(
        deployment("good", updated=1, total=3, progressing="ReplicaSetUpdated"), undone, now=LAST
    )
    stuck = status(
        deployment("good", updated=1, total=3, progressing="ProgressDeadlineExceeded"),
        applied,
        now=LAST,
        restorable={"good", "bad"},
    )
    assert cond(stuck, "Ready") == ("False", "ProgressDeadlineExceeded")
    assert message(stuck).endswith("it was itself a rollback, which is never rolled back in turn")
    assert [r["outcome"] for r in stuck["revisions"]] == ["Complete", "RolledBack", "Failed"]


def test_the_failed_templates_verdict_is_not_taken_for_the_rollbacks() -> None:
    # Going back to a ReplicaSet it has, the Deployment controller keeps the failed template's
    # ProgressDeadlineExceeded until it sees progress; until then that verdict is not the
    # rollback's, unless the rollback makes no progress for a deadline of its own.
    undone = stalled(rolled_out("good"), restorable={"good", "bad"})
    old_verdict = {"progressing": "ProgressDeadlineExceeded", "progressing_since": NOW}
    applied = status(deployment("good", total=3, **old_verdict), undone, now=LAST)
    assert cond(applied, "Progressing") == ("False", "RolledBack")
    assert applied["revisions"][-1]["outcome"] == "InProgress"

    deadline_later = "2026-11-23T10:15:00Z"  # the default 600 s after the rollback started
    stuck = status(deployment("good", total=3, **old_verdict), applied, now=deadline_later)
    assert cond(stuck, "Progressing") == ("False", "ProgressDeadlineExceeded")
    assert stuck["revisions"][-1]["outcome"] == "Failed"

    fresh_verdict = {"progressing": "ProgressDeadlineExceeded", "progressing_since": LAST}
    failed = status(deployment("good", total=3, **fresh_verdict), applied, now=LAST)
    assert failed["revisions"][-1]["outcome"] == "Failed"


def ready(reason: str, message: str, generation: int = 2) -> dict[str, Any]:
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
            }
        ]
    }


def test_a_blocked_generation_is_told_once_and_again_when_the_cause_changes() -> None:
    taken = ready("NameInUse", "Service iris is not this API's: …")
    assert blocked_news({}, taken) == [
        News("Warning", "NameInUse", "Service iris is not this API's: …")
    ]
    assert blocked_news(taken, taken) == []
    refused = ready("Rejected", "the API server refused Deployment iris: …")
    assert [n.reason for n in blocked_news(taken, refused)] == ["Rejected"]
    # The same refusal of a newer generation is news too.
    assert [n.reason for n in blocked_news(refused, ready("Rejected", "…", 3))] == ["Rejected"]
    # InvalidSpec is posted by the reconciler that writes it; nothing else blocked is news.
    assert blocked_news({}, ready("InvalidSpec", "spec.nodeGroup: …")) == []
    assert blocked_news(taken, ready("RolloutInProgress", "…")) == []
