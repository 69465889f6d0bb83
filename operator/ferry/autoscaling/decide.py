"""The decision: desired replicas from recent demand, with the reason a user can read.

Pure and deterministic: the same history, policy, replica counts, time and state give the same
decision. The state the next tick needs (panic mode, recent recommendations, the start-up delay
learned) comes back inside the decision instead of living in a global.

One tick, in order, a function a step (decide() calls them one after the other):
1. `_average`: demand over the stable and the panic window; without data, keep replicas
   (`_no_data`).
2. `_panic`: panic when panic-window load reaches panicThreshold x ready capacity; leave panic
   a whole stable window after the last tick over it, or as soon as the ready replicas would
   carry panicThreshold x the panic-window load (the mirror: the surge is over). While
   panicking, follow the panic window and never scale down (`_follow_panic`).
3. `_recommend`: otherwise ceil(stable load / target), unless that is within tolerance of now.
4. `_bound`: bound the step, up to maxUpscaleFactor x ready replicas, down to
   maxDownscaleFactor x current replicas; a step of one is always allowed. Nothing is given
   back on partial data; clamp to [minReplicas, maxReplicas].
5. `_remember`, `_held_floor`, `_stabilize`: scale up no further than the lowest
   recommendation of the upscale window; scale down no further than the queue floor of the
   highest load of the downscale window (ferry.autoscaling.queues), nor below the stable
   recommendation unless the load has dropped (panic-window load below 1/panicThreshold of the
   stable window's, the mirror of a panic). Only stable-window recommendations are remembered
   (panic ones carry a backlog that drains), and on partial data none below the current
   replicas. While pods asked for are still starting, a stable-window scale-up waits for them.
   A panic skips this step.
6. `_relieve`, the overload (ferry.autoscaling.queues): when the ready replicas' queues would
   fill before a new pod is ready, ask at once for what carries the load; give back nothing
   they need.
7. `_hold`: nothing is given back before a whole window has been watched (a restarted
   operator sheds nothing), and until a whole downscale window has been watched one replica
   more than the stable window asks for is kept, for the peaks before the start that the
   replicas found may have been asked for.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from operator import attrgetter
from typing import NamedTuple

from ferry.autoscaling.history import DemandHistory, WindowAverage
from ferry.autoscaling.policy import AutoscalingPolicy
from ferry.autoscaling.queues import floor_replicas, overload
from ferry.autoscaling.startup import StartupWatch

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
    OVERLOAD = "Overload"
    """The ready replicas cannot serve the offered load and their queues would fill before a
    new pod is ready: scaled up at once, and nothing they need is given back."""
    STABILIZING = "Stabilizing"
    """A recent recommendation, the queue floor of a recent peak, or pods still starting hold
    the change back (see the stabilization windows)."""
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
    """What the stable window asked for at `time`."""
    floor: int
    """The queue floor of the stable window's load at `time`: replicas whose queues absorb its
    return while new pods start."""

    def same_as(self, other: Recommendation) -> bool:
        return (self.replicas, self.floor) == (other.replicas, other.floor)


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
    startup: StartupWatch = field(default_factory=StartupWatch)
    """The scale-up being waited for and the start-up delay measured."""


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


@dataclass(slots=True)
class _Tick:
    """What every step reads: the policy, the two windows' averages and the replica counts."""

    policy: AutoscalingPolicy
    stable: WindowAverage
    fast: WindowAverage | None
    load: float
    """The stable window's load (_load)."""
    ready: int
    current: int
    """The replicas last asked for."""
    now: float
    partial: bool
    """A pod did not answer in one of the windows: the demand is a lower bound."""
    startup: float
    """Seconds a new pod takes to be ready: the last measured, else the policy's assumption."""


class _Wanted(NamedTuple):
    """The replicas a step asks for, before stabilization, and why."""

    replicas: int
    why: Reason | None
    """What set or held it: the tolerance, a panic, partial data, a limit; None: the load."""


