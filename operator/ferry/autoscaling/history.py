"""Recent demand: time-stamped samples of queued + in-flight requests and their window averages.

A sample sums the figures of the ready pods that answered, one PodFigures each: the record the
scraper makes of a pod's /stats (ferry.adapters.stats). It may also carry the offered load:
requests received per second x mean service time, the requests in flight there would be if no
request had to queue (Little's law). Demand counts a backlog of queued requests, which drains
once enough replicas are up; offered load does not, so it says how many replicas the traffic
needs even while replicas are saturated. A sample may also carry the requests in service
(queued ones excluded) and served per second: demand less the first is the backlog queued, and
the first over the second the mean service time (Little's law), which is what the queues'
arithmetic (ferry.autoscaling.queues) needs.

A sample says how many pods answered and how many were asked. A pod that did not answer is not
zero demand: its share is unknown, so the sample's demand is only a lower bound. Lower bounds
are safe for scaling up and unsafe for scaling down; the averages carry that flag to decide().
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Sequence
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
class PodFigures:
    """One ready pod's figures at one tick, from its proxy's averages over about the time since
    the previous tick (ferry.adapters.stats.pod_figures)."""

    demand: float
    """Queued + in-flight requests."""
    offered: float | None = None
    """The offered load (offered_load()); None from a proxy that does not count requests
    served."""
    in_flight: float | None = None
    """Requests in service (queued ones excluded); None before the proxy's first sample, and
    as for `offered`."""
    served: float | None = None
    """Requests per second that finished their service; None as for `in_flight`."""


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
    def from_pods(cls, time: float, pods: Sequence[PodFigures | None]) -> Sample:
        """A sample from each ready pod's figures, None for a pod that did not answer."""
        heard = [pod for pod in pods if pod is not None]
        return cls(
            time=time,
            demand=sum(pod.demand for pod in heard),
            answered=len(heard),
            expected=len(pods),
            offered=_total([pod.offered for pod in heard]),
            in_flight=_total([pod.in_flight for pod in heard]),
            served=_total([pod.served for pod in heard]),
        )

    @property
    def partial(self) -> bool:
        return self.answered < self.expected

    @property
    def informative(self) -> bool:
        """False when no pod answered: nothing is known, not even a lower bound worth using."""
        return self.answered > 0


def _total(figures: list[float | None]) -> float | None:
    """The sum of a figure over the pods that answered; None unless every one reported it."""
    reported = [figure for figure in figures if figure is not None]
    return sum(reported) if figures and len(reported) == len(figures) else None


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


_NOT_REPORTED = -1.0
"""A figure a sample does not carry (None); no figure is negative (Sample refuses them)."""
_PARTIAL, _SILENT, _INCOMPLETE = (1, 2, 4)
"""Bits of a sample's flags, what sets it apart from a whole answer: a pod did not answer, no
pod did, a figure is not reported."""


def _reported(figure: float) -> float | None:
    return None if figure == _NOT_REPORTED else figure


def _flags(sample: Sample) -> int:
    return (
        (sample.partial and _PARTIAL)
        | (not sample.answered and _SILENT)
        | (None in (sample.offered, sample.in_flight, sample.served) and _INCOMPLETE)
    )


