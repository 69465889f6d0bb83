"""A node group: a pool of nodes an API can ask for with spec.nodeGroup, and, with an Auto
Scaling group behind it, what the capacity loop grows and shrinks. The operator's settings read
them from FERRY_NODE_GROUPS."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ferry.capacity.resources import Resources


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class NodeGroup:
    """A pool of nodes an API can ask for with spec.nodeGroup."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    asg_name: str | None = None
    """The EC2 Auto Scaling group whose instances are the nodes; without one the capacity loop
    leaves the group alone."""
    allocatable: Resources | None = None
    """What one instance offers pods: new nodes are sized by it. Required with asg_name."""
    min_size: int = 0
    """The capacity loop never takes the group below this (nor below the group's own MinSize)."""
    max_size: int | None = None
    """The capacity loop never grows the group beyond this (nor beyond its own MaxSize)."""
