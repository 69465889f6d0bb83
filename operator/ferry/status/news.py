"""What a status change has to tell as Events: a revision rolled out, failed or rolled back, a
rollout short of room, a generation that cannot be applied. Computed from the status before and
after a write, so only the writer whose write made the change posts the Event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ferry.status.canary import CANARY, CANARY_ABORTED, CANARY_PROMOTED, CANARY_REMOVING
from ferry.status.compute import NAME_IN_USE, REJECTED
from ferry.status.conditions import condition
from ferry.status.revisions import Outcome, parse_revisions
from ferry.status.route import ROUTED


@dataclass(frozen=True)
class News:
    kind: str
    """"Normal" or "Warning", as in a Kubernetes Event."""
    reason: str
    message: str


def rollout_news(previous: Mapping[str, Any], computed: Mapping[str, Any]) -> list[News]:
    before = {r.revision: r.outcome for r in parse_revisions(previous.get("revisions"))}
    ready = condition(computed, "Ready") or {}
    news = []
    for revision in parse_revisions(computed.get("revisions")):
        if revision.canary or before.get(revision.revision) is revision.outcome:
            continue
        if revision.outcome is Outcome.COMPLETE:
            news.append(News("Normal", "RolloutComplete", f"{revision.describe()} is rolled out"))
        elif revision.outcome is Outcome.FAILED:
            news.append(
                News(
                    "Warning",
                    "ProgressDeadlineExceeded",
                    f"{revision.describe()} made no progress within its deadline: "
                    f"{revision.message}",
                )
            )
        elif revision.outcome is Outcome.ROLLED_BACK and ready.get("reason") == "RolledBack":
            news.append(News("Warning", "RolledBack", str(ready.get("message"))))
    progressing = condition(computed, "Progressing") or {}
    was = (condition(previous, "Progressing") or {}).get("reason")
    if progressing.get("reason") == "InsufficientCapacity" and was != "InsufficientCapacity":
        news.append(News("Warning", "InsufficientCapacity", str(progressing.get("message"))))
    return news


def blocked_news(previous: Mapping[str, Any], computed: Mapping[str, Any]) -> list[News]:
    """A Warning when Ready turns NameInUse or Rejected, or says so of something else. (The
    reconciler posts InvalidSpec itself, with its own status write.)"""
    ready = condition(computed, "Ready") or {}
    if ready.get("reason") not in (NAME_IN_USE, REJECTED):
        return []
    was = condition(previous, "Ready") or {}
    told = ("reason", "message", "observedGeneration")
    if all(was.get(key) == ready.get(key) for key in told):
        return []
    return [News("Warning", str(ready["reason"]), str(ready.get("message")))]


def route_news(previous: Mapping[str, Any], computed: Mapping[str, Any]) -> list[News]:
    """Normal Routed when the Gateway takes the route; a Warning when it refuses it, or says
    something else of it."""
    routed = condition(computed, ROUTED) or {}
    was = condition(previous, ROUTED) or {}
    if not routed or all(was.get(key) == routed.get(key) for key in ("status", "reason")):
        return []
    if routed.get("status") == "True":
        return [News("Normal", ROUTED, str(routed.get("message")))]
    if routed.get("status") == "False":
        return [News("Warning", str(routed.get("reason")), str(routed.get("message")))]
    return []


_CANARY_ENDS = {
    Outcome.PROMOTED: ("CanaryPromoted", "the stable version now runs it"),
    Outcome.ABORTED: ("CanaryAborted", "the stable version runs what it ran before"),
}


def canary_news(previous: Mapping[str, Any], computed: Mapping[str, Any]) -> list[News]:
    """Normal CanaryStarted when a canary revision starts, CanaryPromoted or CanaryAborted when
    one is taken out of the spec; a Warning when the Canary condition turns False for a reason
    of its own (the canary cannot run, or made no progress)."""
    before = {r.revision: r.outcome for r in parse_revisions(previous.get("revisions"))}
    news = []
    for revision in parse_revisions(computed.get("revisions")):
        if not revision.canary or before.get(revision.revision) is revision.outcome:
            continue
        if revision.outcome is Outcome.IN_PROGRESS:
            news.append(News("Normal", "CanaryStarted", f"{revision.describe()} started"))
        elif revision.outcome in _CANARY_ENDS:
            reason, why = _CANARY_ENDS[revision.outcome]
            news.append(News("Normal", reason, f"{revision.describe()}: {why}"))
    told = condition(computed, CANARY) or {}
    was = condition(previous, CANARY) or {}
    removed = (CANARY_PROMOTED, CANARY_ABORTED, CANARY_REMOVING)
    if (
        told.get("status") == "False"
        and told.get("reason") not in removed
        and any(was.get(key) != told.get(key) for key in ("status", "reason"))
    ):
        news.append(News("Warning", str(told.get("reason")), str(told.get("message"))))
    return news
