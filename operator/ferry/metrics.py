"""The operator's Prometheus metrics, in a registry of its own, served on FERRY_METRICS_PORT.

Per-API series carry `namespace` and `api` labels and are removed when the API is deleted, so a
churn of short-lived APIs does not grow the operator's memory without bound.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
_API = ("namespace", "api")

DEMAND = Gauge(
    "ferry_autoscaler_demand",
    "Queued + in-flight requests the autoscaler saw, averaged over the stable or panic window.",
    [*_API, "window"],
    registry=REGISTRY,
)
DESIRED_REPLICAS = Gauge(
    "ferry_autoscaler_desired_replicas",
    "Replicas the autoscaler asked for at its last tick.",
    _API,
    registry=REGISTRY,
)
READY_REPLICAS = Gauge(
    "ferry_autoscaler_ready_replicas",
    "Ready pods the autoscaler found at its last tick.",
    _API,
    registry=REGISTRY,
)
CURRENT_REPLICAS = Gauge(
    "ferry_autoscaler_current_replicas",
    "Replicas of the Deployment before the last tick's decision.",
    _API,
    registry=REGISTRY,
)
DECISIONS = Counter(
    "ferry_autoscaler_decisions",
    "Autoscaler decisions by reason (ScaleUp, Stabilizing, PartialData, ...).",
    ["reason"],
    registry=REGISTRY,
)
SCRAPE_FAILURES = Counter(
    "ferry_autoscaler_scrape_failures",
    "Scrapes of a ready pod's /stats that got no usable answer in time.",
    _API,
    registry=REGISTRY,
)
TICK_ERRORS = Counter(
    "ferry_autoscaler_tick_errors",
    "Ticks abandoned on a Kubernetes API error; the next tick tries again.",
    _API,
    registry=REGISTRY,
)
TICK_SECONDS = Histogram(
    "ferry_autoscaler_tick_seconds",
    "Wall time of one API's tick: list pods, scrape, decide, write.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)

CAPACITY_PASSES = Counter(
    "ferry_capacity_passes",
    "Passes of the capacity loop that read the node groups through; a stalled count is a loop "
    "that is failing or stuck.",
    registry=REGISTRY,
)
CAPACITY_DESIRED = Gauge(
    "ferry_capacity_desired",
    "Desired capacity of each node group's Auto Scaling group, as last read or set.",
    ["group"],
    registry=REGISTRY,
)
CAPACITY_PENDING = Gauge(
    "ferry_capacity_pending_pods",
    "Ferry pods the scheduler found no node for, per node group, at the last pass.",
    ["group"],
    registry=REGISTRY,
)
CAPACITY_SCALE_OUT = Counter(
    "ferry_capacity_scale_out",
    "Instances added to a node group's desired capacity for unschedulable pods.",
    ["group"],
    registry=REGISTRY,
)
CAPACITY_SCALE_IN = Counter(
    "ferry_capacity_scale_in",
    "Idle nodes cordoned and their instances terminated, decrementing desired capacity.",
    ["group"],
    registry=REGISTRY,
)
CAPACITY_SCALE_IN_ABORTED = Counter(
    "ferry_capacity_scale_in_aborted",
    "Scale-ins called off because a pod reached the node after it was cordoned.",
    ["group"],
    registry=REGISTRY,
)
CAPACITY_FAILURES = Counter(
    "ferry_capacity_failures",
    "Calls of the capacity loop that failed, by node group and action (describe, scale_out, "
    "cordon, scale_in, uncordon; group '' and action pass for a pass abandoned).",
    ["group", "action"],
    registry=REGISTRY,
)

_PER_API = (DESIRED_REPLICAS, READY_REPLICAS, CURRENT_REPLICAS, SCRAPE_FAILURES, TICK_ERRORS)


@dataclass(frozen=True)
class ApiGauges:
    """One API's gauges, each tick's to set."""

    desired: Gauge
    current: Gauge
    ready: Gauge
    stable_demand: Gauge
    panic_demand: Gauge


# Looked up once per API: labels() takes a lock and checks and builds its key on every call,
# which was three quarters of the cost of setting a gauge, five times a tick for every API.
_API_GAUGES: dict[tuple[str, str], ApiGauges] = {}


def api_gauges(namespace: str, api: str) -> ApiGauges:
    gauges = _API_GAUGES.get((namespace, api))
    if gauges is None:
        gauges = _API_GAUGES[namespace, api] = ApiGauges(
            DESIRED_REPLICAS.labels(namespace, api),
            CURRENT_REPLICAS.labels(namespace, api),
            READY_REPLICAS.labels(namespace, api),
            DEMAND.labels(namespace, api, "stable"),
            DEMAND.labels(namespace, api, "panic"),
        )
    return gauges


def forget_api(namespace: str, api: str) -> None:
    """Drop a deleted API's series."""
    _API_GAUGES.pop((namespace, api), None)
    for metric in _PER_API:
        with contextlib.suppress(KeyError):
            metric.remove(namespace, api)
    for window in ("stable", "panic"):
        with contextlib.suppress(KeyError):
            DEMAND.remove(namespace, api, window)


def serve(port: int) -> None:
    """Serve /metrics from a background thread. A taken port costs the metrics, not scaling:
    the operator keeps running and says so."""
    try:
        start_http_server(port, registry=REGISTRY)
    except OSError as error:
        log.error("metrics are not served: port %d: %s", port, error)  # noqa: TRY400
