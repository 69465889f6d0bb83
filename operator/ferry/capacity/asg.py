"""An EC2 Auto Scaling group as DescribeAutoScalingGroups tells it, and the bounds the capacity
loop keeps it within."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ferry.capacity.node_group import NodeGroup

# Lifecycle states of an instance that is, or is becoming, a node. The rest (Terminating*,
# Terminated, Detaching, Detached, Standby, Warmed*) are on their way out or set aside.
_LIVE_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "InService"})


@dataclass(frozen=True, slots=True)
class Instance:
    id: str
    lifecycle: str
    protected: bool = False
    """ProtectedFromScaleIn: someone asked Auto Scaling, and so the loop, to keep it."""

    @property
    def live(self) -> bool:
        return self.lifecycle in _LIVE_STATES

    @property
    def removable(self) -> bool:
        return self.lifecycle == "InService" and not self.protected


@dataclass(frozen=True, slots=True)
class AsgState:
    name: str
    desired: int
    min_size: int
    max_size: int
    instances: tuple[Instance, ...] = ()

    @classmethod
    def of(cls, described: Mapping[str, Any]) -> AsgState:
        """From one entry of DescribeAutoScalingGroups' AutoScalingGroups."""
        return cls(
            name=str(described["AutoScalingGroupName"]),
            desired=int(described["DesiredCapacity"]),
            min_size=int(described["MinSize"]),
            max_size=int(described["MaxSize"]),
            instances=tuple(
                Instance(
                    id=str(i["InstanceId"]),
                    lifecycle=str(i.get("LifecycleState", "")),
                    protected=bool(i.get("ProtectedFromScaleIn", False)),
                )
                for i in described.get("Instances") or ()
            ),
        )

    @property
    def live(self) -> frozenset[str]:
        return frozenset(i.id for i in self.instances if i.live)

    @property
    def removable(self) -> frozenset[str]:
        return frozenset(i.id for i in self.instances if i.removable)


@dataclass(frozen=True, slots=True)
class Bounds:
    low: int
    high: int


def bounds(group: NodeGroup, asg: AsgState) -> Bounds:
    """The tighter of the operator's settings and the group's own MinSize and MaxSize: AWS
    refuses a desired capacity outside its own, and the settings may ask for less."""
    high = asg.max_size if group.max_size is None else min(group.max_size, asg.max_size)
    return Bounds(low=max(group.min_size, asg.min_size), high=high)
