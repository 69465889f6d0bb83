"""The Kubernetes HorizontalPodAutoscaler (autoscaling/v2) on a Pods metric of queued +
in-flight requests with an AverageValue target, default behaviour.

From the Kubernetes documentation ("Horizontal Pod Autoscaling", algorithm details and
configurable scaling behavior):
- every 15 s (--horizontal-pod-autoscaler-sync-period) desired = ceil(ready x metric / target),
  where metric is the per-pod average;
- no change while |metric / target - 1| <= 0.1;
- pods without metrics (still starting) count as 0 % of target when scaling up and 100 % when
  scaling down; if that reverses the direction or lands within tolerance, nothing changes;
- scale-down stabilization 300 s: the highest recommendation of the last 5 minutes;
- scale-up at most max(100 %, 4 pods) per 15 s, scale-down at most 100 % per 15 s.
The metric is the average over the 15 s since the last sync, as a metrics pipeline scraping
at that period would give.
"""

from __future__ import annotations

import math
from collections import deque

from bench.autoscaling.cluster import Metrics

SYNC = 15
TOLERANCE = 0.1
DOWNSCALE_STABILIZATION = 300.0
UPSCALE_PODS_PER_PERIOD = 4


class HorizontalPodAutoscaler:
    name = "hpa"
    interval = SYNC

    def __init__(self, target: float) -> None:
        self.target = target
        self.recommendations: deque[tuple[float, int]] = deque()

    def decide(self, now: float, metrics: Metrics, current: int) -> int:
        recommendation = self._recommend(metrics, current)
        self.recommendations.append((now, recommendation))
        while self.recommendations[0][0] <= now - DOWNSCALE_STABILIZATION:
            self.recommendations.popleft()
        highest = max(replicas for _, replicas in self.recommendations)
        desired = min(current, highest) if recommendation < current else recommendation
        return min(desired, max(2 * current, current + UPSCALE_PODS_PER_PERIOD))

    def _recommend(self, metrics: Metrics, current: int) -> int:
        ready = metrics.ready[-1]
        if ready == 0:
            return current
        total = metrics.mean_demand(SYNC)
        ratio = total / ready / self.target
        if abs(ratio - 1) <= TOLERANCE:
            return current
        missing = max(current - ready, 0)
        if missing:
            assumed = 0.0 if ratio > 1 else missing * self.target
            adjusted = (total + assumed) / (ready + missing) / self.target
            if abs(adjusted - 1) <= TOLERANCE or (adjusted > 1) != (ratio > 1):
                return current
            return math.ceil(adjusted * (ready + missing))
        return math.ceil(ratio * ready)
