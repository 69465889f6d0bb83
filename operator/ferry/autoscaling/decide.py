"""The decision: desired replicas from recent demand, with the reason a user can read.

Pure and deterministic: the same history, policy, replica counts, time and state give the same
decision. The state the next tick needs (panic mode, recent recommendations) comes back inside
the decision instead of living in a global.

One tick, in order:
1. Average demand over the stable and the panic window; without data, keep replicas.
2. Panic when panic-window demand reaches panicThreshold x ready capacity; leave panic only
   after a whole stable window below it. While panicking, follow the panic window and never
   scale down.
3. Otherwise recommend ceil(stable demand / target), unless that is within tolerance of now.
4. Bound the step: up to maxUpscaleFactor x ready replicas, down to maxDownscaleFactor x
   current replicas; a step of one is always allowed.
5. Stabilize like the HPA: scale up no further than the lowest recommendation of the upscale
   window, down no further than the highest of the downscale window. Only stable-window
   recommendations are remembered (panic ones carry a backlog that drains), and nothing is
   given back before a whole window has been watched (a restarted operator sheds nothing).
6. Never scale down on partial data; clamp to [minReplicas, maxReplicas].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from ferry.autoscaling.history import DemandHistory, WindowAverage
from ferry.autoscaling.policy import AutoscalingPolicy

# Demand is a float average; without the slack, 8.000000001 requests at a target of 4 would ask
# for a third replica.
_EPSILON = 1e-9


class Reason(StrEnum):
    """Why the desired replicas are what they are; status and Events carry it verbatim."""

    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    STEADY = "Steady"
    """Demand asks for exactly the current replicas."""
    WITHIN_TOLERANCE = "WithinTolerance"
    """Demand moved less than the tolerance from the current replicas' target."""
    PANIC = "Panic"
    """A burst: replicas follow the panic window and do not go down until it has passed."""
    STABILIZING = "Stabilizing"
    """A recent recommendation holds the change back (see the stabilization windows)."""
    PARTIAL_DATA = "PartialData"
    """Demand says scale down, but some pods did not answer, so it may be an underestimate."""
    NO_DATA = "NoData"
    """No pod answered within the stable window; replicas stay as they are."""
    AT_MIN = "AtMin"
    AT_MAX = "AtMax"


@dataclass(frozen=True, slots=True)
class Recommendation:
    time: float
    replicas: int


@dataclass(frozen=True)
class Panic:
    since: float
    last_over: float
    """The last tick at which panic-window demand crossed the threshold."""


@dataclass(frozen=True)
class ScalerState:
    """What one tick hands to the next; start with ScalerState()."""

    panic: Panic | None = None
    recommendations: tuple[Recommendation, ...] = ()
    since: float | None = None
    """The first tick with data: how long this state has been watching."""


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: Reason
    state: ScalerState
    stable_demand: float | None
    """Mean demand over the stable window (status.inFlight), None without data."""
    panic_demand: float | None
    message: str
    """One line a user can check by hand: the demand, the target and what followed."""

    @property
    def panicking(self) -> bool:
        return self.state.panic is not None


