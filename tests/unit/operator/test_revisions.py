"""The revision history: one entry per pod template, the last ten, and rollback decisions that
never loop."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.status.revisions import (
    HISTORY_LIMIT,
    Outcome,
    Progress,
    Revision,
    Template,
    abandon_restore,
    last_good,
    parse_revisions,
    plan_rollback,
    restore_pending,
    revisions_status,
    roll_back,
    rolled_back,
    track,
)

T0, T1, T2, T3 = (f"2026-11-23T10:0{n}:00Z" for n in range(4))


def template(digest: str, generation: int = 1, version: str | None = "7") -> Template:
    return Template(digest, f"registry.example.com/iris:{digest}", version, generation)


def progress(
    digest: str, generation: int = 1, *, rolled_out: bool = False, stalled: str | None = None
) -> Progress:
    return Progress(template(digest, generation), rolled_out, stalled)


def outcomes(history: tuple[Revision, ...]) -> list[tuple[int, str, str]]:
    return [(r.revision, r.template_hash, r.outcome.value) for r in history]


def test_the_first_template_starts_revision_one_and_completes_once_rolled_out() -> None:
    started = track((), progress("a"), T0)
    assert outcomes(started) == [(1, "a", "InProgress")]
    assert (started[0].started, started[0].finished, started[0].generation) == (T0, None, 1)
    done = track(started, progress("a", rolled_out=True), T1)
    assert outcomes(done) == [(1, "a", "Complete")]
    assert done[0].finished == T1
    assert track(done, progress("a", rolled_out=True), T2) == done, "nothing new, nothing written"


def test_the_same_template_for_a_new_generation_is_not_a_new_revision() -> None:
    done = track(track((), progress("a"), T0), progress("a", rolled_out=True), T1)
    assert track(done, progress("a", generation=2, rolled_out=True), T2) == done


def test_a_new_template_before_the_last_finished_supersedes_it() -> None:
    history = track(track((), progress("a"), T0), progress("b", 2), T1)
    assert outcomes(history) == [(1, "a", "Superseded"), (2, "b", "InProgress")]
    assert history[0].finished == T1
    assert (history[1].generation, history[1].image) == (2, "registry.example.com/iris:b")


def test_a_stalled_rollout_fails_with_its_reason_and_completes_if_it_recovers() -> None:
    history = track((), progress("a"), T0)
    failed = track(history, progress("a", stalled="pod x: ErrImagePull"), T1)
    assert outcomes(failed) == [(1, "a", "Failed")]
    assert failed[0].message == "pod x: ErrImagePull"
    recovered = track(failed, progress("a", rolled_out=True), T2)
    assert outcomes(recovered) == [(1, "a", "Complete")]
    assert recovered[0].message is None


def test_the_history_keeps_the_last_ten() -> None:
    history: tuple[Revision, ...] = ()
    for n in range(HISTORY_LIMIT + 3):
        history = track(history, progress(f"t{n}", n + 1, rolled_out=True), T0)
    assert len(history) == HISTORY_LIMIT
    assert [r.revision for r in history] == list(range(4, HISTORY_LIMIT + 4))
    assert all(r.outcome is Outcome.COMPLETE for r in history)


def good_then_failed() -> tuple[Revision, ...]:
    history = track(track((), progress("good"), T0), progress("good", rolled_out=True), T0)
    history = track(history, progress("bad", 2), T1)
    return track(history, progress("bad", 2, stalled="pod x: CrashLoopBackOff"), T2)


def test_a_failed_revision_is_rolled_back_to_the_last_good_one_still_at_hand() -> None:
    history = good_then_failed()
    plan = plan_rollback(history, restorable={"good", "bad"})
    assert plan is not None
    assert (plan.failed.template_hash, plan.good.template_hash) == ("bad", "good")
    after = roll_back(history, plan, generation=2, now=T3)
    assert outcomes(after) == [
        (1, "good", "Complete"),
        (2, "bad", "RolledBack"),
        (3, "good", "InProgress"),
    ]
    assert (after[2].rollback_of, after[2].generation, after[2].started) == (2, 2, T3)
    assert after[1].message == "pod x: CrashLoopBackOff"
    assert rolled_back(after, generation=2) == (after[1], after[2])
    assert rolled_back(after, generation=3) is None, "a new generation rolls out again"


@pytest.mark.parametrize(
    ("restorable", "why"),
    [
        (set(), "no ReplicaSet of the good template is left"),
        ({"bad"}, "only the failed template is at hand"),
    ],
)
def test_no_rollback_without_the_good_template(restorable: set[str], why: str) -> None:
    assert plan_rollback(good_then_failed(), restorable) is None, why


def test_no_rollback_of_a_first_rollout_a_rollout_in_progress_or_a_rollback() -> None:
    first = track(track((), progress("a"), T0), progress("a", stalled="stuck"), T1)
    assert plan_rollback(first, {"a"}) is None, "nothing good came before"
    in_progress = track(good_then_failed(), progress("c", 3), T3)
    assert plan_rollback(in_progress, {"good", "c"}) is None
    history = good_then_failed()
    plan = plan_rollback(history, {"good", "bad"})
    assert plan is not None
    undone = roll_back(history, plan, generation=2, now=T3)
    # The restore itself stalls: rolling it back would loop.
    stalled = track(undone, progress("good", 2, stalled="stuck"), T3)
    assert plan_rollback(stalled, {"good", "bad"}) is None


def test_until_the_good_template_is_applied_the_failed_one_is_no_new_revision() -> None:
    history = good_then_failed()
    plan = plan_rollback(history, {"good", "bad"})
    assert plan is not None
    undone = roll_back(history, plan, generation=2, now=T3)
    assert restore_pending(undone, template("bad", 2))
    assert track(undone, progress("bad", 2, stalled="stuck"), T3) == undone
    assert not restore_pending(undone, template("good", 2))
    applied = track(undone, progress("good", 2, rolled_out=True), T3)
    assert outcomes(applied)[-1] == (3, "good", "Complete")
    assert rolled_back(applied, generation=2) is not None, "still rolled back once applied"
    # The same failed template for a new generation is a new attempt.
    assert not restore_pending(undone, template("bad", 3))
    assert outcomes(track(undone, progress("bad", 3), T3))[-1] == (4, "bad", "InProgress")


def test_a_restore_with_nothing_to_return_to_is_abandoned() -> None:
    history = good_then_failed()
    plan = plan_rollback(history, {"good", "bad"})
    assert plan is not None
    undone = roll_back(history, plan, generation=2, now=T3)
    abandoned = abandon_restore(undone, "its ReplicaSet is gone", T3)
    assert outcomes(abandoned)[-1] == (3, "good", "Failed")
    assert rolled_back(abandoned, generation=2) is None
    assert not restore_pending(abandoned, template("bad", 2))
    assert abandon_restore(history, "why", T3) == history, "only a restore is abandoned"


def test_last_good_skips_failures_and_the_template_in_question() -> None:
    history = good_then_failed()
    assert last_good(history, other_than="bad") == history[0]
    assert last_good(history, other_than="good") is None


def test_the_history_round_trips_through_the_status_and_drops_what_it_cannot_read() -> None:
    history = good_then_failed()
    written = revisions_status(history)
    assert parse_revisions(written) == history
    assert "finished" not in written[-1] or written[-1]["finished"] == T2
    junk: list[Any] = [*written, {"revision": "x"}, "text", {"outcome": "Complete"}]
    assert parse_revisions(junk) == history
    assert parse_revisions("not a list") == ()
    assert parse_revisions(None) == ()
    unknown = {**written[0], "outcome": "Exploded"}
    assert parse_revisions([unknown]) == ()


def test_a_revision_describes_itself_for_people() -> None:
    history = track((), progress("a"), T0)
    assert (
        history[0].describe() == "revision 1 (model version 7, image registry.example.com/iris:a)"
    )
    bare = track((), Progress(template("a", version=None), False, None), T0)
    assert bare[0].describe() == "revision 1 (image registry.example.com/iris:a)"
