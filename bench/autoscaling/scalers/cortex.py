"""Cortex's RealtimeAPI autoscaler (v0.2x, archived), default autoscaling configuration.

From Cortex's documentation (realtime API autoscaling):
- every 10 s, in-flight requests (queued included) summed over pods, averaged over 60 s;
- recommendation ceil(average / target_replica_concurrency), target = max_concurrency;
- kept at current replicas when within 5 % below (downscale_tolerance) or above
  (upscale_tolerance);
- a step goes no lower than x0.75 and no higher than x1.5 of current replicas, a step of one
  always allowed;
- stabilization: no scale-up beyond the lowest recommendation of the last minute, no
  scale-down below the highest of the last 5 minutes.
"""

from __future__ import annotations

import math
from collections import deque

from bench.autoscaling.cluster import Metrics

TICK = 10
WINDOW = 60
TOLERANCE = 0.05
MAX_DOWNSCALE_FACTOR = 0.75
MAX_UPSCALE_FACTOR = 1.5
UPSCALE_STABILIZATION = 60.0
DOWNSCALE_STABILIZATION = 300.0


class CortexAutoscaler:
    name = "cortex"
    interval = TICK

    def __init__(self, target: float) -> None:
        self.target = target
        self.recommendations: deque[tuple[float, int]] = deque()

    def decide(self, now: float, metrics: Metrics, current: int) -> int:
        raw = metrics.mean_demand(WINDOW) / self.target
        recommendation = math.ceil(raw)
        if current * (1 - TOLERANCE) < raw < current * (1 + TOLERANCE):
            recommendation = current
        floor = min(current - 1, math.ceil(current * MAX_DOWNSCALE_FACTOR))
        ceiling = max(current + 1, math.ceil(current * MAX_UPSCALE_FACTOR))
        recommendation = min(max(recommendation, floor), ceiling)

        self.recommendations.append((now, recommendation))
        while self.recommendations[0][0] <= now - DOWNSCALE_STABILIZATION:
            self.recommendations.popleft()
        if recommendation > current:
            lowest = min(r for t, r in self.recommendations if t > now - UPSCALE_STABILIZATION)
            return max(current, lowest)
        if recommendation < current:
            return min(current, max(r for _, r in self.recommendations))
        return current