def decide(
    history: DemandHistory,
    policy: AutoscalingPolicy,
    *,
    ready_replicas: int,
    current_replicas: int,
    now: float,
    state: ScalerState,
) -> Decision:
    """The replicas to ask for now; `current_replicas` is the count last asked for. The steps
    are the module's seven, in order."""
    stable, fast = _average(history, policy, now)
    if stable is None:
        return _no_data(policy, current_replicas, state)
    startup = state.startup.watch(ready=ready_replicas, current=current_replicas, now=now)
    tick = _Tick(
        policy,
        stable,
        fast,
        _load(policy, stable),
        ready_replicas,
        current_replicas,
        now,
        stable.partial or (fast is not None and fast.partial),
        startup.delay(policy.startup_delay),
    )
    panic = _panic(tick, state.panic)
    calm = _recommend(tick)
    wanted = _bound(tick, _follow_panic(tick, calm) if panic else calm)
    recommendations = _remember(tick, state.recommendations, calm.replicas)
    floor = _held_floor(tick, recommendations)
    # A burst does not wait for stabilization: that is what panic mode is for.
    stabilized = (
        wanted.replicas if panic else _stabilize(tick, recommendations, floor, startup=startup)
    )
    relieved = _relieve(tick, stabilized)
    since = now if state.since is None else state.since
    desired = _hold(tick, relieved, recommendations, watched=now - since)
    reason = Reason.OVERLOAD if relieved > stabilized else _reason(tick, desired, wanted)
    return Decision(
        replicas=desired,
        reason=reason,
        state=ScalerState(
            panic,
            recommendations,
            since,
            startup.asking(
                desired=desired, ready=ready_replicas, current=current_replicas, now=now
            ),
        ),
        stable_demand=stable.demand,
        panic_demand=fast.demand if fast else None,
        message=_message(tick, desired, reason, floor, wanted.replicas),
    )


def _average(
    history: DemandHistory, policy: AutoscalingPolicy, now: float
) -> tuple[WindowAverage | None, WindowAverage | None]:
    """Step 1: the stable and the panic window's averages."""
    return history.average(now, policy.window), history.average(now, policy.panic_window)


def _no_data(policy: AutoscalingPolicy, current_replicas: int, state: ScalerState) -> Decision:
    """Step 1 without data: the replicas stay as they are (within the limits)."""
    kept = _clamp(policy, current_replicas)
    return Decision(
        replicas=kept,
        reason=_limit(policy, current_replicas) or Reason.NO_DATA,
        state=state,
        stable_demand=None,
        panic_demand=None,
        message=f"no pod answered in the last {policy.window:g}s; keeping {kept}",
    )


def _panic(tick: _Tick, panic: Panic | None) -> Panic | None:
    """Step 2: panic at panicThreshold x ready capacity in the panic window; leave it a whole
    stable window after the last tick over it, or once the surge is over."""
    policy, now = tick.policy, tick.now
    load = _load(policy, tick.fast) if tick.fast else None
    # With no replica ready, capacity counts as one: a real burst still panics, while the odd
    # request queued during a start-up does not.
    capacity = max(tick.ready, 1) * policy.target_in_flight
    if load is not None and load >= policy.panic_threshold * capacity:
        return replace(panic, last_over=now) if panic else Panic(since=now, last_over=now)
    if panic is None or now - panic.last_over >= policy.window:
        return None
    # The surge is over: the ready replicas would carry panicThreshold times the panic window's
    # load at target, the mirror of what started the panic.
    over = (
        panic.last_over < now
        and load is not None
        and not tick.partial
        and load * policy.panic_threshold <= tick.ready * policy.target_in_flight
    )
    return None if over else panic


