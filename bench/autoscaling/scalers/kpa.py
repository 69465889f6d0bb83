"""Knative's Pod Autoscaler in concurrency mode, default configuration.

From Knative Serving's documentation (autoscaling concepts, configuring the KPA) and
config-autoscaler defaults:
- queue-proxy reports each pod's concurrency (queued + in-flight) averaged per second;
- the decider runs every 2 s (tick-interval);
- target = containerConcurrency x container-concurrency-target-percentage (70 %);
- stable window 60 s, panic window 10 % of it (6 s), linear averages;
- panic when the panic window asks for >= 200 % of ready pods; panic lasts until a whole
  stable window has passed without crossing that; while panicking replicas never go down;
- max-scale-up-rate 1000 and max-scale-down-rate 2 per decision, relative to ready pods;
- scale-down-delay 0 s; the activator (scale from zero) plays no part above one replica.
"""

from __future__ import annotations

import math

from bench.autoscaling.cluster import Metrics

TICK = 2
STABLE_WINDOW = 60
PANIC_WINDOW = 6
TARGET_UTILISATION = 0.7
PANIC_THRESHOLD = 2.0
MAX_SCALE_UP_RATE = 1000.0
MAX_SCALE_DOWN_RATE = 2.0


class KnativePodAutoscaler:
    name = "kpa"
    interval = TICK

    def __init__(self, container_concurrency: int) -> None:
        self.target = container_concurrency * TARGET_UTILISATION
        self.panic_time: float | None = None
        self.max_panic_pods = 0

    def decide(self, now: float, metrics: Metrics, current: int) -> int:
        ready = max(1, metrics.ready[-1])
        most = math.ceil(MAX_SCALE_UP_RATE * ready)
        least = math.floor(ready / MAX_SCALE_DOWN_RATE)
        stable = min(max(self._pods(metrics, STABLE_WINDOW), least), most)
        panic = min(max(self._pods(metrics, PANIC_WINDOW), least), most)
        over = panic / ready >= PANIC_THRESHOLD
        if over:
            self.panic_time = now
        elif self.panic_time is not None and self.panic_time + STABLE_WINDOW < now:
            self.panic_time = None
            self.max_panic_pods = 0
        if self.panic_time is None:
            return stable
        # The stable window can ask for more than the panic window at the tail of a surge;
        # panic provisions for the larger and never gives pods back.
        self.max_panic_pods = max(self.max_panic_pods, panic, stable)
        return self.max_panic_pods

    def _pods(self, metrics: Metrics, window: int) -> int:
        return math.ceil(metrics.mean_demand(window) / self.target)
