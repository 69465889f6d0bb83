"""The revision history of a RealtimeAPI: one entry per pod template rolled out, the last ten.

A revision starts when the Deployment's pod template changes (a new model version, image, or any
other field of the pods) and ends Complete once every replica runs it, Superseded by a newer one,
Failed when it stalls past its progress deadline, or RolledBack when the operator put the last
good revision back in its place. Putting one back is a revision too, naming the one it undid.

A canary's pod template is a revision too, marked `canary`, numbered in the same sequence: it
starts when the canary's Deployment runs it and ends Promoted when the canary is taken off the
route with the stable version now running its image and model version, Aborted when not, or
Superseded by the canary's next template. The stable version's history reads past canary
revisions: its last revision is the last that is not a canary's.

The history is the operator's memory of which templates were good, so it lives in the status and
is brought up to date from the Deployment at every status write: whichever write sees a change
first records it, and a later one finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

HISTORY_LIMIT = 10


class Outcome(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETE = "Complete"
    SUPERSEDED = "Superseded"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"
    PROMOTED = "Promoted"
    ABORTED = "Aborted"


@dataclass(frozen=True)
class Template:
    """The Deployment's pod template as the history knows it."""

    hash: str
    image: str
    model_version: str | None
    generation: int
    """The generation of the API the Deployment was last applied for."""


@dataclass(frozen=True)
class Revision:
    revision: int
    generation: int
    template_hash: str
    image: str
    model_version: str | None
    started: str
    outcome: Outcome
    finished: str | None = None
    message: str | None = None
    rollback_of: int | None = None
    """For a revision the operator rolled back to: the number of the failed one it replaced."""
    canary: bool = False

    def describe(self) -> str:
        version = f"model version {self.model_version}, " if self.model_version else ""
        which = "canary revision" if self.canary else "revision"
        return f"{which} {self.revision} ({version}image {self.image})"

    def to_status(self) -> dict[str, Any]:
        fields = {
            "revision": self.revision,
            "generation": self.generation,
            "templateHash": self.template_hash,
            "image": self.image,
            "modelVersion": self.model_version,
            "started": self.started,
            "finished": self.finished,
            "outcome": self.outcome.value,
            "message": self.message,
            "rollbackOf": self.rollback_of,
            "canary": self.canary or None,
        }
        return {key: value for key, value in fields.items() if value is not None}


def _revision(raw: Any) -> Revision | None:
    """One entry of status.revisions; None for anything the operator did not write."""
    if not isinstance(raw, Mapping):
        return None
    try:
        rollback_of = raw.get("rollbackOf")
        return Revision(
            revision=int(raw["revision"]),
            generation=int(raw["generation"]),
            template_hash=str(raw["templateHash"]),
            image=str(raw["image"]),
            model_version=None if raw.get("modelVersion") is None else str(raw["modelVersion"]),
            started=str(raw["started"]),
            outcome=Outcome(raw["outcome"]),
            finished=None if raw.get("finished") is None else str(raw["finished"]),
            message=None if raw.get("message") is None else str(raw["message"]),
            rollback_of=None if rollback_of is None else int(rollback_of),
            canary=raw.get("canary") is True,
        )
    except (KeyError, TypeError, ValueError):
        return None


def parse_revisions(raw: Any) -> tuple[Revision, ...]:
    """status.revisions as written; entries that cannot be read are dropped, not fatal."""
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return ()
    return tuple(found for found in map(_revision, raw) if found is not None)


def revisions_status(revisions: Sequence[Revision]) -> list[dict[str, Any]]:
    return [revision.to_status() for revision in revisions]


def _finish(revision: Revision, outcome: Outcome, now: str, message: str | None) -> Revision:
    return replace(revision, outcome=outcome, finished=now, message=message)


def _last(revisions: Sequence[Revision], *, canary: bool = False) -> int | None:
    """The index of the last revision of the stable version (or of the canary)."""
    return next(
        (i for i in range(len(revisions) - 1, -1, -1) if revisions[i].canary is canary), None
    )


def last_stable(revisions: Sequence[Revision]) -> Revision | None:
    index = _last(revisions)
    return None if index is None else revisions[index]


def _put(revisions: Sequence[Revision], index: int, revision: Revision) -> tuple[Revision, ...]:
    return (*revisions[:index], revision, *revisions[index + 1 :])


def _append(revisions: Sequence[Revision], revision: Revision) -> tuple[Revision, ...]:
    history = (*revisions, revision)
    while len(history) > HISTORY_LIMIT:
        # The oldest goes, unless it is the stable version's last: what it runs, and what its
        # next rollout is told against.
        drop = 1 if _last(history) == 0 else 0
        history = history[:drop] + history[drop + 1 :]
    return history


def _start(
    revisions: Sequence[Revision],
    template: Template,
    now: str,
    rollback_of: int | None = None,
    *,
    canary: bool = False,
) -> tuple[Revision, ...]:
    ended = tuple(
        _finish(r, Outcome.SUPERSEDED, now, r.message)
        if r.outcome is Outcome.IN_PROGRESS and r.canary is canary
        else r
        for r in revisions
    )
    number = revisions[-1].revision + 1 if revisions else 1
    started = Revision(
        revision=number,
        generation=template.generation,
        template_hash=template.hash,
        image=template.image,
        model_version=template.model_version,
        started=now,
        outcome=Outcome.IN_PROGRESS,
        rollback_of=rollback_of,
        canary=canary,
    )
    return _append(ended, started)


