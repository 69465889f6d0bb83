"""Autoscaling's pure core: demand history in, desired replicas and a reason out. No I/O.

A caller keeps a DemandHistory and a ScalerState per API. Each tick it records one Sample from
the ready pods' PodFigures (Sample.from_pods, None for a pod that did not answer): queued +
in-flight requests, with what their proxies count when they do (offered load, requests in
service and served). It calls decide(), writes Decision.replicas, and keeps Decision.state for
the next tick.
"""

from ferry.autoscaling.decide import Decision, Panic, Reason, Recommendation, ScalerState, decide
from ferry.autoscaling.history import (
    DemandHistory,
    PodFigures,
    Sample,
    WindowAverage,
    offered_load,
)
from ferry.autoscaling.policy import (
    AutoscalingPolicy,
    DurationError,
    PolicyError,
    default_target_in_flight,
    parse_duration,
)

__all__ = [
    "AutoscalingPolicy",
    "Decision",
    "DemandHistory",
    "DurationError",
    "Panic",
    "PodFigures",
    "PolicyError",
    "Reason",
    "Recommendation",
    "Sample",
    "ScalerState",
    "WindowAverage",
    "decide",
    "default_target_in_flight",
    "offered_load",
    "parse_duration",
]
