"""Recent demand: time-stamped samples of queued + in-flight requests and their window averages.

A sample says how many pods answered and how many were asked. A pod that did not answer is not
zero demand: its share is unknown, so the sample's demand is only a lower bound. Lower bounds
are safe for scaling up and unsafe for scaling down; the averages carry that flag to decide().
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


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

    def __post_init__(self) -> None:
        if self.demand < 0 or not 0 <= self.answered <= self.expected:
            raise ValueError(f"impossible sample: {self}")

    @classmethod
    def from_pods(cls, time: float, demands: Iterable[float | None]) -> Sample:
        """A sample from each ready pod's demand, None for a pod that did not answer."""
        answers = list(demands)
        heard = [demand for demand in answers if demand is not None]
        return cls(time=time, demand=sum(heard), answered=len(heard), expected=len(answers))

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
        return WindowAverage(
            demand=sum(s.demand for s in informative) / len(informative),
            samples=len(informative),
            partial=any(s.partial for s in inside),
        )
