"""The pure parts of the autoscaler's wiring: reading /stats, picking pods, the status written."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.adapters.stats import StatsFormatError, StatsScraper, pod_demand
from ferry.autoscaling import AutoscalingPolicy, DemandHistory, Sample, ScalerState
from ferry.services.autoscale import (
    Memory,
    PodView,
    deployment_replicas,
    ready_pods,
    remembered,
    scaler_status,
    shown_demand,
)
from ferry.settings import Settings, SettingsError


def stats(windows: list[dict[str, Any]], in_flight: int = 0, queued: int = 0) -> dict[str, Any]:
    """A /stats document as ferry.proxy.stats.Stats.snapshot writes it."""
    return {
        "version": 1,
        "startTime": 1700000000.0,
        "uptimeSeconds": 12.5,
        "draining": False,
        "maxConcurrency": 4,
        "maxQueueLength": 100,
        "inFlight": in_flight,
        "queued": queued,
        "requestsTotal": 40,
        "rejectedTotal": 0,
        "windows": windows,
    }


def window(seconds: int, samples: int, in_flight: float, queued: float) -> dict[str, Any]:
    return {"seconds": seconds, "samples": samples, "inFlight": in_flight, "queued": queued}


def test_demand_is_in_flight_plus_queued_over_the_shortest_window() -> None:
    doc = stats([window(60, 60, 1.0, 0.0), window(6, 6, 3.5, 2.25)], in_flight=9, queued=9)
    assert pod_demand(doc) == 5.75


def test_a_window_without_samples_yet_is_passed_over() -> None:
    doc = stats([window(60, 3, 2.0, 1.0), window(1, 0, 0.0, 0.0)])
    assert pod_demand(doc) == 3.0


def test_a_proxy_in_its_first_second_gives_its_current_counts() -> None:
    assert pod_demand(stats([window(60, 0, 0.0, 0.0)], in_flight=2, queued=5)) == 7.0


def test_a_real_snapshot_of_the_proxy_parses() -> None:
    from ferry.proxy.admission import Gate  # noqa: PLC0415 - only this test needs the proxy
    from ferry.proxy.stats import Stats  # noqa: PLC0415

    proxy_stats = Stats(Gate(capacity=4, queue_limit=10), windows=(60, 6))
    proxy_stats.tick()
    assert pod_demand(proxy_stats.snapshot(draining=False)) == 0.0


@pytest.mark.parametrize(
    "doc",
    [
        [],
        "busy",
        {**stats([]), "version": 2},
        {k: v for k, v in stats([]).items() if k != "version"},
        {**stats([]), "windows": {"seconds": 6}},
        stats([window(6, 6, -1.0, 0.0)]),
        stats([window(6, 6, 1.0, True)]),  # type: ignore[arg-type]
        stats([window(6, 6, 1.0, "2")]),  # type: ignore[arg-type]
        stats([], in_flight=None),  # type: ignore[arg-type]
        stats([window(6, 6, float("nan"), 0.0)]),
    ],
)
def test_anything_but_the_proxys_stats_is_refused_not_read_as_zero(doc: Any) -> None:
    with pytest.raises(StatsFormatError):
        pod_demand(doc)


def pod(name: str, ip: str | None, ready: str = "True", **meta: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": ready}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": {"name": name, **meta}, "status": status}


def test_only_ready_addressed_pods_that_are_not_leaving_are_scraped() -> None:
    pods = [
        pod("b", "127.64.0.4"),
        pod("starting", "127.64.0.2", ready="False"),
        pod("pending", None),
        pod("leaving", "127.64.0.3", deletionTimestamp="2025-01-01T00:00:00Z"),
        {"metadata": {"name": "new"}, "status": {}},
        {"metadata": {"name": "unscheduled"}},
        pod("a", "127.64.0.1"),
    ]
    views = [PodView.of(p) for p in pods]
    assert ready_pods(views) == [("a", "127.64.0.1"), ("b", "127.64.0.4")]


def test_a_pod_is_remembered_by_the_few_fields_a_tick_reads() -> None:
    body = {
        **pod("a", "127.64.0.1", deletionTimestamp="2025-01-01T00:00:00Z"),
        "spec": {"containers": [{"name": "predictor", "image": "example.com/iris:1"}]},
    }
    assert PodView.of(body) == PodView("a", "127.64.0.1", ready=True, leaving=True)


def test_a_deployment_without_replicas_has_the_api_servers_default_of_one() -> None:
    assert deployment_replicas({"spec": {"replicas": 3}}) == 3
    assert deployment_replicas({"spec": {}}) == 1


@pytest.mark.parametrize(
    ("demand", "shown"),
    [(None, None), (0.0, 0.0), (3.14159, 3.1), (0.04219, 0.042), (123.4, 120.0), (8.0, 8.0)],
)
def test_in_flight_is_shown_to_two_significant_figures(
    demand: float | None, shown: float | None
) -> None:
    assert shown_demand(demand) == shown


def test_status_names_the_last_scaling_only_when_there_was_one() -> None:
    assert scaler_status(3, 5.55, None) == {"desiredReplicas": 3, "inFlight": 5.5}
    assert scaler_status(4, None, ("2025-01-01T00:00:00Z", "Panic")) == {
        "desiredReplicas": 4,
        "inFlight": None,
        "lastScaleTime": "2025-01-01T00:00:00Z",
        "lastScaleReason": "Panic",
    }


def test_a_new_api_starts_with_an_empty_memory_as_long_as_its_policy_looks_back() -> None:
    policy = AutoscalingPolicy(target_in_flight=2, downscale_stabilization=150)
    memory = remembered(None, policy)
    assert memory.history == DemandHistory(150)
    assert memory.state == ScalerState()


def test_a_changed_policy_keeps_the_samples_and_the_state() -> None:
    samples = (Sample(1.0, 4.0, 1, 1), Sample(3.0, 6.0, 1, 1))
    state = ScalerState(since=1.0)
    memory = Memory(DemandHistory(150, samples), state)
    shorter = remembered(memory, AutoscalingPolicy(target_in_flight=2, downscale_stabilization=30))
    assert shorter == Memory(DemandHistory(60, samples), state)
    assert (
        remembered(
            shorter, AutoscalingPolicy(target_in_flight=2, window=60, downscale_stabilization=30)
        )
        is shorter
    )


def test_autoscaler_settings_have_defaults_and_refuse_nonsense() -> None:
    defaults = Settings.from_env({})
    assert (defaults.autoscale_interval, defaults.scrape_timeout) == (2.0, 1.0)
    assert (defaults.scrape_concurrency, defaults.metrics_port) == (200, 9090)
    tuned = Settings.from_env({"FERRY_AUTOSCALE_INTERVAL": "0.5", "FERRY_METRICS_PORT": "9100"})
    assert (tuned.autoscale_interval, tuned.metrics_port) == (0.5, 9100)
    for env in (
        {"FERRY_AUTOSCALE_INTERVAL": "0"},
        {"FERRY_AUTOSCALE_INTERVAL": "soon"},
        {"FERRY_SCRAPE_TIMEOUT": "-1"},
        {"FERRY_SCRAPE_CONCURRENCY": "0"},
    ):
        with pytest.raises(SettingsError, match=next(iter(env))):
            Settings.from_env(env)


async def test_a_tick_in_flight_at_shutdown_gets_unknown_demand_not_an_error() -> None:
    scraper = StatsScraper(concurrency=4, timeout=0.5)
    await scraper.close()
    (answer,) = await scraper.scrape([("pod-a", "127.0.0.1")])
    assert (answer.demand, answer.error) == (None, "the operator is stopping")
