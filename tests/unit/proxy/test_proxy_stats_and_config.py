"""Windows average what they hold; settings come from flags, then FERRY_* variables."""

from __future__ import annotations

import pytest

from ferry.proxy.admission import Gate
from ferry.proxy.config import ProxyConfig, load, parser
from ferry.proxy.stats import Latency, Stats, Window


def test_a_window_keeps_only_its_last_samples() -> None:
    window = Window(3)
    for value in (9, 1, 2, 4):
        window.add(value, value * 2, value * 10, value * 3)
    assert window.snapshot() == {
        "seconds": 3,
        "samples": 3,
        "inFlight": 2.3333,
        "queued": 4.6667,
        "received": 23.3333,
        "served": 7.0,
    }
    assert Window(5).snapshot() == {
        "seconds": 5,
        "samples": 0,
        "inFlight": 0.0,
        "queued": 0.0,
        "received": 0.0,
        "served": 0.0,
    }


def test_each_tick_records_the_requests_received_and_served_since_the_previous_one() -> None:
    stats = Stats(Gate(2, 3), windows=(2, 60))
    for received, served in [(5, 3), (1, 0), (3, 4)]:
        stats.requests += received
        stats.served += served
        stats.tick()
    short, long = stats.snapshot(draining=False)["windows"]
    assert (short["received"], short["served"]) == (2.0, 2.0)  # (1 + 3) / 2, (0 + 4) / 2
    assert (long["received"], long["served"]) == (3.0, 2.3333)
    assert stats.snapshot(draining=False)["servedTotal"] == 7


def test_the_snapshot_carries_what_a_scraper_needs() -> None:
    stats = Stats(Gate(2, 3), windows=(60, 6), started=1000.0)
    stats.requests, stats.served = 5, 3
    snapshot = stats.snapshot(draining=False, now=1010.5)
    assert (snapshot["requestsTotal"], snapshot["servedTotal"]) == (5, 3)
    assert snapshot["uptimeSeconds"] == 10.5
    assert snapshot["startTime"] == 1000.0
    assert (snapshot["maxConcurrency"], snapshot["maxQueueLength"]) == (2, 3)
    assert [window["seconds"] for window in snapshot["windows"]] == [60, 6]


def test_latency_buckets_are_upper_bounds() -> None:
    latency = Latency()
    for seconds in (0.001, 0.0011, 100.0):
        latency.observe(seconds)
    assert latency.counts[0] == 1 and latency.counts[1] == 1 and latency.counts[-1] == 1


def test_flags_win_over_variables_which_win_over_defaults() -> None:
    env = {"FERRY_MAX_CONCURRENCY": "8", "FERRY_PORT": "9000", "FERRY_STATS_WINDOWS": "30,3"}
    config = load(["--port=7000"], env)
    assert (config.port, config.max_concurrency, config.windows) == (7000, 8, (30, 3))
    assert config.max_queue_length == ProxyConfig().max_queue_length
    assert config.readiness_path is None


@pytest.mark.parametrize(
    "env", [{"FERRY_MAX_CONCURRENCY": "0"}, {"FERRY_TIMEOUT_SECONDS": "-1"}, {"FERRY_PORT": "x"}]
)
def test_a_bad_variable_is_reported_like_a_bad_flag(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        load([], env)
    assert "ferry-proxy: error" in capsys.readouterr().err


def test_a_pod_address_from_the_node_agent_is_served_on_and_the_predictor_found_there() -> None:
    args = parser({"FERRY_HOST": "127.128.0.9"}).parse_args([])
    assert (args.listen_host, args.upstream_host) == ("127.128.0.9", "127.128.0.9")
    explicit = parser({"FERRY_HOST": "127.128.0.9", "FERRY_UPSTREAM_HOST": "10.1.1.1"})
    assert explicit.parse_args([]).upstream_host == "10.1.1.1"
    assert parser({}).parse_args([]).listen_host == "0.0.0.0"  # noqa: S104 - the sidecar default


def test_the_byte_budget_must_hold_the_largest_request(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"FERRY_MAX_BODY_BYTES": "1000000"}
    assert load(["--max-buffered-bytes=1065536"], env).max_buffered_bytes == 1065536
    with pytest.raises(SystemExit):
        load(["--max-buffered-bytes=1065535"], env)
    assert "must hold the largest request" in capsys.readouterr().err


def test_the_defaults_are_a_valid_configuration() -> None:
    assert load([], {}) == ProxyConfig()
