"""Recent demand: time-stamped samples of queued + in-flight requests and their window averages.

A sample may also carry the offered load: requests received per second x mean service time, the
requests in flight there would be if no request had to queue (Little's law). Demand counts a
backlog of queued requests, which drains once enough replicas are up; offered load does not, so
it says how many replicas the traffic needs even while replicas are saturated. A sample may also
carry the requests in service (queued ones excluded) and served per second: demand less the
first is the backlog queued, and the first over the second the mean service time (Little's law),
which is what the queues' arithmetic (ferry.autoscaling.queues) needs.

A sample says how many pods answered and how many were asked. A pod that did not answer is not
zero demand: its share is unknown, so the sample's demand is only a lower bound. Lower bounds
are safe for scaling up and unsafe for scaling down; the averages carry that flag to decide().
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter

_TIME = attrgetter("time")
"""Samples are in time order: windows and the horizon are found by bisection on this."""


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
    in_flight: float | None = None
    """Requests in service (queued ones excluded) summed over the pods that answered; None
    unless every one of them reported it."""
    served: float | None = None
    """Requests per second that finished their service, summed as `in_flight`."""

    def __post_init__(self) -> None:
        if (
            self.demand < 0
            or not 0 <= self.answered <= self.expected
            or any(
                figure is not None and figure < 0
                for figure in (self.offered, self.in_flight, self.served)
            )
        ):
            raise ValueError(f"impossible sample: {self}")

    @classmethod
    def from_pods(
        cls,
        time: float,
        demands: Iterable[float | None],
        offered: Iterable[float | None] | None = None,
        *,
        in_flight: Iterable[float | None] | None = None,
        served: Iterable[float | None] | None = None,
    ) -> Sample:
        """A sample from each ready pod's demand, None for a pod that did not answer, and
        optionally each pod's offered load, requests in service and requests served per second,
        in the same order (None: not reported)."""
        answers = list(demands)
        heard = {index: demand for index, demand in enumerate(answers) if demand is not None}

        def total(figures: Iterable[float | None] | None, name: str) -> float | None:
            values = list(figures) if figures is not None else [None] * len(answers)
            if len(values) != len(answers):
                raise ValueError(f"one {name} per pod, in the order of the demands")
            reported = [value for i, value in enumerate(values) if i in heard and value is not None]
            return sum(reported) if heard and len(reported) == len(heard) else None

        return cls(
            time=time,
            demand=sum(heard.values()),
            answered=len(heard),
            expected=len(answers),
            offered=total(offered, "offered load"),
            in_flight=total(in_flight, "in-flight count"),
            served=total(served, "served rate"),
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
    in_flight: float | None = None
    """Mean requests in service of the same samples (None as for `offered`); demand less this
    is the backlog queued."""
    service_time: float | None = None
    """Mean seconds of service per request by Little's law, in flight / served over those
    samples; None unless every one reported both, or when nothing was served."""


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
        oldest = bisect.bisect_left(self.samples, sample.time - self.horizon, key=_TIME)
        return DemandHistory(self.horizon, (*self.samples[oldest:], sample))

    def average(self, now: float, window: float) -> WindowAverage | None:
        """Mean demand over samples in (now - window, now]; None when none of them says anything.

        Samples are averaged with equal weight, which is right for samples taken at a steady
        tick; a missed tick leaves a gap rather than stretching its neighbours.
        """
        samples = self.samples
        # One pass, from the window's first sample (they are in time order), in the order the
        # sums have always been taken: every tick of every API averages two windows.
        first = bisect.bisect_right(samples, now - window, key=_TIME)
        count = offered_count = in_flight_count = served_count = 0
        demand = offered = in_flight = served = 0.0
        peak = -math.inf
        partial = False
        for sample in samples[first:]:
            if sample.time > now:
                break
            if sample.answered < sample.expected:
                partial = True
            if not sample.answered:
                continue
            count += 1
            demand += sample.demand
            if sample.offered is not None:
                offered_count += 1
                offered += sample.offered
                if sample.offered > peak:  # noqa: PLR1730 - max() is a call per sample
                    peak = sample.offered
            if sample.in_flight is not None:
                in_flight_count += 1
                in_flight += sample.in_flight
            if sample.served is not None:
                served_count += 1
                served += sample.served
        if not count:
            return None
        complete = offered_count == count
        timed = in_flight_count == served_count == count and served > 0
        return WindowAverage(
            demand=demand / count,
            samples=count,
            partial=partial,
            offered=offered / count if complete else None,
            offered_peak=peak if complete else None,
            in_flight=in_flight / count if in_flight_count == count else None,
            service_time=in_flight / served if timed else None,
        )
