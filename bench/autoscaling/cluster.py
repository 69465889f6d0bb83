"""A discrete-event simulation of one API's replicas under a trace and an autoscaler.

What it models, and why:
- Each replica serves up to `max_concurrency` requests at once and queues up to
  `max_queue_length` more, first come first served; a request beyond that is rejected with a
  503, as Ferry's proxy does. Requests are not retried.
- The Service spreads requests round-robin over ready replicas (kube-proxy's IPVS default and
  most proxies'); with none ready, a request is rejected.
- A new pod becomes ready `startup_delay` seconds after it is asked for: scheduling, image,
  model download and load, readiness probe.
- Scaling down removes pods still starting first (newest first), then the most recently ready,
  as a ReplicaSet does. A removed pod leaves the Service at once and drains its requests.
- Every pod that exists, starting or draining included, costs replica-seconds.
- Each second, every ready pod reports its queued + in-flight requests averaged over that
  second (what Knative's queue-proxy reports); autoscalers see only these per-second figures.
  Each ready pod also reports, per second, what Ferry's proxy counts: requests received
  (rejected ones included), requests served (left a slot) and the in-flight average, from
  which the offered load follows by Little's law. Nothing else leaves the simulation.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bench.autoscaling.traces import Trace

_READY, _DONE, _SECOND = 0, 1, 2
"""Event kinds, in the order they run when due at the same instant."""


@dataclass(frozen=True)
class Serving:
    max_concurrency: int = 4
    max_queue_length: int = 100
    startup_delay: float = 30.0
    min_replicas: int = 1
    max_replicas: int = 50


@dataclass
class Metrics:
    """What the pods reported, one entry per elapsed second."""

    demand: list[float] = field(default_factory=list)
    """Queued + in-flight requests summed over ready pods, averaged over the second."""
    ready: list[int] = field(default_factory=list)
    """Ready pods at the end of the second."""
    pods: list[dict[int, PodSecond]] = field(default_factory=list)
    """Per ready pod, by pod number: what its proxy counted in the second."""

    def mean_demand(self, seconds: int) -> float:
        recent = self.demand[-seconds:]
        return sum(recent) / len(recent)


@dataclass(frozen=True, slots=True)
class PodSecond:
    """One pod's proxy over one second."""

    received: int
    """Requests that arrived, rejected ones included."""
    served: int
    """Requests that finished their service (gave back a slot)."""
    in_flight: float
    """Requests in service, averaged over the second."""
    demand: float
    """Queued + in-flight requests, averaged over the second."""


class Autoscaler(Protocol):
    name: str
    interval: int
    """Seconds between decisions."""

    def decide(self, now: float, metrics: Metrics, current: int) -> int:
        """Replicas to ask for, given the count currently asked for."""
        ...


@dataclass(frozen=True)
class Result:
    trace: str
    autoscaler: str
    requests: int
    rejected: int
    p99_queueing: float
    """Seconds between arrival and start of service; the 99th percentile of served requests."""
    replica_seconds: float
    scaling_actions: int
    """Decisions that changed the replicas asked for."""
    replicas_over_time: tuple[int, ...]
    """Replicas asked for at the end of each second."""


class _Replica:
    __slots__ = (
        "busy",
        "busy_area",
        "demand_area",
        "queue",
        "received",
        "routable",
        "served",
        "since",
    )

    def __init__(self) -> None:
        self.busy = 0
        self.queue: deque[tuple[float, float]] = deque()
        self.routable = False
        self.received = 0
        self.served = 0
        self.busy_area = 0.0
        self.demand_area = 0.0
        self.since = 0.0

    def advance(self, now: float) -> None:
        elapsed = now - self.since
        self.busy_area += self.busy * elapsed
        self.demand_area += (self.busy + len(self.queue)) * elapsed
        self.since = now

    def second(self, now: float) -> PodSecond:
        """What the proxy counted since the previous second, and a fresh count."""
        self.advance(now)
        counted = PodSecond(self.received, self.served, self.busy_area, self.demand_area)
        self.received = self.served = 0
        self.busy_area = self.demand_area = 0.0
        return counted


def simulate(trace: Trace, autoscaler: Autoscaler, serving: Serving, initial: int) -> Result:
    """Run the trace with `initial` replicas ready at time zero."""
    return _Simulation(trace, autoscaler, serving, initial).run()


