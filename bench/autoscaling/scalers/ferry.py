"""Ferry: the operator's own decide(), fed the way the operator's timer feeds it."""

from __future__ import annotations

from bench.autoscaling.cluster import Metrics
from ferry.autoscaling import AutoscalingPolicy, DemandHistory, Sample, ScalerState, decide


class FerryAutoscaler:
    name = "ferry"

    def __init__(self, policy: AutoscalingPolicy, interval: int = 2) -> None:
        self.policy = policy
        self.interval = interval
        self.history = DemandHistory(horizon=policy.window)
        self.state = ScalerState()

    def decide(self, now: float, metrics: Metrics, current: int) -> int:
        # One sample per tick: demand averaged since the previous tick over the ready pods,
        # all of which answer in the simulation.
        ready = metrics.ready[-1]
        sample = Sample(now, metrics.mean_demand(self.interval), answered=ready, expected=ready)
        self.history = self.history.record(sample)
        decision = decide(
            self.history,
            self.policy,
            ready_replicas=ready,
            current_replicas=current,
            now=now,
            state=self.state,
        )
        self.state = decision.state
        return decision.replicas