def decide(
    history: DemandHistory,
    policy: AutoscalingPolicy,
    *,
    ready_replicas: int,
    current_replicas: int,
    now: float,
    state: ScalerState,
) -> Decision:
    """The replicas to ask for now; `current_replicas` is the count last asked for."""
    stable = history.average(now, policy.window)
    fast = history.average(now, policy.panic_window)
    if stable is None:
        kept = _clamp(policy, current_replicas)
        return Decision(
            replicas=kept,
            reason=_limit(policy, current_replicas) or Reason.NO_DATA,
            state=state,
            stable_demand=None,
            panic_demand=None,
            message=f"no pod answered in the last {policy.window:g}s; keeping {kept}",
        )

    target = policy.target_in_flight
    stable_load = _load(policy, stable)
    panic = _panic(policy, state.panic, _load(policy, fast) if fast else None, ready_replicas, now)
    since = now if state.since is None else state.since
    partial = stable.partial or (fast is not None and fast.partial)

    held: Reason | None = None
    wanted = _replicas_for(stable_load, target)
    if current_replicas > 0 and abs(stable_load / target / current_replicas - 1) <= (
        policy.tolerance
    ):
        wanted = current_replicas
        held = Reason.WITHIN_TOLERANCE
    # What the stable window alone asks for is what stabilization remembers. A burst's panic
    # recommendation counts its backlog of queued requests, which drains as soon as the new
    # replicas are up; remembering it would hold that overshoot for the whole downscale window.
    calm = _clamp(policy, _bound_step(policy, wanted, ready_replicas, current_replicas))
    if panic is not None:
        # A burst is sized by its busiest tick, so the first panic asks for all it needs.
        surge = _load(policy, fast, peak=True) if fast else 0.0
        wanted = max(wanted, _replicas_for(surge, target), current_replicas)
        held = Reason.PANIC
    wanted = _bound_step(policy, wanted, ready_replicas, current_replicas)
    if wanted < current_replicas and partial:
        wanted = current_replicas
        held = Reason.PARTIAL_DATA
    limit = _limit(policy, wanted)
    wanted = _clamp(policy, wanted)

    recommendations = (
        *(r for r in state.recommendations if r.time > now - policy.memory),
        Recommendation(now, max(calm, current_replicas) if partial else calm),
    )
    # A burst does not wait for stabilization: that is what panic mode is for.
    desired = (
        wanted
        if panic is not None
        else _clamp(policy, _stabilize(policy, recommendations, current_replicas, now))
    )
    # Until a whole window has been watched (a new operator, a restarted one), the averages
    # and the recommendation memory are too short to trust with giving replicas back.
    if now - since < max(policy.window, policy.downscale_stabilization):
        desired = max(desired, min(current_replicas, policy.max_replicas))
    if desired != wanted:
        reason = Reason.STABILIZING
    elif limit is not None:
        reason = limit
    elif held is not None:
        reason = held
    elif desired == current_replicas:
        reason = Reason.STEADY
    else:
        reason = Reason.SCALE_UP if desired > current_replicas else Reason.SCALE_DOWN
    panic_text = f", {fast.demand:.2f} over {policy.panic_window:g}s" if fast else ""
    return Decision(
        replicas=desired,
        reason=reason,
        state=ScalerState(panic, recommendations, since),
        stable_demand=stable.demand,
        panic_demand=fast.demand if fast else None,
        message=(
            f"demand {stable.demand:.2f} over {policy.window:g}s{panic_text}"
            f" at {target:g} per replica with {ready_replicas} ready: {current_replicas}"
            f" -> {desired} ({reason})"
        ),
    )


def _load(policy: AutoscalingPolicy, average: WindowAverage, *, peak: bool = False) -> float:
    """What the replicas must carry: demand, but no more than the offered load allows.

    Demand counts every queued request; while replicas are saturated that backlog grows
    without bound and would ask for replicas that sit idle once it has drained. The offered
    load (arrivals x service time) is what the traffic needs; the headroom over it leaves
    demand in charge in ordinary queueing. Both only ever raise the result.
    """
    offered = average.offered_peak if peak else average.offered
    if offered is None:
        return average.demand
    return min(average.demand, offered * policy.offered_headroom)


def _replicas_for(demand: float, target: float) -> int:
    return math.ceil(demand / target - _EPSILON)


def _clamp(policy: AutoscalingPolicy, replicas: int) -> int:
    return min(max(replicas, policy.min_replicas), policy.max_replicas)


def _limit(policy: AutoscalingPolicy, replicas: int) -> Reason | None:
    if replicas > policy.max_replicas:
        return Reason.AT_MAX
    if replicas < policy.min_replicas:
        return Reason.AT_MIN
    return None


def _panic(
    policy: AutoscalingPolicy,
    panic: Panic | None,
    fast: float | None,
    ready_replicas: int,
    now: float,
) -> Panic | None:
    # With no replica ready, capacity counts as one: a real burst still panics, while the odd
    # request queued during a start-up does not.
    capacity = max(ready_replicas, 1) * policy.target_in_flight
    if fast is not None and fast >= policy.panic_threshold * capacity:
        return replace(panic, last_over=now) if panic else Panic(since=now, last_over=now)
    if panic is not None and now - panic.last_over < policy.window:
        return panic
    return None


def _bound_step(
    policy: AutoscalingPolicy, wanted: int, ready_replicas: int, current_replicas: int
) -> int:
    # Growth is measured from ready replicas: pods still starting have not shown that more of
    # them help, and measuring from the count asked for would compound tick after tick.
    ceiling = max(
        current_replicas,
        ready_replicas + 1,
        math.floor(max(ready_replicas, 1) * policy.max_upscale_factor),
    )
    floor = min(current_replicas - 1, math.ceil(current_replicas * policy.max_downscale_factor))
    return min(max(wanted, floor), ceiling)


def _stabilize(
    policy: AutoscalingPolicy,
    recommendations: tuple[Recommendation, ...],
    current_replicas: int,
    now: float,
) -> int:
    """Like the HPA: rise only to the lowest recommendation of the upscale window, fall only to
    the highest of the downscale window (a zero window holds just this tick's)."""
    newest = recommendations[-1]
    up = [r.replicas for r in recommendations if r.time > now - policy.upscale_stabilization]
    down = [
        math.ceil(r.replicas * policy.downscale_hold - _EPSILON)
        for r in recommendations
        if r.time > now - policy.downscale_stabilization
    ]
    return min(
        max(current_replicas, min(up, default=newest.replicas)),
        max(*down, newest.replicas) if down else newest.replicas,
    )
