"""The gate in front of the predictor: a fixed number of slots and a bounded FIFO queue.

It also integrates its own occupancy over time, so a once-a-second sample is the average of
everything that happened in that second rather than whatever was true at the instant of sampling:
requests shorter than the sampling interval still count.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class Waiter(Protocol):
    def admitted(self) -> None:
        """Called when a queued request gets its slot."""


class Admission(enum.Enum):
    ADMITTED = "admitted"
    QUEUED = "queued"
    REJECTED = "rejected"


class Gate:
    __slots__ = (
        "_clock",
        "_in_flight_area",
        "_last",
        "_queue",
        "_queued_area",
        "_sampled_at",
        "capacity",
        "in_flight",
        "queue_limit",
    )

    def __init__(
        self, capacity: int, queue_limit: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity < 1 or queue_limit < 0:
            raise ValueError("capacity must be at least 1 and the queue limit at least 0")
        self.capacity = capacity
        self.queue_limit = queue_limit
        self.in_flight = 0
        self._queue: deque[Waiter] = deque()
        self._clock = clock
        self._last = self._sampled_at = clock()
        self._in_flight_area = 0.0
        self._queued_area = 0.0

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and not self._queue

    def enter(self, waiter: Waiter) -> Admission:
        """Take a slot, or a place in the queue; `waiter.admitted()` is called when one frees."""
        if self.in_flight < self.capacity:
            self._account()
            self.in_flight += 1
            return Admission.ADMITTED
        if len(self._queue) < self.queue_limit:
            self._account()
            self._queue.append(waiter)
            return Admission.QUEUED
        return Admission.REJECTED

    def leave(self) -> None:
        """Give back a slot taken by `enter` (directly or through the queue)."""
        self._account()
        if self._queue:
            # The slot passes straight to the next in line, so in_flight does not change.
            self._queue.popleft().admitted()
        else:
            self.in_flight -= 1

    def withdraw(self, waiter: Waiter) -> None:
        """Take a waiter out of the queue before it was admitted."""
        self._account()
        self._queue.remove(waiter)

    def sample(self) -> tuple[float, float]:
        """Average in-flight and queued counts since the previous sample."""
        self._account()
        elapsed = self._last - self._sampled_at
        if elapsed > 0:
            result = (self._in_flight_area / elapsed, self._queued_area / elapsed)
        else:
            result = (float(self.in_flight), float(len(self._queue)))
        self._sampled_at = self._last
        self._in_flight_area = self._queued_area = 0.0
        return result

    def _account(self) -> None:
        now = self._clock()
        elapsed = now - self._last
        self._in_flight_area += self.in_flight * elapsed
        self._queued_area += len(self._queue) * elapsed
        self._last = now
