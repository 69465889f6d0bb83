"""The counts the autoscaler reads match the load applied; readiness follows the predictor."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp

from ferry.adapters.stats import pod_figures
from ferry.wire.stats import decode, encode
from ferry_local.wait import eventually
from tests.e2e.conftest import StartProxy, Upstream, get_json, post


async def test_stats_and_metrics_match_the_load(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy(max_concurrency=4, max_queue_length=2, windows="2,60")
    before = await get_json(session, proxy.admin("/stats"))
    assert before["requestsTotal"] == 0
    assert before["startTime"] > 0

    async def held() -> int:
        async with session.get(proxy.url("/hold")) as response:
            return response.status

    tasks = [asyncio.create_task(held()) for _ in range(7)]

    async def steady() -> dict[str, Any] | None:
        stats: dict[str, Any] = await get_json(session, proxy.admin("/stats"))
        window = stats["windows"][0]
        # Two whole seconds under the same load: the 2 s averages are exactly the counts.
        if window["samples"] == 2 and (window["inFlight"], window["queued"]) == (4.0, 2.0):
            return stats
        return None

    stats = await eventually(steady, timeout=15, what="the 2 s window to average 4 and 2")
    assert (stats["inFlight"], stats["queued"]) == (4, 2)
    assert stats["requestsTotal"] == 7
    assert stats["rejectedTotal"] == 1
    assert stats["servedTotal"] == 0
    assert stats["windows"][0]["served"] == 0.0
    # Nothing has been served, so no service time is known: the demand stands in.
    assert pod_figures(decode(encode(stats))).offered == 6.0
    assert stats["windows"][1]["seconds"] == 60
    assert 0 < stats["windows"][1]["inFlight"] <= 4
    assert stats["uptimeSeconds"] > before["uptimeSeconds"]

    def per_window(stats: dict[str, Any], field: str) -> int:
        """Requests counted in the 60 s window: its per-second average x its seconds."""
        window = stats["windows"][1]
        return round(float(window[field]) * int(window["samples"]))

    async def received(count: int) -> dict[str, Any] | None:
        stats: dict[str, Any] = await get_json(session, proxy.admin("/stats"))
        return stats if per_window(stats, "received") == count else None

    # The rejected request is received too; a tick may pass before it is in the window.
    await eventually(lambda: received(7), timeout=5, what="7 requests received in the window")

    async def answered() -> bool:
        await post(session, upstream.url("/control/release"))
        return all(task.done() for task in tasks)

    await eventually(answered, timeout=20, what="all requests answered")
    assert sorted(task.result() for task in tasks) == [200] * 6 + [503]
    metrics = proxy.metrics()
    assert 'ferry_proxy_requests_total{code="200"} 6.0' in metrics
    assert 'ferry_proxy_requests_total{code="503"} 1.0' in metrics
    assert "ferry_proxy_rejected_total 1.0" in metrics
    assert "ferry_proxy_in_flight 0.0" in metrics
    assert "ferry_proxy_queued 0.0" in metrics
    count = re.search(r"^ferry_proxy_request_duration_seconds_count (\S+)$", metrics, re.M)
    assert count is not None and float(count.group(1)) == 7.0

    async def served() -> dict[str, Any] | None:
        stats: dict[str, Any] = await get_json(session, proxy.admin("/stats"))
        return stats if per_window(stats, "served") == 6 else None

    # The 6 requests that held a slot were served; the rejected one was not.
    stats = await eventually(served, timeout=5, what="6 requests served in the window")
    assert (stats["servedTotal"], stats["requestsTotal"]) == (6, 7)
    assert per_window(stats, "received") == 7

    async def quiet() -> bool:
        window = (await get_json(session, proxy.admin("/stats")))["windows"][0]
        return (window["inFlight"], window["queued"]) == (0.0, 0.0)

    await eventually(quiet, timeout=10, what="the 2 s window to fall back to zero")


async def test_a_restarted_proxy_is_told_apart_by_its_start_time(
    start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    first = start_proxy()
    async with session.get(first.url("/sleep?s=0")) as response:
        assert response.status == 200
    second = start_proxy()
    one = await get_json(session, first.admin("/stats"))
    two = await get_json(session, second.admin("/stats"))
    assert (one["requestsTotal"], two["requestsTotal"]) == (1, 0)
    assert two["startTime"] > one["startTime"]


async def test_ready_follows_the_predictors_readiness_path(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy(readiness_path="/healthz")

    async def ready() -> int:
        async with session.get(proxy.admin("/ready")) as response:
            return response.status

    assert await ready() == 200
    upstream.set_ready(False)
    assert await ready() == 503
    upstream.set_ready(True)
    assert await ready() == 200


async def test_without_a_path_ready_is_a_tcp_check(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy()

    async def ready() -> int:
        async with session.get(proxy.admin("/ready")) as response:
            return response.status

    upstream.set_ready(False)  # the TCP check does not read /healthz
    assert await ready() == 200
    upstream.process.terminate()
    upstream.process.wait(timeout=10)
    assert await ready() == 503
