"""What a pod asks the scheduler for and what a node offers, in the units the scheduler counts.

A pod's request follows Kubernetes' effective-request rule: its containers and sidecars run
together, each ordinary init container runs alone beside the sidecars started before it, the
pod needs the larger of the two (or its pod-level request, where given), plus its overhead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ferry.capacity.quantity import format_bytes, format_millicores, millicores, whole

GPU = "nvidia.com/gpu"
"""The extended resource a RealtimeAPI's spec.predictor.resources.gpu becomes."""


@dataclass(frozen=True, slots=True)
class Resources:
    cpu: int = 0
    """Millicores."""
    memory: int = 0
    """Bytes."""
    gpu: int = 0

    @classmethod
    def of(cls, listed: Mapping[str, Any] | None) -> Resources:
        """From a requests or allocatable map ({"cpu": "500m", "memory": "1Gi", ...}); other
        resources (ephemeral-storage, pods, hugepages) are not what node groups are sized by."""
        listed = listed or {}
        return cls(
            cpu=millicores(listed.get("cpu", 0)),
            memory=whole(listed.get("memory", 0)),
            gpu=whole(listed.get(GPU, 0)),
        )

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory + other.memory, self.gpu + other.gpu)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory - other.memory, self.gpu - other.gpu)

    def fits_in(self, room: Resources) -> bool:
        return self.cpu <= room.cpu and self.memory <= room.memory and self.gpu <= room.gpu

    def largest(self, other: Resources) -> Resources:
        """The larger of each resource."""
        return Resources(
            max(self.cpu, other.cpu), max(self.memory, other.memory), max(self.gpu, other.gpu)
        )

    def share_of(self, whole_node: Resources) -> float:
        """The largest fraction of `whole_node` this takes of any one resource."""
        shares = [
            part / total
            for part, total in (
                (self.cpu, whole_node.cpu),
                (self.memory, whole_node.memory),
                (self.gpu, whole_node.gpu),
            )
            if total > 0
        ]
        return max(shares, default=0.0)

    def __str__(self) -> str:
        text = f"cpu {format_millicores(self.cpu)}, memory {format_bytes(self.memory)}"
        return f"{text}, gpu {self.gpu}" if self.gpu else text


def total(parts: Iterable[Resources]) -> Resources:
    summed = Resources()
    for part in parts:
        summed += part
    return summed


def _requests(container: Mapping[str, Any]) -> Resources:
    return Resources.of((container.get("resources") or {}).get("requests"))


def pod_requests(spec: Mapping[str, Any]) -> Resources:
    """What the scheduler reserves for a pod with this spec."""
    running = total(_requests(c) for c in spec.get("containers") or ())
    sidecars = Resources()
    init_peak = Resources()
    for init in spec.get("initContainers") or ():
        if init.get("restartPolicy") == "Always":
            # A sidecar starts in order and keeps running beside everything after it.
            sidecars += _requests(init)
            init_peak = init_peak.largest(sidecars)
        else:
            init_peak = init_peak.largest(sidecars + _requests(init))
    needed = (running + sidecars).largest(init_peak)
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    if pod_level:
        given = Resources.of(pod_level)
        needed = Resources(
            cpu=given.cpu if "cpu" in pod_level else needed.cpu,
            memory=given.memory if "memory" in pod_level else needed.memory,
            gpu=needed.gpu,
        )
    return needed + Resources.of(spec.get("overhead"))
