"""The spec's autoscaling block in SI units, each default with the evidence behind it.

The defaults were settled by the simulation in bench/autoscaling against the Kubernetes HPA,
Knative's KPA, Cortex and an oracle; docs/autoscaling.md holds the table and the reasoning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+")
_PART = re.compile(r"([0-9]+)(?:\.([0-9]+))?(ms|s|m|h)")
_NANOSECONDS_PER_UNIT = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


TARGET_UTILISATION = 0.7
"""Share of maxConcurrency a replica aims to have queued or in flight by default."""


def default_target_in_flight(max_concurrency: int) -> float:
    """targetInFlight when the spec leaves it out: 70 % of maxConcurrency.

    At maxConcurrency itself replicas run about 80 % busy, where random arrivals queue in
    swings that set off panics: in the simulation that rejected requests on the diurnal trace
    and cost 12-40 % more on ramp, diurnal and on/off traffic (docs/autoscaling.md).
    """
    return TARGET_UTILISATION * max_concurrency


class DurationError(ValueError):
    """A duration string the CRD's pattern should have refused; the user must fix it."""


class PolicyError(ValueError):
    """Autoscaling fields that contradict each other; no decision can be made from them."""


def parse_duration(text: str) -> float:
    """Seconds in a duration like "60s", "5m", "1h30m" or "1.5s" (the CRD's pattern).

    Read as the API server's rules read it (Go's time.ParseDuration): whole nanoseconds, a
    fraction's share of its unit computed in floating point and truncated. Summed as decimal
    fractions instead, 60.0000000001s would be longer than 60s here and no longer there, and a
    panicWindow the API server admitted would be refused here.
    """
    if not _DURATION.fullmatch(text):
        raise DurationError(
            f"{text!r} is not a duration: write numbers with units ms, s, m or h, like 1m30s"
        )
    nanoseconds = 0
    for whole, fraction, unit in _PART.findall(text):
        per_unit = _NANOSECONDS_PER_UNIT[unit]
        nanoseconds += int(whole) * per_unit
        if fraction:
            nanoseconds += int(int(fraction) * (per_unit / 10 ** len(fraction)))
    return nanoseconds / 1e9


