"""Recent demand: time-stamped samples of queued + in-flight requests and their window averages.

A sample may also carry the offered load: requests received per second x mean service time, the
requests in flight there would be if no request had to queue (Little's law). Demand counts a
backlog of queued requests, which drains once enough replicas are up; offered load does not, so
it says how many replicas the traffic needs even while replicas are saturated.

A sample says how many pods answered and how many were asked. A pod that did not answer is not
zero demand: its share is unknown, so the sample's demand is only a lower bound. Lower bounds
are safe for scaling up and unsafe for scaling down; the averages carry that flag to decide().
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def offered_load(received: float, served: float, in_flight: float, demand: float) -> float:
    """One pod's offered load from its proxy's averages over the same time: requests received
    and served per second, requests in flight and queued + in flight.

    The mean service time is in-flight / served (Little's law on the slots), so the offered
    load is received x in-flight / served. A pod that finished nothing in the time has shown
    no service time; its demand stands in, as it would without the signal.
    """
    if served <= 0:
        return demand
    return received * in_flight / served


@dataclass(frozen=True, slots=True)
class Sample:
    """Demand at one instant, summed over the ready pods that answered."""

    time: float
    """Seconds on a monotonic clock, the same one the caller passes to decide() as `now`."""
    demand: float
    """Queued + in-flight requests summed over the pods that answered (best averaged by each
    pod over the time since the previous sample, so a sample is not a snapshot of noise)."""
    answered: int
    expected: int
    """Ready pods asked; a sample with answered < expected is partial."""
    offered: float | None = None
    """Offered load summed over the pods that answered; None when one of them did not report it
    (a proxy older than the signal), and decide() then goes by demand alone."""

    def __post_init__(self) -> None:
        if (
            self.demand < 0
            or not 0 <= self.answered <= self.expected
            or (self.offered is not None and self.offered < 0)
        ):
            raise ValueError(f"impossible sample: {self}")

    @classmethod
    def from_pods(
        cls,
        time: float,
        demands: Iterable[float | None],
        offered: Iterable[float | None] | None = None,
    ) -> Sample:
        """A sample from each ready pod's demand, None for a pod that did not answer, and
        optionally each pod's offered load in the same order (None: not reported)."""
        answers = list(demands)
        loads = list(offered) if offered is not None else [None] * len(answers)
        if len(loads) != len(answers):
            raise ValueError("one offered load per pod, in the order of the demands")
        heard = [(d, o) for d, o in zip(answers, loads, strict=True) if d is not None]
        reported = [o for _, o in heard if o is not None]
        return cls(
            time=time,
            demand=sum(d for d, _ in heard),
            answered=len(heard),
            expected=len(answers),
            offered=sum(reported) if heard and len(reported) == len(heard) else None,
        )

    @property
    def partial(self) -> bool:
        return self.answered < self.expected

    @property
    def informative(self) -> bool:
        """False when no pod answered: nothing is known, not even a lower bound worth using."""
        return self.answered > 0


@dataclass(frozen=True)
class WindowAverage:
    demand: float
    """Mean demand of the informative samples in the window."""
    samples: int
    partial: bool
    """Some pod did not answer in the window, so `demand` may be an underestimate."""
    offered: float | None = None
    """Mean offered load of the same samples; None unless every one of them carried it."""
    offered_peak: float | None = None
    """The highest offered load of those samples (None as for `offered`)."""


@dataclass(frozen=True)
class DemandHistory:
    """Samples no older than `horizon` seconds before the newest; immutable, so a tick either
    records its sample or leaves the history as it was."""

    horizon: float
    samples: tuple[Sample, ...] = ()

    def record(self, sample: Sample) -> DemandHistory:
        if self.samples and sample.time < self.samples[-1].time:
            raise ValueError(
                f"sample at {sample.time} is older than the newest at {self.samples[-1].time}"
            )
        oldest = sample.time - self.horizon
        kept = tuple(s for s in self.samples if s.time >= oldest)
        return DemandHistory(self.horizon, (*kept, sample))

    def average(self, now: float, window: float) -> WindowAverage | None:
        """Mean demand over samples in (now - window, now]; None when none of them says anything.

        Samples are averaged with equal weight, which is right for samples taken at a steady
        tick; a missed tick leaves a gap rather than stretching its neighbours.
        """
        inside = [s for s in self.samples if now - window < s.time <= now]
        informative = [s for s in inside if s.informative]
        if not informative:
            return None
        offered = [s.offered for s in informative if s.offered is not None]
        complete = len(offered) == len(informative)
        return WindowAverage(
            demand=sum(s.demand for s in informative) / len(informative),
            samples=len(informative),
            partial=any(s.partial for s in inside),
            offered=sum(offered) / len(offered) if complete else None,
            offered_peak=max(offered) if complete else None,
        )
