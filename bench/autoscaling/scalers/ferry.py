"""Ferry: the operator's own decide(), fed the way the operator's timer feeds it."""

from __future__ import annotations

from bench.autoscaling.cluster import Metrics
from ferry.autoscaling import (
    AutoscalingPolicy,
    DemandHistory,
    PodFigures,
    Sample,
    ScalerState,
    decide,
    offered_load,
)
from ferry.settings import Settings

TICK = round(Settings().autoscale_interval)
"""The operator's default tick (FERRY_AUTOSCALE_INTERVAL); the simulation ticks whole seconds."""


class FerryAutoscaler:
    name = "ferry"

    def __init__(
        self, policy: AutoscalingPolicy, interval: int = TICK, offered: bool = True
    ) -> None:
        self.policy = policy
        self.interval = interval
        self.offered = offered
        self.history = DemandHistory(horizon=policy.window)
        self.state = ScalerState()

    def decide(self, now: float, metrics: Metrics, current: int) -> int:
        # One sample per tick: each ready pod's proxy averages its one-second counts over a
        # window as long as the tick (--windows=2,...), and all of them answer here.
        ready = metrics.ready[-1]
        recent = metrics.pods[-self.interval :]
        pods: list[PodFigures] = []
        for pod in metrics.pods[-1]:
            seconds = [second[pod] for second in recent if pod in second]
            n = len(seconds)
            demand = sum(s.demand for s in seconds) / n
            if not self.offered:
                pods.append(PodFigures(demand))
                continue
            busy = sum(s.in_flight for s in seconds) / n
            finished = sum(s.served for s in seconds) / n
            offered = offered_load(sum(s.received for s in seconds) / n, finished, busy, demand)
            pods.append(PodFigures(demand, offered, busy, finished))
        sample = Sample.from_pods(now, pods)
        assert sample.answered == ready
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
