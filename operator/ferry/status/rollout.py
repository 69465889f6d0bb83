"""How far a Deployment is in rolling out its pod template, read from its spec and status."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ferry import names
from ferry.status.conditions import condition
from ferry.status.revisions import Template

DEFAULT_PROGRESS_DEADLINE = 600
"""Seconds; the API server's default for a Deployment's spec.progressDeadlineSeconds."""


@dataclass(frozen=True)
class Rollout:
    """How far the Deployment is in rolling out the current generation."""

    observed: bool
    """The Deployment controller has seen the Deployment's latest spec."""
    current: bool
    desired: int
    total: int
    updated: int
    ready: int
    available: int
    deadline_exceeded: bool
    was_complete: bool
    deadline_exceeded_at: str | None
    """When the controller gave its ProgressDeadlineExceeded verdict (None: it has not)."""
    progress_deadline_seconds: int
    template: Template | None = None
    """The pod template's identity; None for one rendered before templates carried it."""

    @property
    def rolled_out(self) -> bool:
        """Every replica runs the Deployment's template and is available, whichever
        generation of the API the template came from."""
        return (
            self.observed
            and self.updated == self.desired
            and self.total == self.updated
            and self.available >= self.desired
        )

    @property
    def complete(self) -> bool:
        return self.current and self.rolled_out


def template_hash_of(owner: Mapping[str, Any]) -> str | None:
    """The template hash a Deployment's or ReplicaSet's pod template carries (the renderer
    puts it there: ferry.render.children.template_hash)."""
    template = (owner.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    digest = annotations.get(names.TEMPLATE_HASH_ANNOTATION)
    return str(digest) if digest else None


def template_of(deployment: Mapping[str, Any]) -> Template | None:
    metadata = deployment.get("metadata", {})
    template = deployment.get("spec", {}).get("template", {}).get("metadata") or {}
    annotations = template.get("annotations") or {}
    digest = template_hash_of(deployment)
    generation = (metadata.get("annotations") or {}).get(names.GENERATION_ANNOTATION, "")
    if digest is None or not str(generation).isdigit():
        return None
    return Template(
        hash=digest,
        image=str(annotations.get(names.IMAGE_ANNOTATION, "")),
        model_version=annotations.get(names.MODEL_VERSION_ANNOTATION),
        generation=int(generation),
    )


def rollout_of(deployment: Mapping[str, Any], generation: int) -> Rollout:
    metadata = deployment.get("metadata", {})
    status = deployment.get("status") or {}
    annotations = metadata.get("annotations") or {}
    observed = status.get("observedGeneration", 0) >= metadata.get("generation", 1)
    progressing = condition(status, "Progressing") or {}
    exceeded = progressing.get("reason") == "ProgressDeadlineExceeded"
    return Rollout(
        observed=observed,
        current=observed and annotations.get(names.GENERATION_ANNOTATION) == str(generation),
        desired=int(deployment.get("spec", {}).get("replicas", 0)),
        total=int(status.get("replicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        ready=int(status.get("readyReplicas", 0)),
        available=int(status.get("availableReplicas", 0)),
        # Only a verdict on the template the controller has seen is a verdict on this one.
        deadline_exceeded=observed and exceeded,
        was_complete=progressing.get("reason") == "NewReplicaSetAvailable",
        deadline_exceeded_at=progressing.get("lastUpdateTime") if exceeded else None,
        progress_deadline_seconds=int(
            deployment.get("spec", {}).get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
        ),
        template=template_of(deployment),
    )


def without_stale_verdict(rollout: Rollout, started: str, now: str) -> Rollout:
    """The rollout of a template that started at `started`, without a deadline verdict that was
    given on an earlier template.

    The Deployment controller resets its Progressing condition when it creates a ReplicaSet, but
    not when the template goes back to one it already has (a rollback, or a version reverted by
    hand): the earlier template's ProgressDeadlineExceeded then stands until progress is seen. It
    is this template's verdict only if given after the template started, or once the template
    has had a whole deadline of its own."""
    if not rollout.deadline_exceeded or rollout.deadline_exceeded_at is None:
        return rollout
    try:
        given, start, at = map(
            datetime.datetime.fromisoformat, (rollout.deadline_exceeded_at, started, now)
        )
    except ValueError:
        return rollout
    deadline = datetime.timedelta(seconds=rollout.progress_deadline_seconds)
    if given > start or at - start >= deadline:
        return rollout
    return replace(rollout, deadline_exceeded=False)
