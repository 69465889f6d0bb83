"""The decision: desired replicas from recent demand, with the reason a user can read.

Pure and deterministic: the same history, policy, replica counts, time and state give the same
decision. The state the next tick needs (panic mode, recent recommendations, the start-up delay
learned) comes back inside the decision instead of living in a global.

One tick, in order:
1. Average demand over the stable and the panic window; without data, keep replicas.
2. Panic when panic-window load reaches panicThreshold x ready capacity; leave panic a whole
   stable window after the last tick over it, or as soon as the ready replicas would carry
   panicThreshold x the panic-window load (the mirror: the surge is over). While panicking,
   follow the panic window and never scale down.
3. Otherwise recommend ceil(stable load / target), unless that is within tolerance of now.
4. Bound the step: up to maxUpscaleFactor x ready replicas, down to maxDownscaleFactor x
   current replicas; a step of one is always allowed.
5. Stabilize: scale up no further than the lowest recommendation of the upscale window; scale
   down no further than the queue floor of the highest load of the downscale window
   (ferry.autoscaling.queues), nor below the stable recommendation unless the load has dropped
   (panic-window load below 1/panicThreshold of the stable window's, the mirror of a panic).
   Only stable-window recommendations are remembered (panic ones carry a backlog that drains).
   While pods asked for are still starting, a stable-window scale-up waits for them.
6. Overload (ferry.autoscaling.queues): when the ready replicas' queues would fill before a new
   pod is ready, ask at once for what carries the load; give back nothing they need.
7. Nothing is given back before a whole window has been watched (a restarted operator sheds
   nothing), and until a whole downscale window has been watched one replica more than the
   stable window asks for is kept, for the peaks before the start that the replicas found may
   have been asked for; nothing is given back on partial data; clamp to [minReplicas,
   maxReplicas].
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from operator import attrgetter

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
    startup = state.startup.watch(ready=ready_replicas, current=current_replicas, now=now)
    delay = startup.delay(policy.startup_delay)
    stable_load = _load(policy, stable)
    since = now if state.since is None else state.since
    partial = stable.partial or (fast is not None and fast.partial)
    dropped_to = None if partial else _after_drop(policy, fast, stable_load)
    if dropped_to is not None:
        dropped_to = _clamp(
            policy, _bound_step(policy, dropped_to, ready_replicas, current_replicas)
        )

    wanted, held = _recommend(policy, stable_load, current_replicas)
    # What the stable window alone asks for is what stabilization remembers. A burst's panic
    # recommendation counts its backlog of queued requests, which drains as soon as the new
    # replicas are up; remembering it would hold that overshoot for the whole downscale window.
    calm = _clamp(policy, _bound_step(policy, wanted, ready_replicas, current_replicas))
    remembered = state.recommendations
    kept = bisect.bisect_right(remembered, now - policy.memory, key=attrgetter("time"))
    remembered = remembered[kept:]
    newest = Recommendation(
        now,
        max(calm, current_replicas) if partial else calm,
        _clamp(policy, floor_replicas(policy, stable_load, stable.service_time, delay)),
    )
    if remembered and remembered[-1].same_as(newest):
        # Windows are read back from now, so a run of one recommendation is in a window exactly
        # when its newest is: keeping only the newest changes no decision, and a steady API
        # remembers one recommendation instead of one per tick.
        remembered = remembered[:-1]
    recommendations = (*remembered, newest)
    floor = _held_floor(policy, recommendations, now)

    panic = _panic(policy, state.panic, _load(policy, fast) if fast else None, ready_replicas, now)
    if (
        panic is not None
        and panic.last_over < now
        and fast is not None
        and not partial
        and _load(policy, fast) * policy.panic_threshold <= ready_replicas * target
    ):
        # The surge is over: the ready replicas would carry panicThreshold times the panic
        # window's load at target, the mirror of what started the panic.
        panic = None
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

    # A burst does not wait for stabilization: that is what panic mode is for.
    desired = wanted
    if panic is None:
        desired = _clamp(
            policy,
            _stabilize(
                policy,
                recommendations,
                current_replicas=current_replicas,
                now=now,
                floor=floor,
                dropped_to=dropped_to,
            ),
        )
        if desired > current_replicas and startup.starting(now, policy.startup_delay):
            # The pods asked for have not shown what they carry yet; a burst still panics.
            desired = current_replicas
    relieved = _relieve(
        policy,
        desired,
        fast=fast,
        stable=stable,
        ready_replicas=ready_replicas,
        current_replicas=current_replicas,
        startup=delay,
    )
    overloaded, desired = relieved > desired, relieved
    desired = max(desired, _young_hold(policy, recommendations, current_replicas, now - since))
    reason = (
        Reason.OVERLOAD if overloaded else _reason(desired, wanted, current_replicas, limit or held)
    )
    panic_text = f", {fast.demand:.2f} over {policy.panic_window:g}s" if fast else ""
    floor_text = f"; queue floor {floor}" if desired == floor != wanted else ""
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
        message=(
            f"demand {stable.demand:.2f} over {policy.window:g}s{panic_text}"
            f" at {target:g} per replica with {ready_replicas} ready: {current_replicas}"
            f" -> {desired} ({reason}){floor_text}"
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


def _recommend(
    policy: AutoscalingPolicy, load: float, current_replicas: int
) -> tuple[int, Reason | None]:
    """ceil(load / target), or the current replicas when the load is within tolerance of what
    they are meant to carry."""
    target = policy.target_in_flight
    if current_replicas > 0 and abs(load / target / current_replicas - 1) <= policy.tolerance:
        return current_replicas, Reason.WITHIN_TOLERANCE
    return _replicas_for(load, target), None


def _after_drop(
    policy: AutoscalingPolicy, fast: WindowAverage | None, stable_load: float
) -> int | None:
    """After a drop, what panicThreshold times the panic window's load needs at target; None
    without one.

    A drop mirrors a panic: the panic window's load below 1/panicThreshold of the stable
    window's. Noise around a steady load is not one, so it cannot shed a replica that the next
    tick would ask for again; and what is kept carries the load up to the level at which it
    would panic, so that no smaller history is ever given more replicas.
    """
    if fast is None:
        return None
    surge = _load(policy, fast) * policy.panic_threshold
    if surge >= stable_load:
        return None
    return _replicas_for(surge, policy.target_in_flight)


def _reason(desired: int, wanted: int, current_replicas: int, held: Reason | None) -> Reason:
    if desired < min(wanted, current_replicas):
        return Reason.SCALE_DOWN
    if desired != wanted:
        return Reason.STABILIZING
    if held is not None:
        return held
    if desired == current_replicas:
        return Reason.STEADY
    return Reason.SCALE_UP if desired > current_replicas else Reason.SCALE_DOWN


def _young_hold(
    policy: AutoscalingPolicy,
    recommendations: tuple[Recommendation, ...],
    current_replicas: int,
    watched: float,
) -> int:
    """What a state that has watched for only `watched` seconds (a new operator, a restarted
    one) does not give back.

    Until a whole window has been watched the averages are too short to trust with giving
    anything back: all current replicas are kept. After that, until a whole downscale window
    has been watched, the recommendation memory still misses the peaks before the start, which
    the replicas found may have been asked for: one replica more than the stable window asks
    for is kept for them, besides the queue floor of the peaks seen (held by _stabilize).
    """
    current = min(current_replicas, policy.max_replicas)
    if watched < policy.window:
        return current
    if watched < policy.downscale_stabilization:
        return min(current, recommendations[-1].replicas + 1)
    return 0


def _held_floor(
    policy: AutoscalingPolicy, recommendations: tuple[Recommendation, ...], now: float
) -> int:
    """The highest queue floor of the downscale window (a zero window holds just this tick's)."""
    since = now - policy.downscale_stabilization
    held = [r.floor for r in recommendations if r.time > since]
    return max(held, default=recommendations[-1].floor)


def _relieve(
    policy: AutoscalingPolicy,
    desired: int,
    *,
    fast: WindowAverage | None,
    stable: WindowAverage,
    ready_replicas: int,
    current_replicas: int,
    startup: float,
) -> int:
    """`desired`, raised where the ready replicas' queues call for more (queues.overload)."""
    if fast is None:
        return desired
    queues = overload(policy, fast, ready_replicas, startup, stable.service_time)
    desired = max(desired, min(queues.keep, current_replicas))
    if queues.ask:
        ask = _bound_step(policy, queues.ask, ready_replicas, current_replicas)
        desired = max(desired, _clamp(policy, ask))
    if queues.ask > ready_replicas:
        # More are needed than are ready: the pods on their way are all wanted.
        desired = max(desired, current_replicas)
    return desired


def _stabilize(
    policy: AutoscalingPolicy,
    recommendations: tuple[Recommendation, ...],
    *,
    current_replicas: int,
    now: float,
    floor: int,
    dropped_to: int | None,
) -> int:
    """Rise only to the lowest recommendation of the upscale window (like the HPA); fall only
    to the larger of the queue floor and the newest recommendation, or, after a drop, of the
    floor and `dropped_to`: the stable window's average trails a drop by up to a window, while
    the floor is what a return of the peak needs."""
    newest = recommendations[-1].replicas
    since = now - policy.upscale_stabilization
    up = [r.replicas for r in recommendations if r.time > since]
    down = newest if dropped_to is None else min(newest, dropped_to)
    return min(max(current_replicas, min(up, default=newest)), max(floor, down))