def _numbered(revisions: Sequence[Revision], number: int | None) -> Revision | None:
    return next((r for r in revisions if r.revision == number), None)


def rolled_back(revisions: Sequence[Revision], generation: int) -> tuple[Revision, Revision] | None:
    """(the failed revision, the one put back) when this generation's rollout was rolled back."""
    last = last_stable(revisions)
    if last is None:
        return None
    failed = _numbered(revisions, last.rollback_of)
    if failed is None or last.generation != generation or last.outcome is Outcome.FAILED:
        return None
    return failed, last


def restore_pending(revisions: Sequence[Revision], template: Template) -> bool:
    """The history says the Deployment's template was rolled back, but it is still there: the
    operator has yet to apply the one it put back."""
    undone = rolled_back(revisions, template.generation)
    return (
        undone is not None
        and template.hash == undone[0].template_hash
        and template.hash != undone[1].template_hash
    )


@dataclass(frozen=True)
class Progress:
    """How far the Deployment is in rolling out its current template."""

    template: Template
    rolled_out: bool
    """Every replica runs the template and is available."""
    stalled: str | None
    """Why, when the rollout has made no progress for its progress deadline."""


def track(revisions: Sequence[Revision], progress: Progress, now: str) -> tuple[Revision, ...]:
    """The history brought up to date with the Deployment."""
    history = tuple(revisions)
    if restore_pending(history, progress.template):
        return history
    index = _last(history)
    if index is None or history[index].template_hash != progress.template.hash:
        history = _start(history, progress.template, now)
        index = len(history) - 1
    last = history[index]
    if progress.rolled_out and last.outcome in (Outcome.IN_PROGRESS, Outcome.FAILED):
        # A failed rollout that recovers on its own (an image pushed late) did roll out.
        return _put(history, index, _finish(last, Outcome.COMPLETE, now, None))
    if progress.stalled and last.outcome is Outcome.IN_PROGRESS:
        return _put(history, index, _finish(last, Outcome.FAILED, now, progress.stalled))
    return history


@dataclass(frozen=True)
class Rollback:
    failed: Revision
    good: Revision


def last_good(revisions: Sequence[Revision], other_than: str) -> Revision | None:
    """The newest revision that fully rolled out with a template other than `other_than`."""
    return next(
        (
            r
            for r in reversed(revisions)
            if r.outcome is Outcome.COMPLETE and not r.canary and r.template_hash != other_than
        ),
        None,
    )


def plan_rollback(revisions: Sequence[Revision], restorable: Collection[str]) -> Rollback | None:
    """What to roll back to when the newest revision has failed; None if nothing can be.

    A revision that was itself a rollback is never rolled back: that would loop. `restorable`
    holds the template hashes the cluster still has a ReplicaSet (or the Deployment) of."""
    index = _last(revisions)
    if index is None:
        return None
    failed = revisions[index]
    if failed.outcome is not Outcome.FAILED or failed.rollback_of is not None:
        return None
    good = last_good(revisions[:index], other_than=failed.template_hash)
    if good is None or good.template_hash not in restorable:
        return None
    return Rollback(failed, good)


def roll_back(
    revisions: Sequence[Revision], plan: Rollback, generation: int, now: str
) -> tuple[Revision, ...]:
    """The history once `plan` is decided: the failed revision RolledBack, and the good one's
    template starting again as a revision of this generation."""
    marked = tuple(
        replace(r, outcome=Outcome.ROLLED_BACK) if r.revision == plan.failed.revision else r
        for r in revisions
    )
    good = plan.good
    template = Template(good.template_hash, good.image, good.model_version, generation)
    return _start(marked, template, now, rollback_of=plan.failed.revision)


def abandon_restore(revisions: Sequence[Revision], why: str, now: str) -> tuple[Revision, ...]:
    """The history when the template a rollback returns to cannot be found any more: the restore
    failed, and whatever the Deployment runs next is a revision of its own."""
    index = _last(revisions)
    if index is None or revisions[index].rollback_of is None:
        return tuple(revisions)
    return _put(revisions, index, _finish(revisions[index], Outcome.FAILED, now, why))


def track_canary(
    revisions: Sequence[Revision],
    template: Template | None,
    *,
    wanted: bool,
    stable: Template | None,
    now: str,
) -> tuple[Revision, ...]:
    """The history brought up to date with the canary: `template` is its Deployment's (None:
    it has none), `wanted` whether the spec still asks for it, `stable` the stable
    Deployment's template of the API's current generation, which tells a promotion (it runs
    the canary's image and model version) from an abort (None: not applied yet, so a removed
    canary's outcome waits)."""
    history = tuple(revisions)
    index = _last(history, canary=True)
    last = None if index is None else history[index]
    running = last is not None and last.outcome is Outcome.IN_PROGRESS
    if wanted:
        if template is not None and not (running and last and last.template_hash == template.hash):
            return _start(history, template, now, canary=True)
        return history
    if index is None or last is None or not running or stable is None:
        return history
    promoted = (stable.image, stable.model_version) == (
        last.image,
        last.model_version,
    )
    outcome = Outcome.PROMOTED if promoted else Outcome.ABORTED
    return _put(history, index, _finish(last, outcome, now, None))