class _Simulation:
    def __init__(
        self, trace: Trace, autoscaler: Autoscaler, serving: Serving, initial: int
    ) -> None:
        self.trace = trace
        self.autoscaler = autoscaler
        self.serving = serving
        self.events: list[tuple[float, int, int]] = []
        self.replicas: list[_Replica] = []
        self.starting: list[int] = []
        self.ready: list[int] = []
        self.next_in_turn = 0
        self.pods = 0
        self.pod_seconds = 0.0
        self.demand = 0
        self.demand_area = 0.0
        self.since = 0.0
        self.delays: list[float] = []
        self.served = 0
        self.rejected = 0
        self.metrics = Metrics()
        self.asked = initial
        self.actions = 0
        self.asked_over_time: list[int] = []
        for _ in range(initial):
            self._make_ready(self._add_pod())

    def run(self) -> Result:
        duration = self.trace.duration
        for second in range(1, int(duration) + 1):
            heapq.heappush(self.events, (float(second), _SECOND, second))
        arrivals, services = self.trace.arrivals, self.trace.services
        events = self.events
        for arrival, service in zip(arrivals, services, strict=True):
            while events and events[0][0] <= arrival:
                self._handle(*heapq.heappop(events))
            self._arrive(arrival, service)
        while events and events[0][0] <= duration:
            self._handle(*heapq.heappop(events))
        self._advance(duration)
        return Result(
            trace=self.trace.name,
            autoscaler=self.autoscaler.name,
            requests=len(arrivals),
            rejected=self.rejected,
            p99_queueing=_percentile(self.delays, self.served, 0.99),
            replica_seconds=self.pod_seconds,
            scaling_actions=self.actions,
            replicas_over_time=tuple(self.asked_over_time),
        )

    def _advance(self, now: float) -> None:
        elapsed = now - self.since
        self.pod_seconds += self.pods * elapsed
        self.demand_area += self.demand * elapsed
        self.since = now

    def _handle(self, now: float, kind: int, subject: int) -> None:
        if kind == _DONE:
            self._complete(now, subject)
        elif kind == _READY:
            if subject in self.starting:
                self.starting.remove(subject)
                self._make_ready(subject, now)
        else:
            self._tick(now, subject)

    def _arrive(self, now: float, service: float) -> None:
        ready = self.ready
        if not ready:
            self.rejected += 1
            return
        self.next_in_turn = (self.next_in_turn + 1) % len(ready)
        index = ready[self.next_in_turn]
        replica = self.replicas[index]
        serving = self.serving
        replica.advance(now)
        replica.received += 1
        if replica.busy < serving.max_concurrency:
            self._advance(now)
            self.demand += 1
            replica.busy += 1
            self.served += 1
            heapq.heappush(self.events, (now + service, _DONE, index))
        elif len(replica.queue) < serving.max_queue_length:
            self._advance(now)
            self.demand += 1
            replica.queue.append((now, service))
        else:
            self.rejected += 1

    def _complete(self, now: float, index: int) -> None:
        replica = self.replicas[index]
        self._advance(now)
        replica.advance(now)
        if replica.routable:
            self.demand -= 1
            replica.served += 1
        if replica.queue:
            arrived, service = replica.queue.popleft()
            self.delays.append(now - arrived)
            self.served += 1
            heapq.heappush(self.events, (now + service, _DONE, index))
            return
        replica.busy -= 1
        if not replica.routable and replica.busy == 0:
            self.pods -= 1

    def _tick(self, now: float, second: int) -> None:
        self._advance(now)
        self.metrics.demand.append(self.demand_area)
        self.metrics.ready.append(len(self.ready))
        self.metrics.pods.append({i: self.replicas[i].second(now) for i in self.ready})
        self.demand_area = 0.0
        if second % self.autoscaler.interval == 0:
            wanted = self.autoscaler.decide(now, self.metrics, self.asked)
            wanted = min(max(wanted, self.serving.min_replicas), self.serving.max_replicas)
            if wanted != self.asked:
                self.actions += 1
                self._scale(now, wanted)
        self.asked_over_time.append(self.asked)

    def _scale(self, now: float, wanted: int) -> None:
        self.asked = wanted
        surplus = len(self.starting) + len(self.ready) - wanted
        while surplus < 0:
            index = self._add_pod()
            self.starting.append(index)
            heapq.heappush(self.events, (now + self.serving.startup_delay, _READY, index))
            surplus += 1
        while surplus > 0 and self.starting:
            self.starting.pop()
            self.pods -= 1
            surplus -= 1
        while surplus > 0:
            self._drain(self.ready.pop())
            surplus -= 1
        if self.ready:
            self.next_in_turn %= len(self.ready)

    def _add_pod(self) -> int:
        self.replicas.append(_Replica())
        self.pods += 1
        return len(self.replicas) - 1

    def _make_ready(self, index: int, now: float = 0.0) -> None:
        replica = self.replicas[index]
        replica.routable = True
        replica.since = now
        self.ready.append(index)

    def _drain(self, index: int) -> None:
        replica = self.replicas[index]
        replica.routable = False
        self.demand -= replica.busy + len(replica.queue)
        if replica.busy == 0:
            self.pods -= 1


def _percentile(delays: Sequence[float], served: int, quantile: float) -> float:
    """The quantile over `served` requests, of which those not in `delays` waited zero."""
    if served == 0:
        return 0.0
    rank = int(quantile * served)
    waited = sorted(delays)
    waiting_from = served - len(waited)
    return waited[rank - waiting_from] if rank >= waiting_from else 0.0