class DemandHistory:
    """Samples no older than `horizon` seconds before the newest; immutable, so a tick either
    records its sample or leaves the history as it was.

    The samples are kept in columns of machine numbers, not as Sample objects: an operator
    keeps a stable window of samples for each of a thousand APIs, 60,000 of them at a 1 s tick,
    and a Sample with its floats is about 200 bytes and one more object for the cyclic
    collector to walk; in columns a sample is 57 bytes and no object. A window of whole answers
    (the usual one) is then summed by the builtins.
    """

    __slots__ = ("_answered", "_figures", "_flags", "_times", "horizon")

    def __init__(self, horizon: float, samples: Iterable[Sample] = ()) -> None:
        self.horizon = horizon
        self._times = array("d")
        self._figures = (array("d"), array("d"), array("d"), array("d"))
        """demand, offered, in flight and served; _NOT_REPORTED for None."""
        self._answered = array("l")
        """Pods asked, then pods that answered, two per sample."""
        self._flags = bytearray()
        for sample in samples:
            self._append(sample)

    def _append(self, sample: Sample) -> None:
        demand, offered, in_flight, served = self._figures
        self._times.append(sample.time)
        demand.append(sample.demand)
        offered.append(_NOT_REPORTED if sample.offered is None else sample.offered)
        in_flight.append(_NOT_REPORTED if sample.in_flight is None else sample.in_flight)
        served.append(_NOT_REPORTED if sample.served is None else sample.served)
        self._answered.extend((sample.expected, sample.answered))
        self._flags.append(_flags(sample))

    @property
    def samples(self) -> tuple[Sample, ...]:
        counts = iter(self._answered)
        return tuple(
            Sample(
                time,
                demand,
                answered,
                expected,
                _reported(offered),
                _reported(in_flight),
                _reported(served),
            )
            for time, demand, offered, in_flight, served, (expected, answered) in zip(
                self._times, *self._figures, zip(counts, counts, strict=True), strict=True
            )
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DemandHistory):
            return NotImplemented
        return (self.horizon, self._times, self._figures, self._answered) == (
            other.horizon,
            other._times,
            other._figures,
            other._answered,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DemandHistory(horizon={self.horizon!r}, samples={self.samples!r})"

    def record(self, sample: Sample) -> DemandHistory:
        times = self._times
        if times and sample.time < times[-1]:
            raise ValueError(f"sample at {sample.time} is older than the newest at {times[-1]}")
        oldest = bisect.bisect_left(times, sample.time - self.horizon)
        recorded = DemandHistory.__new__(DemandHistory)
        recorded.horizon = self.horizon
        recorded._times = times[oldest:]
        demand, offered, in_flight, served = self._figures
        recorded._figures = (demand[oldest:], offered[oldest:], in_flight[oldest:], served[oldest:])
        recorded._answered = self._answered[2 * oldest :]
        recorded._flags = self._flags[oldest:]
        recorded._append(sample)
        return recorded

    def average(self, now: float, window: float) -> WindowAverage | None:
        """Mean demand over samples in (now - window, now]; None when none of them says anything.

        Samples are averaged with equal weight, which is right for samples taken at a steady
        tick; a missed tick leaves a gap rather than stretching its neighbours.
        """
        times = self._times
        inside = slice(bisect.bisect_right(times, now - window), bisect.bisect_right(times, now))
        flags = self._flags[inside]
        # Usually every pod answered every sample with every figure; the builtins then sum the
        # columns without a step of Python per sample, and no figure needs checking.
        whole = flags.count(0) == len(flags)
        columns: list[Sequence[float]] = [figures[inside] for figures in self._figures]
        if not whole and any(flag & _SILENT for flag in flags):
            # A sample no pod answered says nothing about any figure: the others are averaged.
            columns = [
                [figure for figure, flag in zip(column, flags, strict=True) if not flag & _SILENT]
                for column in columns
            ]
        demand, offered, in_flight, served = columns
        count = len(demand)
        if not count:
            return None
        complete = whole or _NOT_REPORTED not in offered
        counted = whole or _NOT_REPORTED not in in_flight
        timed = counted and (whole or _NOT_REPORTED not in served)
        served_total = sum(served) if timed else 0.0
        return WindowAverage(
            demand=sum(demand) / count,
            samples=count,
            partial=not whole and any(flag & _PARTIAL for flag in flags),
            offered=sum(offered) / count if complete else None,
            offered_peak=max(offered) if complete else None,
            in_flight=sum(in_flight) / count if counted else None,
            service_time=sum(in_flight) / served_total if served_total > 0 else None,
        )
