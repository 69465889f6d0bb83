"""How long a new pod takes to be ready, learned from the scale-ups the autoscaler asks for.

The start-up delay (scheduling, image pull, model download and load, readiness probe) is how
long queues must absorb a surge before added pods help; it differs by model and cluster, so it
is measured rather than configured: from the tick that asked for more replicas to the first
tick that sees that many ready. Until one has been measured, the policy's startup_delay stands.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Asked:
    time: float
    replicas: int


@dataclass(frozen=True)
class StartupWatch:
    """The scale-up being waited for and the last start-up delay measured; start empty."""

    asked: Asked | None = None
    """The oldest scale-up whose replicas are not all ready yet."""
    measured: float | None = None
    """Seconds the last measured scale-up took to be ready."""

    def delay(self, assumed: float) -> float:
        return assumed if self.measured is None else self.measured

    def watch(self, *, ready: int, current: int, now: float) -> StartupWatch:
        """This tick's view: a scale-up whose replicas are all ready is measured; one undone by
        a later scale-down (fewer replicas asked for now than it wanted) is dropped."""
        if self.asked is None:
            return self
        if ready >= self.asked.replicas:
            return StartupWatch(None, now - self.asked.time)
        if current < self.asked.replicas:
            return StartupWatch(None, self.measured)
        return self

    def starting(self, now: float, assumed: float) -> bool:
        """Pods asked for are still starting, and not yet for longer than a start-up delay (a
        pod that never gets ready must not hold anything back for ever)."""
        return self.asked is not None and now - self.asked.time < self.delay(assumed)

    def asking(self, *, desired: int, ready: int, current: int, now: float) -> StartupWatch:
        """After the decision: a scale-up beyond the replicas ready is watched, unless an
        earlier one still is (it is met first)."""
        if self.asked is not None or desired <= max(ready, current):
            return self
        return StartupWatch(Asked(now, desired), self.measured)
