"""One pass of the capacity loop: what to ask of each Auto Scaling group, and why.

Rules, per node group with an Auto Scaling group:
- Grow by the new nodes the unschedulable pods need (binpack), after the free room of the
  group's nodes and of instances asked for but not yet joined; never beyond the bounds' high.
- Shrink only a group with no pod waiting for it and no instance still joining; remove only a
  node that has held no pod (cluster.holds_node) for the whole cool-down, whose instance is in
  service in the group and not protected from scale-in; never below the bounds' low.
- A node the loop cordoned and did not remove this time is handed back (uncordoned), unless its
  instance has already left the group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ferry.capacity.asg import AsgState, bounds
from ferry.capacity.binpack import pack
from ferry.capacity.cluster import ApiKey, NodeView, PendingPod
from ferry.capacity.node_group import NodeGroup

# Reasons of the Events the loop posts; docs/capacity.md lists them.
SCALED_OUT = "NodeGroupScaledOut"
AT_MAX_SIZE = "NodeGroupAtMaxSize"
TOO_LARGE = "PodTooLargeForNodeGroup"
UNAVAILABLE = "NodeGroupUnavailable"


@dataclass(frozen=True)
class ScaleOut:
    group: str
    asg: str
    current: int
    desired: int
    pods: tuple[PendingPod, ...]
    """The pods the new nodes are for."""

    @property
    def added(self) -> int:
        return self.desired - self.current

    def apis(self) -> dict[ApiKey, int]:
        """Pods the new nodes are for, per RealtimeAPI."""
        return _by_api(self.pods)


@dataclass(frozen=True)
class ScaleIn:
    group: str
    asg: str
    node: str
    instance_id: str
    idle_seconds: float


@dataclass(frozen=True)
class Notice:
    """A standing problem of one API's pods with one group, posted once while it lasts."""

    reason: str
    group: str
    api: ApiKey
    message: str = field(compare=False)


@dataclass(frozen=True)
class CapacityPlan:
    scale_out: tuple[ScaleOut, ...] = ()
    scale_in: tuple[ScaleIn, ...] = ()
    release: tuple[str, ...] = ()
    """Nodes the loop cordoned earlier that are to be uncordoned."""
    notices: frozenset[Notice] = frozenset()
    idle_since: Mapping[str, float] = field(default_factory=dict)
    """For the next pass: since when each node has held no pod."""


def idle_clock(
    nodes: Iterable[NodeView], before: Mapping[str, float], now: float
) -> dict[str, float]:
    """Since when each idle node has been idle: a node seen busy, or gone, starts over."""
    return {node.name: before.get(node.name, now) for node in nodes if node.idle}


def _by_api(pods: Iterable[PendingPod]) -> dict[ApiKey, int]:
    counts: dict[ApiKey, int] = {}
    for pod in pods:
        counts[pod.api_key] = counts.get(pod.api_key, 0) + 1
    return counts


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True)
class _GroupPlan:
    scale_out: ScaleOut | None = None
    scale_in: tuple[ScaleIn, ...] = ()
    release: tuple[str, ...] = ()
    notices: tuple[Notice, ...] = ()


def _joined(asg: AsgState, nodes: Sequence[NodeView]) -> int:
    """Nodes whose instance is live in the group: the rest of desired capacity is joining."""
    return sum(1 for node in nodes if node.instance_id in asg.live)


def _grow(
    group: NodeGroup, asg: AsgState, nodes: Sequence[NodeView], waiting: Sequence[PendingPod]
) -> tuple[ScaleOut | None, list[Notice]]:
    assert group.allocatable is not None  # settings require it of a group with an asgName
    high = bounds(group, asg).high
    coming = max(0, asg.desired - _joined(asg, nodes))
    rooms = [node.free for node in nodes if not node.cordoned] + [group.allocatable] * coming
    by_key = {(pod.namespace, pod.name): pod for pod in waiting}
    packing = pack(
        [(key, pod.requests) for key, pod in by_key.items()],
        rooms,
        group.allocatable,
        limit=max(0, high - asg.desired),
    )
    notices = [
        Notice(
            TOO_LARGE,
            group.name,
            api,
            f"{_plural(count, 'pod')} of this API need more than a node of group {group.name} "
            f"offers ({group.allocatable}): no number of nodes will hold them",
        )
        for api, count in _by_api(by_key[k] for k in packing.too_large).items()
    ]
    notices += [
        Notice(
            AT_MAX_SIZE,
            group.name,
            api,
            f"node group {group.name} is at its maximum of {_plural(high, 'node')}: "
            f"{_plural(count, 'pod')} of this API wait for room",
        )
        for api, count in _by_api(by_key[k] for k in packing.unplaced).items()
    ]
    if packing.new_nodes == 0:
        return None, notices
    scale_out = ScaleOut(
        group=group.name,
        asg=asg.name,
        current=asg.desired,
        desired=asg.desired + packing.new_nodes,
        pods=tuple(by_key[k] for k in packing.on_new),
    )
    return scale_out, notices


