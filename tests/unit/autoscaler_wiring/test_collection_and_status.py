"""The pure parts of the autoscaler's wiring: reading /stats, picking pods, the status written."""

from __future__ import annotations

from typing import Any

import pytest

from ferry import metrics
from ferry.adapters.stats import PodAnswer, StatsScraper, pod_figures
from ferry.autoscaling import DemandHistory, PodFigures, Sample, ScalerState
from ferry.handlers.autoscaler import next_tick
from ferry.services.autoscale import (
    Memory,
    deployment_replicas,
    ready_pods,
    remembered,
    scaler_status,
    shown_demand,
)
from ferry.settings import Settings, SettingsError
from ferry.spec.model import InvalidSpecError
from ferry.spec.resource import RealtimeAPI, parse_api
from ferry.spec.schema import with_defaults
from ferry.status.pods import PodState
from ferry.wire.stats import (
    VERSION,
    StatsDocument,
    StatsFormatError,
    WindowDocument,
    decode,
    encode,
)


def stats(windows: list[WindowDocument], in_flight: int = 0, queued: int = 0) -> StatsDocument:
    """A /stats document of a proxy that does not count requests served: the fields added
    within the version (servedTotal, bufferedBytes) as a test adds them."""
    return StatsDocument(
        version=VERSION,
        startTime=1700000000.0,
        uptimeSeconds=12.5,
        draining=False,
        maxConcurrency=4,
        maxQueueLength=100,
        inFlight=in_flight,
        queued=queued,
        requestsTotal=40,
        rejectedTotal=0,
        windows=windows,
    )


def window(
    seconds: int, samples: int, in_flight: float, queued: float, **rates: Any
) -> WindowDocument:
    """A window; `received` and `served` as a proxy that counts them adds."""
    return WindowDocument(
        seconds=seconds, samples=samples, inFlight=in_flight, queued=queued, **rates
    )


def figures(document: Any, tick: float = 0.0) -> PodFigures:
    """A pod's figures from a /stats document, as the scraper reads its body."""
    return pod_figures(decode(encode(document), tick))


def test_demand_is_in_flight_plus_queued_over_the_shortest_window() -> None:
    doc = stats([window(60, 60, 1.0, 0.0), window(6, 6, 3.5, 2.25)], in_flight=9, queued=9)
    assert figures(doc).demand == 5.75


@pytest.mark.parametrize(
    ("tick", "seconds"), [(0.0, 1), (1.0, 1), (1.4, 1), (1.5, 1), (2.0, 2), (3.0, 2), (5.0, 6)]
)
def test_the_window_read_is_the_one_closest_to_the_tick(tick: float, seconds: int) -> None:
    # Each window's demand is its length: which one was read shows in the result.
    lengths = (60, 6, 2, 1)
    doc = stats([window(n, n, float(n), 0.0, received=n, served=n) for n in lengths])
    read = figures(doc, tick)
    assert (read.demand, read.offered) == (seconds, seconds)
    assert (read.in_flight, read.served) == (seconds, seconds)


def test_a_window_without_samples_yet_is_passed_over() -> None:
    doc = stats([window(60, 3, 2.0, 1.0), window(1, 0, 0.0, 0.0)])
    assert figures(doc).demand == 3.0


def test_a_proxy_in_its_first_second_gives_its_current_counts() -> None:
    assert figures(stats([window(60, 0, 0.0, 0.0)], in_flight=2, queued=5)).demand == 7.0


def test_a_real_snapshot_of_the_proxy_parses() -> None:
    from ferry.proxy.admission import Gate  # noqa: PLC0415 - only this test needs the proxy
    from ferry.proxy.stats import Stats  # noqa: PLC0415

    proxy_stats = Stats(Gate(capacity=4, queue_limit=10), windows=(60, 6))
    proxy_stats.tick()
    assert figures(proxy_stats.snapshot(draining=False)).demand == 0.0


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
        stats([window(6, 6, float("inf"), 0.0)]),
    ],
)
def test_anything_but_the_proxys_stats_is_refused_not_read_as_zero(doc: Any) -> None:
    with pytest.raises(StatsFormatError):
        figures(doc)


def test_offered_load_comes_from_the_window_demand_is_read_from() -> None:
    doc = stats(
        [
            window(60, 60, 1.0, 0.0, received=1.0, served=1.0),
            window(2, 2, 3.0, 5.0, received=20.0, served=10.0),
        ]
    )
    # 20 received/s x 3 in flight / 10 served/s: the 5 queued are backlog, not traffic.
    assert (figures(doc).demand, figures(doc).offered) == (8.0, 6.0)


