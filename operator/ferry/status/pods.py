"""Why the pods of a revision are not ready, in words a person can act on.

Read from what the scheduler and the kubelet wrote on the pods: the PodScheduled condition (the
scheduler's "0/3 nodes are available: 3 Insufficient cpu"), and the waiting or failed state of
each container (ErrImagePull, CrashLoopBackOff, ...). The operator keeps a `PodState` per pod in
memory, from its watch of Ferry's pods, so a status write reads no pod from the API server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ferry import names
from ferry.status.conditions import condition

MAX_MESSAGE = 300
# A scheduler message naming a resource no node has enough of: what a bigger or another node
# would fix, as opposed to a selector or taint nothing matches.
_CAPACITY_WORDS = ("Insufficient ", "Too many pods")
# A container waits with these while all goes well.
_STARTING = frozenset({"ContainerCreating", "PodInitializing"})


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return condition(pod.get("status") or {}, kind) or {}


def unschedulable(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's message when it found no node for the pod."""
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return str(scheduled.get("message") or "no node fits the pod")
    return None


def _container_trouble(pod: Mapping[str, Any]) -> str | None:
    status = pod.get("status") or {}
    for key, kind in (("initContainerStatuses", "init container"), ("containerStatuses", "")):
        for container in status.get(key) or ():
            state = container.get("state") or {}
            what = f"{kind or 'container'} {container.get('name')}"
            waiting = state.get("waiting") or {}
            if waiting and waiting.get("reason") not in _STARTING:
                detail = f": {waiting['message']}" if waiting.get("message") else ""
                return f"{what}: {waiting.get('reason')}{detail}"
            ended = state.get("terminated") or {}
            if ended and ended.get("exitCode", 0) != 0:
                return f"{what} exited with code {ended.get('exitCode')}"
            if not kind and "running" in state and not container.get("ready"):
                return f"{what} is running but not ready"
    return None


@dataclass(frozen=True, slots=True)
class PodState:
    """What a status write and an autoscaler tick need of one of the API's pods; the operator
    keeps one per pod in memory (ferry.handlers.indexes)."""

    name: str
    ip: str | None
    template_hash: str | None
    ready: bool
    leaving: bool
    unschedulable: str | None
    """The scheduler's message, when it found no node."""
    trouble: str | None
    """The first container that is neither running and ready nor on its way there."""

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> PodState:
        metadata = pod.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        ready = _condition(pod, "Ready").get("status") == "True"
        return cls(
            name=str(metadata.get("name", "")),
            ip=(pod.get("status") or {}).get("podIP") or None,
            template_hash=annotations.get(names.TEMPLATE_HASH_ANNOTATION),
            ready=ready,
            leaving=metadata.get("deletionTimestamp") is not None,
            unschedulable=None if ready else unschedulable(pod),
            trouble=None if ready else _container_trouble(pod),
        )


@dataclass(frozen=True)
class Trouble:
    capacity: str | None = None
    """The scheduler's word when a pod waits for room on a node."""
    other: str | None = None
    """The first other reason a pod is not ready."""

    @property
    def message(self) -> str | None:
        return self.capacity or self.other


NO_TROUBLE = Trouble()


def trouble(pods: Iterable[PodState], template_hash: str) -> Trouble:
    """What holds up the pods of the revision with this template (by pod name, so the message
    does not depend on the order pods were seen in)."""
    capacity = other = None
    waiting = sorted(
        (
            pod
            for pod in pods
            if pod.template_hash == template_hash and not pod.ready and not pod.leaving
        ),
        key=lambda pod: pod.name,
    )
    for pod in waiting:
        if pod.unschedulable is not None:
            if any(word in pod.unschedulable for word in _CAPACITY_WORDS):
                found = f"pod {pod.name} does not fit any node: {pod.unschedulable}"
                capacity = capacity or _short(found)
            else:
                found = f"pod {pod.name} cannot be scheduled: {pod.unschedulable}"
                other = other or _short(found)
        elif pod.trouble is not None:
            other = other or _short(f"pod {pod.name}: {pod.trouble}")
    return Trouble(capacity, other)
