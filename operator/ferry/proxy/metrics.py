"""Prometheus metrics, built from the proxy's own counters when scraped."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ferry.proxy.stats import LATENCY_BOUNDS, Stats


class ProxyCollector(Collector):
    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        yield GaugeMetricFamily(
            "ferry_proxy_in_flight", "Requests the predictor is serving now.", stats.gate.in_flight
        )
        yield GaugeMetricFamily(
            "ferry_proxy_queued", "Requests waiting for a slot now.", stats.gate.queued
        )
        yield GaugeMetricFamily(
            "ferry_proxy_buffered_bytes",
            "Request bytes held now: heads and bodies arriving, queued and in flight.",
            stats.buffered,
        )
        requests = CounterMetricFamily(
            "ferry_proxy_requests", "Requests answered, by status code.", labels=["code"]
        )
        for code, count in sorted(stats.by_status.items()):
            requests.add_metric([str(code)], count)
        yield requests
        yield CounterMetricFamily(
            "ferry_proxy_rejected",
            "Requests answered 503 at once because every slot and queue place was taken, or"
            " because their bytes would have passed the proxy's byte budget.",
            stats.rejected,
        )
        cumulative = 0
        buckets = []
        for bound, count in zip((*LATENCY_BOUNDS, float("inf")), stats.latency.counts, strict=True):
            cumulative += count
            buckets.append((f"{bound:g}" if bound != float("inf") else "+Inf", cumulative))
        yield HistogramMetricFamily(
            "ferry_proxy_request_duration_seconds",
            "Time from a request's arrival (queueing included) to the end of its response.",
            buckets=buckets,
            sum_value=stats.latency.total,
        )


def registry_for(stats: Stats) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(stats))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