def _recommend(tick: _Tick) -> _Wanted:
    """Step 3: ceil(load / target), or the current replicas when the stable window's load is
    within tolerance of what they are meant to carry."""
    policy, current = tick.policy, tick.current
    target = policy.target_in_flight
    if current > 0 and abs(tick.load / target / current - 1) <= policy.tolerance:
        return _Wanted(current, Reason.WITHIN_TOLERANCE)
    return _Wanted(_replicas_for(tick.load, target), None)


def _follow_panic(tick: _Tick, calm: _Wanted) -> _Wanted:
    """Step 2 while panicking: the panic window is followed, and nothing is given back. A
    burst is sized by its busiest tick, so the first panic asks for all it needs."""
    surge = _load(tick.policy, tick.fast, peak=True) if tick.fast else 0.0
    replicas = _replicas_for(surge, tick.policy.target_in_flight)
    return _Wanted(max(calm.replicas, replicas, tick.current), Reason.PANIC)


def _bound(tick: _Tick, wanted: _Wanted) -> _Wanted:
    """Step 4: the step bounded; on partial data nothing is given back; within the limits."""
    replicas, why = _bound_step(tick, wanted.replicas), wanted.why
    if replicas < tick.current and tick.partial:
        replicas, why = tick.current, Reason.PARTIAL_DATA
    return _Wanted(_clamp(tick.policy, replicas), _limit(tick.policy, replicas) or why)


def _bound_step(tick: _Tick, wanted: int) -> int:
    # Growth is measured from ready replicas: pods still starting have not shown that more of
    # them help, and measuring from the count asked for would compound tick after tick.
    policy, ready, current = tick.policy, tick.ready, tick.current
    ceiling = max(current, ready + 1, math.floor(max(ready, 1) * policy.max_upscale_factor))
    floor = min(current - 1, math.ceil(current * policy.max_downscale_factor))
    return min(max(wanted, floor), ceiling)


def _remember(
    tick: _Tick, remembered: tuple[Recommendation, ...], calm: int
) -> tuple[Recommendation, ...]:
    """Step 5's memory: the recommendations of the last policy.memory seconds and this tick's.

    What the stable window alone asks for is what is remembered. A burst's panic
    recommendation counts its backlog of queued requests, which drains as soon as the new
    replicas are up; remembering it would hold that overshoot for the whole downscale window.
    On partial data this tick's is no fewer than the current replicas.
    """
    policy, now = tick.policy, tick.now
    bounded = _clamp(policy, _bound_step(tick, calm))
    kept = bisect.bisect_right(remembered, now - policy.memory, key=attrgetter("time"))
    remembered = remembered[kept:]
    newest = Recommendation(
        now,
        max(bounded, tick.current) if tick.partial else bounded,
        _clamp(policy, floor_replicas(policy, tick.load, tick.stable.service_time, tick.startup)),
    )
    if remembered and remembered[-1].same_as(newest):
        # Windows are read back from now, so a run of one recommendation is in a window exactly
        # when its newest is: keeping only the newest changes no decision, and a steady API
        # remembers one recommendation instead of one per tick.
        remembered = remembered[:-1]
    return (*remembered, newest)


def _held_floor(tick: _Tick, recommendations: tuple[Recommendation, ...]) -> int:
    """Step 5: the highest queue floor of the downscale window (a zero window holds just this
    tick's)."""
    since = tick.now - tick.policy.downscale_stabilization
    held = [r.floor for r in recommendations if r.time > since]
    return max(held, default=recommendations[-1].floor)