@dataclass(frozen=True)
class AutoscalingPolicy:
    """How demand becomes replicas. Times are seconds; demand is queued + in-flight requests."""

    target_in_flight: float
    """Desired queued + in-flight requests per replica. No default here, because it depends on
    serving.maxConcurrency: see default_target_in_flight()."""
    min_replicas: int = 1
    """Floor. At least one: without an activator to buffer requests, zero replicas could never
    see the demand that should wake them."""
    max_replicas: int = 20
    """Ceiling: the bill a traffic storm may run up."""
    window: float = 60.0
    """Stable averaging window. Long enough that a second's noise does not move replicas; the
    panic window handles bursts. 30 s was a few percent cheaper on smooth synthetic traffic,
    too little to give up steadiness under real noise."""
    panic_window: float = 6.0
    """Fast window for bursts: six ticks at the operator's default 1 s (three at 2 s), so one
    stray sample cannot start a panic."""
    panic_threshold: float = 2.0
    """Panic when panic-window demand reaches this multiple of ready capacity, as in Knative;
    3x changed nothing measurable in the simulation."""
    upscale_stabilization: float = 0.0
    """How long a lower recommendation holds back a scale-up. Zero: every second of delay is
    paid in queueing, and start-up delay is already the slow part of a scale-up; 20 s let the
    ramp and diurnal traces overflow queues."""
    downscale_stabilization: float = 150.0
    """How long the queue floor of a recent peak holds back a scale-down. 150 s rides out lulls
    of two minutes (the on/off trace), which 120 s did not (it rejected 544 requests there);
    the HPA's 300 s cost 1.18x the oracle's replica-seconds on a tenfold step up and back down
    instead of 1.06x."""
    max_upscale_factor: float = 10.0
    """Largest growth in one step, relative to ready replicas so that pods still starting do
    not compound it. A 10x step in traffic is met in one start-up delay; 4 took two and
    rejected a third more requests."""
    max_downscale_factor: float = 0.5
    """Smallest fraction of current replicas kept in one step; at a tick every second or two
    the stabilization window, not this, sets the pace down."""
    offered_headroom: float = 1.0
    """How far demand may exceed the offered load before the offered load is what counts
    (decide._load). 1: size replicas by the offered load whenever the proxies report it;
    1.3 halved p99 queueing on the smooth traces but cost 1.3-1.6x the oracle after a spike,
    on on/off traffic and on the replay. Not a spec field."""
    max_concurrency: int = 4
    """serving.maxConcurrency: requests a replica serves at once (the CRD's default here)."""
    max_queue_length: int = 100
    """serving.maxQueueLength: requests a replica queues beyond those (the CRD's default)."""
    queue_allowance: float = 0.5
    """Share of each replica's queue the scale-down floor counts on to absorb a recent peak's
    return while new pods start (ferry.autoscaling.queues); the rest is headroom for the
    randomness one pod's queue sees. 0.5 kept 12 replicas through the on/off trace's lulls and
    rejected nothing; counting the whole queue kept 11 and rejected 644 requests there (0.7:
    215); 0.3 cost 1.15x the oracle there instead of 1.14x, no queue at all 1.21x. Not a spec
    field."""
    startup_delay: float = 30.0
    """Seconds a new pod is assumed to take to be ready until the autoscaler has measured one
    of its own scale-ups (ferry.autoscaling.startup). 30 s is the simulation's start-up;
    assuming 60 s cost 1.19x the oracle instead of 1.14x on the on/off trace, where no
    scale-up is ever measured. Not a spec field."""
    tolerance: float = 0.05
    """Relative change in demand below which replicas are left alone, so that noise around the
    target does not churn pods (Cortex's value; not varied in the simulation)."""

    def __post_init__(self) -> None:
        problems = [
            message
            for broken, message in (
                (self.target_in_flight <= 0, "targetInFlight must be above zero"),
                (self.min_replicas < 1, "minReplicas must be at least 1"),
                (self.max_replicas < self.min_replicas, "maxReplicas cannot be below minReplicas"),
                (self.window <= 0, "window must be longer than zero"),
                (self.panic_window <= 0, "panicWindow must be longer than zero"),
                (self.panic_window > self.window, "panicWindow cannot be longer than window"),
                (self.panic_threshold < 1, "panicThreshold must be at least 1"),
                (self.upscale_stabilization < 0, "upscaleStabilization cannot be negative"),
                (self.downscale_stabilization < 0, "downscaleStabilization cannot be negative"),
                (self.max_upscale_factor < 1, "maxUpscaleFactor must be at least 1"),
                (
                    not 0 < self.max_downscale_factor <= 1,
                    "maxDownscaleFactor must be above 0 and at most 1",
                ),
                (not 0 <= self.tolerance < 1, "tolerance must be at least 0 and below 1"),
                (self.offered_headroom < 1, "offeredHeadroom must be at least 1"),
                (self.max_concurrency < 1, "maxConcurrency must be at least 1"),
                (self.max_queue_length < 0, "maxQueueLength cannot be negative"),
                (
                    not 0 <= self.queue_allowance <= 1,
                    "queueAllowance must be at least 0 and at most 1",
                ),
                (self.startup_delay <= 0, "startupDelay must be longer than zero"),
            )
            if broken
        ]
        if problems:
            raise PolicyError("; ".join(problems))

    @property
    def memory(self) -> float:
        """How far back decisions look: recommendations older are dropped. Demand samples are
        only ever averaged over `window` (the panic window is no longer), so no more of them
        are kept."""
        return max(self.window, self.upscale_stabilization, self.downscale_stabilization)
