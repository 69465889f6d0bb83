"""What the replicas' queues can absorb while new pods start, and what overflows them.

A replica serves maxConcurrency requests at once and queues maxQueueLength more. When the
offered load exceeds what the ready replicas serve, their queues fill at the excess rate; a pod
asked for now helps only one start-up delay later. Two rules follow, both in units of offered
load (requests that would be in flight if none had to queue, ferry.autoscaling.offered_load):

- the **floor**: after a peak, keep the replicas whose queues would absorb that peak's return
  for one start-up delay, so that it is met by queueing rather than refused while new pods
  start;
- the **overload**: when the ready replicas' queues would fill before a pod asked for now is
  ready, ask at once for what carries the load and drains the backlog, and give nothing back
  while the ready replicas cannot carry it.

The service time converts between requests and seconds; it comes from the proxies' own figures
by Little's law (ferry.autoscaling.WindowAverage.service_time). Without it the queues are not
counted on: the floor is what the load needs at full maxConcurrency, and there is no overload.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ferry.autoscaling.history import WindowAverage
from ferry.autoscaling.policy import AutoscalingPolicy

# Loads are float averages; without the slack, 8.000000001 at 4 per replica asks for a third.
_EPSILON = 1e-9


def floor_replicas(
    policy: AutoscalingPolicy, load: float, service: float | None, startup: float
) -> int:
    """Replicas whose queues absorb a return of `load` for `startup` seconds.

    R replicas serve R x maxConcurrency of the load and queue the excess; over a start-up delay
    T their counted queues hold R x queue_allowance x maxQueueLength requests, each of
    `service` seconds of work, so they carry load x T / (maxConcurrency x T + allowed queue x
    service). Only queue_allowance of each queue is counted: the rest is headroom for the
    randomness of arrivals and service times, which a pod's queue sees alone.
    """
    queued_work = policy.queue_allowance * policy.max_queue_length * (service or 0.0)
    return _replicas_for(load, policy.max_concurrency + queued_work / startup)


@dataclass(frozen=True)
class Overload:
    """What the ready replicas' queues call for, in replicas."""

    ask: int
    """Replicas to ask for now: their queues would fill before a new pod is ready (0: no)."""
    keep: int
    """Replicas not to give back: what carries the offered load at maxConcurrency and drains
    the backlog within one start-up delay."""


_NONE = Overload(ask=0, keep=0)


def overload(
    policy: AutoscalingPolicy,
    fast: WindowAverage,
    ready: int,
    startup: float,
    service_fallback: float | None = None,
) -> Overload:
    """The overload rule over the panic window `fast`, for `ready` replicas; its service time
    is the panic window's, or `service_fallback` when nothing was served in it."""
    service = fast.service_time or service_fallback
    if service is None or fast.offered is None or fast.in_flight is None:
        return _NONE
    backlog = max(fast.demand - fast.in_flight, 0.0)
    keep = _replicas_for(fast.offered + backlog * service / startup, policy.max_concurrency)
    excess = fast.offered - ready * policy.max_concurrency
    if excess <= 0:
        return Overload(ask=0, keep=keep)
    room = ready * policy.max_queue_length - backlog
    fills_in = room * service / excess
    return Overload(ask=keep if fills_in < startup else 0, keep=keep)


def _replicas_for(load: float, per_replica: float) -> int:
    return max(math.ceil(load / per_replica - _EPSILON), 0)