def _stabilize(
    tick: _Tick, recommendations: tuple[Recommendation, ...], floor: int, *, startup: StartupWatch
) -> int:
    """Step 5: rise only to the lowest recommendation of the upscale window (like the HPA);
    fall only to the larger of the queue floor and the newest recommendation, or, after a
    drop, of the floor and what the drop leaves: the stable window's average trails a drop by
    up to a window, while the floor is what a return of the peak needs. While pods asked for
    are still starting, a scale-up waits for them: they have not shown what they carry yet."""
    policy, current, now = tick.policy, tick.current, tick.now
    newest = recommendations[-1].replicas
    since = now - policy.upscale_stabilization
    up = min([r.replicas for r in recommendations if r.time > since], default=newest)
    down = newest
    dropped_to = None if tick.partial else _after_drop(tick)
    if dropped_to is not None:
        down = min(newest, _clamp(policy, _bound_step(tick, dropped_to)))
    desired = _clamp(policy, min(max(current, up), max(floor, down)))
    if desired > current and startup.starting(now, policy.startup_delay):
        return current
    return desired


def _after_drop(tick: _Tick) -> int | None:
    """After a drop, what panicThreshold times the panic window's load needs at target; None
    without one.

    A drop mirrors a panic: the panic window's load below 1/panicThreshold of the stable
    window's. Noise around a steady load is not one, so it cannot shed a replica that the next
    tick would ask for again; and what is kept carries the load up to the level at which it
    would panic, so that no smaller history is ever given more replicas.
    """
    if tick.fast is None:
        return None
    surge = _load(tick.policy, tick.fast) * tick.policy.panic_threshold
    if surge >= tick.load:
        return None
    return _replicas_for(surge, tick.policy.target_in_flight)


def _relieve(tick: _Tick, desired: int) -> int:
    """Step 6: `desired`, raised where the ready replicas' queues call for more
    (queues.overload over the panic window)."""
    if tick.fast is None:
        return desired
    policy, ready, current = tick.policy, tick.ready, tick.current
    queues = overload(policy, tick.fast, ready, tick.startup, tick.stable.service_time)
    desired = max(desired, min(queues.keep, current))
    if queues.ask:
        desired = max(desired, _clamp(policy, _bound_step(tick, queues.ask)))
    if queues.ask > ready:
        # More are needed than are ready: the pods on their way are all wanted.
        desired = max(desired, current)
    return desired


def _hold(
    tick: _Tick, desired: int, recommendations: tuple[Recommendation, ...], *, watched: float
) -> int:
    """Step 7: `desired`, or what a state that has watched for only `watched` seconds (a new
    operator, a restarted one) does not give back, if more.

    Until a whole window has been watched the averages are too short to trust with giving
    anything back: all current replicas are kept. After that, until a whole downscale window
    has been watched, the recommendation memory still misses the peaks before the start, which
    the replicas found may have been asked for: one replica more than the stable window asks
    for is kept for them, besides the queue floor of the peaks seen (held by _stabilize).
    """
    policy = tick.policy
    current = min(tick.current, policy.max_replicas)
    if watched < policy.window:
        return max(desired, current)
    if watched < policy.downscale_stabilization:
        return max(desired, min(current, recommendations[-1].replicas + 1))
    return desired


def _reason(tick: _Tick, desired: int, wanted: _Wanted) -> Reason:
    current = tick.current
    if desired < min(wanted.replicas, current):
        return Reason.SCALE_DOWN
    if desired != wanted.replicas:
        return Reason.STABILIZING
    if wanted.why is not None:
        return wanted.why
    if desired == current:
        return Reason.STEADY
    return Reason.SCALE_UP if desired > current else Reason.SCALE_DOWN


def _message(tick: _Tick, desired: int, reason: Reason, floor: int, wanted: int) -> str:
    """One line a user can check by hand: the demand, the target and what followed."""
    policy, stable, fast = tick.policy, tick.stable, tick.fast
    panic_text = f", {fast.demand:.2f} over {policy.panic_window:g}s" if fast else ""
    floor_text = f"; queue floor {floor}" if desired == floor != wanted else ""
    return (
        f"demand {stable.demand:.2f} over {policy.window:g}s{panic_text}"
        f" at {policy.target_in_flight:g} per replica with {tick.ready} ready: {tick.current}"
        f" -> {desired} ({reason}){floor_text}"
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
