"""An oracle that knows every future request: at each second it asks, one start-up delay
ahead, for exactly the replicas that let every request start service at once, given ideal
spreading (the peak concurrency of each second divided by maxConcurrency)."""

from __future__ import annotations

import heapq
import math

from bench.autoscaling.cluster import Metrics, Serving
from bench.autoscaling.traces import Trace


class Oracle:
    name = "oracle"
    interval = 1

    def __init__(self, trace: Trace, serving: Serving) -> None:
        seconds = int(trace.duration) + 1
        need = [
            max(serving.min_replicas, math.ceil(peak / serving.max_concurrency))
            for peak in _peak_concurrency(trace, seconds)
        ]
        lead = math.ceil(serving.startup_delay)
        # A pod asked for now serves from now + lead on, and one given up now is missed at
        # once, so each second asks for the most that any second until then needs.
        self.plan = [max(need[s : s + lead + 1]) for s in range(seconds)]

    @property
    def initial(self) -> int:
        return self.plan[0]

    def decide(self, now: float, metrics: Metrics, current: int) -> int:
        return self.plan[int(now)]


def _peak_concurrency(trace: Trace, seconds: int) -> list[int]:
    """The most requests in service at once during each second, with unlimited servers."""
    peak = [0] * seconds
    finishing: list[float] = []
    second = 0
    for arrival, service in zip(trace.arrivals, trace.services, strict=True):
        while second < int(arrival):
            second += 1
            while finishing and finishing[0] <= second:
                heapq.heappop(finishing)
            peak[second] = len(finishing)
        while finishing and finishing[0] <= arrival:
            heapq.heappop(finishing)
        heapq.heappush(finishing, arrival + service)
        peak[second] = max(peak[second], len(finishing))
    return peak
