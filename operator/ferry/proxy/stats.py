"""What the proxy counts, and the windowed averages the autoscaler scrapes.

Per request the proxy only bumps plain integers here; everything else (averages, the /stats
document of ferry.wire.stats, Prometheus families) is computed when someone asks, which is once
a second at most.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Sequence

from ferry.proxy.admission import Gate
from ferry.wire.stats import VERSION, StatsDocument, WindowDocument

# Seconds; from a fast in-memory predictor up to the slow end of model inference.
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Window:
    """The last `seconds` one-second samples: in-flight and queued counts, requests received
    and served."""

    def __init__(self, seconds: int) -> None:
        if seconds < 1:
            raise ValueError("a window is at least one second")
        self.seconds = seconds
        self._samples: deque[tuple[float, float, int, int]] = deque(maxlen=seconds)

    def add(self, in_flight: float, queued: float, received: int, served: int) -> None:
        self._samples.append((in_flight, queued, received, served))

    def snapshot(self) -> WindowDocument:
        count = len(self._samples)
        means = [round(sum(field) / count, 4) for field in zip(*self._samples, strict=True)]
        in_flight, queued, received, served = means or [0.0] * 4
        return {
            "seconds": self.seconds,
            "samples": count,
            "inFlight": in_flight,
            "queued": queued,
            "received": received,
            "served": served,
        }


class Latency:
    """A cumulative histogram of request latencies, bucketed as Prometheus expects."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BOUNDS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.total += seconds


class Stats:
    __slots__ = (
        "_ticked",
        "buffered",
        "by_status",
        "gate",
        "latency",
        "rejected",
        "requests",
        "served",
        "started",
        "windows",
    )

    def __init__(self, gate: Gate, windows: Sequence[int], started: float | None = None) -> None:
        self.gate = gate
        self.windows = [Window(seconds) for seconds in windows]
        self.started = time.time() if started is None else started
        self.requests = 0
        self.rejected = 0
        # Requests that held a slot and ended, whatever their status: with `requests` (received,
        # rejected included), what the autoscaler turns into the offered load.
        self.served = 0
        # Request bytes the connections hold now, against --max-buffered-bytes.
        self.buffered = 0
        self._ticked = (0, 0)  # requests and served at the previous tick
        self.by_status: dict[int, int] = {}
        self.latency = Latency()

    def finished(self, status: int, seconds: float) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1
        self.latency.observe(seconds)

    def tick(self) -> None:
        """Take the one-second sample; called once a second."""
        in_flight, queued = self.gate.sample()
        last_requests, last_served = self._ticked
        received, served = self.requests - last_requests, self.served - last_served
        self._ticked = (self.requests, self.served)
        for window in self.windows:
            window.add(in_flight, queued, received, served)

    def snapshot(self, *, draining: bool, now: float | None = None) -> StatsDocument:
        now = time.time() if now is None else now
        return {
            "version": VERSION,
            "startTime": round(self.started, 3),
            "uptimeSeconds": round(now - self.started, 3),
            "draining": draining,
            "maxConcurrency": self.gate.capacity,
            "maxQueueLength": self.gate.queue_limit,
            "inFlight": self.gate.in_flight,
            "queued": self.gate.queued,
            "requestsTotal": self.requests,
            "rejectedTotal": self.rejected,
            "servedTotal": self.served,
            "bufferedBytes": self.buffered,
            "windows": [window.snapshot() for window in self.windows],
        }