def test_a_window_in_which_nothing_was_served_offers_its_demand() -> None:
    doc = stats([window(2, 2, 4.0, 3.0, received=6.0, served=0.0)])
    assert figures(doc).offered == 7.0


def test_a_proxy_that_does_not_count_served_requests_offers_nothing_but_its_demand_stands() -> None:
    doc = stats([window(60, 60, 1.0, 0.0), window(6, 6, 3.5, 2.25)])
    assert (figures(doc).demand, figures(doc).offered) == (5.75, None)
    assert figures(stats([window(60, 0, 0.0, 0.0)], in_flight=2, queued=5)).offered is None


def test_a_proxy_in_its_first_second_offers_its_current_demand_if_it_counts_served() -> None:
    doc = {**stats([window(2, 0, 0.0, 0.0)], in_flight=2, queued=5), "servedTotal": 0}
    assert figures(doc).offered == 7.0


def test_a_real_snapshot_of_a_loaded_proxy_gives_its_offered_load() -> None:
    from ferry.proxy.admission import Gate  # noqa: PLC0415 - only this test needs the proxy
    from ferry.proxy.stats import Stats  # noqa: PLC0415

    class Request:
        def admitted(self) -> None:
            pass

    clock = [0.0]
    gate = Gate(capacity=4, queue_limit=10, clock=lambda: clock[0])
    proxy_stats = Stats(gate, windows=(60, 2))
    for _ in range(8):
        gate.enter(Request())  # 4 in flight, 4 queued
    for _ in range(2):
        clock[0] += 1.0
        proxy_stats.requests += 8
        proxy_stats.served += 4
        proxy_stats.tick()
    doc = proxy_stats.snapshot(draining=False)
    assert doc["windows"][1] == {
        "seconds": 2,
        "samples": 2,
        "inFlight": 4.0,
        "queued": 4.0,
        "received": 8.0,
        "served": 4.0,
    }
    # 8 received/s at 1 s each (4 in flight / 4 served/s): 8 requests' worth of traffic.
    assert (figures(doc).demand, figures(doc).offered) == (8.0, 8.0)
    assert (figures(doc).in_flight, figures(doc).served) == (4.0, 4.0)


def test_a_sample_carries_the_offered_load_only_when_every_pod_that_answered_reports_it() -> None:
    new = stats([window(2, 2, 2.0, 0.0, received=4.0, served=4.0)])
    old = stats([window(2, 2, 2.0, 0.0)])

    def answer(name: str, doc: StatsDocument) -> PodAnswer:
        return PodAnswer(name, figures(doc))

    def sample(*answers: PodAnswer) -> Sample:
        return Sample.from_pods(5.0, [a.figures for a in answers])

    silent = PodAnswer("c", None, "no answer within 1s")
    assert sample(answer("a", new), answer("b", new), silent).offered == 4.0
    assert sample(answer("a", new), answer("b", old)).offered is None


@pytest.mark.parametrize(
    "doc",
    [
        stats([window(2, 2, 1.0, 0.0, received="3", served=1.0)]),
        stats([window(2, 2, 1.0, 0.0, received=3.0, served=-1.0)]),
        stats([window(2, 2, 1.0, 0.0, received=True, served=1.0)]),
        stats([window(2, 2, 1.0, 0.0, received=float("inf"), served=1.0)]),
        stats([window(2, 2, 1.0, 0.0, received=3.0)]),
        stats([window(2, 2, 1.0, 0.0, served=None)]),
        {**stats([window(2, 0, 0.0, 0.0)]), "servedTotal": "0"},
    ],
)
def test_a_malformed_offered_load_refuses_the_whole_answer(doc: Any) -> None:
    with pytest.raises(StatsFormatError):
        figures(doc)


def test_in_flight_and_served_come_from_the_window_demand_is_read_from() -> None:
    doc = stats(
        [
            window(60, 60, 1.0, 0.0, received=1.0, served=1.0),
            window(2, 2, 4.0, 6.0, received=20.0, served=16.0),
        ]
    )
    assert (figures(doc).in_flight, figures(doc).served) == (4.0, 16.0)
    # Before the first sample and from a proxy that does not count served requests: unknown.
    first = figures({**stats([window(2, 0, 0.0, 0.0)]), "servedTotal": 0})
    assert (first.in_flight, first.served) == (None, None)
    older = figures(stats([window(2, 2, 4.0, 6.0)]))
    assert (older.in_flight, older.served) == (None, None)
    with pytest.raises(StatsFormatError):
        figures(stats([window(2, 2, 4.0, 6.0, received=20.0, served=-1.0)]))


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
    views = [PodState.of(p) for p in pods]
    assert ready_pods(views) == [("a", "127.64.0.1"), ("b", "127.64.0.4")]