def _shrink(
    group: NodeGroup,
    asg: AsgState,
    nodes: Sequence[NodeView],
    idle_since: Mapping[str, float],
    *,
    now: float,
    cooldown: float,
) -> list[ScaleIn]:
    room_to_shrink = max(0, asg.desired - bounds(group, asg).low)
    removable = asg.removable
    candidates = sorted(
        (
            node
            for node in nodes
            if node.idle
            and node.instance_id in removable
            # A node someone else cordoned is theirs to deal with (a drain, a repair).
            and (node.marked or not node.cordoned)
            and now - idle_since.get(node.name, now) >= cooldown
        ),
        key=lambda node: (idle_since[node.name], node.name),
    )
    return [
        ScaleIn(group.name, asg.name, node.name, str(node.instance_id), now - idle_since[node.name])
        for node in candidates[:room_to_shrink]
    ]


def _plan_group(
    group: NodeGroup,
    asg: AsgState,
    nodes: Sequence[NodeView],
    pending: Sequence[PendingPod],
    idle_since: Mapping[str, float],
    *,
    now: float,
    cooldown: float,
) -> _GroupPlan:
    waiting = [pod for pod in pending if pod.unschedulable]
    scale_out, notices = _grow(group, asg, nodes, waiting) if waiting else (None, [])
    settled = not pending and asg.desired <= _joined(asg, nodes)
    scale_in = _shrink(group, asg, nodes, idle_since, now=now, cooldown=cooldown) if settled else []
    leaving = {step.node for step in scale_in}
    release = tuple(
        node.name
        for node in nodes
        if node.marked
        and node.cordoned
        and node.name not in leaving
        and node.instance_id in asg.live
    )
    return _GroupPlan(scale_out, tuple(scale_in), release, tuple(notices))


def plan(
    groups: Iterable[NodeGroup],
    asgs: Mapping[str, AsgState],
    nodes: Sequence[NodeView],
    pending: Sequence[PendingPod],
    idle_since: Mapping[str, float],
    *,
    now: float,
    cooldown: float,
    unavailable: Mapping[str, str] | None = None,
) -> CapacityPlan:
    """`asgs` and `unavailable` are keyed by node group: the state of its Auto Scaling group, or
    why it could not be read (then the group is left as it is this pass)."""
    clock = idle_clock(nodes, idle_since, now)
    scale_out: list[ScaleOut] = []
    scale_in: list[ScaleIn] = []
    release: list[str] = []
    notices: set[Notice] = set()
    for group in groups:
        group_pending = [pod for pod in pending if pod.group == group.name]
        asg = asgs.get(group.name)
        if asg is None:
            why = (unavailable or {}).get(group.name, "its Auto Scaling group was not read")
            notices |= {
                Notice(UNAVAILABLE, group.name, api, f"node group {group.name}: {why}")
                for api in _by_api(p for p in group_pending if p.unschedulable)
            }
            continue
        group_nodes = [node for node in nodes if node.group == group.name]
        planned = _plan_group(
            group, asg, group_nodes, group_pending, clock, now=now, cooldown=cooldown
        )
        if planned.scale_out is not None:
            scale_out.append(planned.scale_out)
        scale_in += planned.scale_in
        release += planned.release
        notices |= set(planned.notices)
    return CapacityPlan(
        scale_out=tuple(scale_out),
        scale_in=tuple(scale_in),
        release=tuple(release),
        notices=frozenset(notices),
        idle_since=clock,
    )


def news(notices: frozenset[Notice], before: frozenset[Notice]) -> list[Notice]:
    """Notices not already posted while they lasted, in a stable order."""
    return sorted(notices - before, key=lambda n: (n.api, n.group, n.reason))


MAX_PAUSE = 300.0


def pause_after(failures: int, interval: float) -> float:
    """Seconds to the next pass: the interval, doubled for each pass in a row that failed, at
    most five minutes (or the interval, if longer), so a throttled or denied AWS is not asked
    again at full rate."""
    return max(interval, min(MAX_PAUSE, interval * 2.0 ** min(failures, 16)))
