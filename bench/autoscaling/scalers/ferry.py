"""Ferry: the operator's own decide(), fed the way the operator's timer feeds it."""

from __future__ import annotations

from bench.autoscaling.cluster import Metrics
from ferry.autoscaling import (
    AutoscalingPolicy,
    DemandHistory,
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
        demands: list[float | None] = []
        offered: list[float | None] = []
        in_flight: list[float | None] = []
        served: list[float | None] = []
        for pod in metrics.pods[-1]:
            seconds = [second[pod] for second in recent if pod in second]
            n = len(seconds)
            demand = sum(s.demand for s in seconds) / n
            busy = sum(s.in_flight for s in seconds) / n
            finished = sum(s.served for s in seconds) / n
            demands.append(demand)
            in_flight.append(busy)
            served.append(finished)
            offered.append(
                offered_load(sum(s.received for s in seconds) / n, finished, busy, demand)
            )
        sample = (
            Sample.from_pods(now, demands, offered, in_flight=in_flight, served=served)
            if self.offered
            else Sample.from_pods(now, demands)
        )
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