def test_a_pod_is_remembered_by_the_few_fields_a_tick_reads() -> None:
    body = {
        **pod("a", "127.64.0.1", deletionTimestamp="2025-01-01T00:00:00Z"),
        "spec": {"containers": [{"name": "predictor", "image": "example.com/iris:1"}]},
    }
    view = PodState.of(body)
    assert (view.name, view.ip, view.ready, view.leaving) == ("a", "127.64.0.1", True, True)


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


def body(generation: int = 1, uid: str = "uid-1", **autoscaling: Any) -> dict[str, Any]:
    """An API as the API server hands it over: defaulted, with the metadata it adds."""
    return {
        "metadata": {
            "name": "iris",
            "namespace": "ml",
            "uid": uid,
            "generation": generation,
            "resourceVersion": str(100 + generation),
        },
        "spec": with_defaults(
            {"predictor": {"image": "example.com/m:1"}, "autoscaling": autoscaling}
        ),
    }


def read(**autoscaling: Any) -> RealtimeAPI:
    return parse_api(body(**autoscaling))


def test_a_new_api_keeps_the_samples_of_its_longest_averaging_window() -> None:
    api = read(window="90s", downscaleStabilization="150s")
    memory = remembered(None, api.spec.policy)
    assert memory.history == DemandHistory(90)
    assert memory.state == ScalerState()


def test_a_changed_policy_keeps_the_samples_and_the_state() -> None:
    samples = (Sample(1.0, 4.0, 1, 1), Sample(3.0, 6.0, 1, 1))
    state = ScalerState(since=1.0)
    memory = Memory(DemandHistory(60, samples), state)
    shorter = read(window="30s")
    assert remembered(memory, shorter.spec.policy) == Memory(DemandHistory(30, samples), state)


def test_a_spec_is_parsed_again_only_when_its_generation_changes() -> None:
    known = parse_api(body(maxReplicas=5))
    # The same object at the same generation has the same spec: the one parsed is kept.
    again = body(maxReplicas=5)
    again["status"] = {"desiredReplicas": 3}
    kept = parse_api(again, known)
    assert kept.spec is known.spec
    assert kept.status == {"desiredReplicas": 3}
    changed = parse_api(body(generation=2, maxReplicas=7), known)
    assert changed.spec.policy.max_replicas == 7
    # Another object of the same name, or one whose spec the user must fix, is parsed afresh.
    assert parse_api(body(uid="uid-2", maxReplicas=9), changed).spec.policy.max_replicas == 9
    broken = body(generation=3)
    del broken["spec"]["serving"]
    with pytest.raises(InvalidSpecError):
        parse_api(broken, changed)


def test_autoscaler_settings_have_defaults_and_refuse_nonsense() -> None:
    defaults = Settings.from_env({})
    assert (defaults.autoscale_interval, defaults.scrape_timeout) == (1.0, 1.0)
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
    assert (answer.figures, answer.error) == (None, "the operator is stopping")


def test_ticks_are_sharp_and_a_late_tick_skips_those_it_missed() -> None:
    assert next_tick(10.0, 10.3, 2.0) == 12.0
    # Started on time but ran past the next tick's time: the one after it.
    assert next_tick(10.0, 12.5, 2.0) == 14.0
    assert next_tick(10.0, 12.0, 2.0) == 14.0
    # A tick never comes back to back with the last, however early the clock reads.
    assert next_tick(10.0, 9.0, 2.0) == 12.0


def test_a_deleted_api_s_series_are_dropped_and_come_back_if_it_returns() -> None:
    def desired() -> float | None:
        return metrics.REGISTRY.get_sample_value(
            "ferry_autoscaler_desired_replicas", {"namespace": "ns", "api": "gone"}
        )

    metrics.api_gauges("ns", "gone").desired.set(3)
    metrics.api_gauges("ns", "gone").panic_demand.set(1.5)
    assert desired() == 3
    metrics.forget_api("ns", "gone")
    assert desired() is None
    assert (
        metrics.REGISTRY.get_sample_value(
            "ferry_autoscaler_demand", {"namespace": "ns", "api": "gone", "window": "panic"}
        )
        is None
    )
    # An API of the same name created again gets series of its own, not the dropped ones.
    metrics.api_gauges("ns", "gone").desired.set(2)
    assert desired() == 2
    metrics.forget_api("ns", "gone")
