"""The proxy's limits, exact under concurrent load: slots, FIFO queue, 503 at once beyond it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from ferry_local.wait import eventually
from tests.e2e.conftest import ProxyProcess, StartProxy, Upstream, get_json, post
from tests.support.chaos import Case


async def counts(session: aiohttp.ClientSession, proxy: ProxyProcess) -> tuple[int, int]:
    stats = await get_json(session, proxy.admin("/stats"))
    return stats["inFlight"], stats["queued"]


async def call(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], Any]:
    async with session.get(url) as response:
        return response.status, dict(response.headers), await response.read()


@pytest.mark.chaos("abusive HTTP")
async def test_slots_and_queue_are_exact_and_the_rest_get_503_at_once(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession, chaos: Case
) -> None:
    proxy = start_proxy(max_concurrency=3, max_queue_length=4)
    tasks = [asyncio.create_task(call(session, proxy.url("/hold"))) for _ in range(12)]

    async def five_rejected() -> list[Any] | None:
        done = [task.result() for task in tasks if task.done()]
        return done if len(done) == 5 else None

    rejected = await eventually(five_rejected, timeout=10, what="5 requests turned away")
    assert all(status == 503 for status, _, _ in rejected)
    assert all(headers["Retry-After"] == "1" for _, headers, _ in rejected)
    assert await counts(session, proxy) == (3, 4)
    assert (await get_json(session, upstream.url("/control/state")))["active"] == 3

    async def all_answered() -> bool:
        await post(session, upstream.url("/control/release"))
        return all(task.done() for task in tasks)

    await eventually(all_answered, timeout=20, what="every admitted request answered")
    statuses = sorted(task.result()[0] for task in tasks)
    assert statuses == [200] * 7 + [503] * 5
    state = await get_json(session, upstream.url("/control/state"))
    assert state["maxActive"] == 3, "the predictor saw more than maxConcurrency at once"
    assert state["total"] == 7
    assert await counts(session, proxy) == (0, 0)
    chaos.refused()


async def test_the_queue_is_first_in_first_out(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy(max_concurrency=1, max_queue_length=5)
    finished: list[str] = []

    async def tracked(name: str) -> None:
        async with session.get(proxy.url(f"/hold?name={name}")) as response:
            assert response.status == 200
        finished.append(name)

    names = ["first", "second", "third", "fourth"]
    tasks = []
    for index, name in enumerate(names):
        tasks.append(asyncio.create_task(tracked(name)))

        async def arrived(expected: int = index + 1) -> bool:
            in_flight, queued = await counts(session, proxy)
            return in_flight + queued == expected

        await eventually(arrived, timeout=10, what=f"{name} admitted or queued")

    async def next_finished() -> bool:
        await post(session, upstream.url("/control/release"))
        return len(finished) == len(names)

    await eventually(next_finished, timeout=20, what="all four answered")
    await asyncio.gather(*tasks)
    assert finished == names


@pytest.mark.chaos("misbehaving predictors")
async def test_a_slow_predictor_gets_504_and_its_slot_back(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession, chaos: Case
) -> None:
    proxy = start_proxy(max_concurrency=1, max_queue_length=1, timeout_seconds=1)
    in_flight = asyncio.create_task(call(session, proxy.url("/hold")))
    await eventually(
        lambda: _equals(counts(session, proxy), (1, 0)), timeout=10, what="one in flight"
    )
    queued = asyncio.create_task(call(session, proxy.url("/hold")))
    results = await asyncio.gather(in_flight, queued)
    assert [status for status, _, _ in results] == [504, 504]
    assert await counts(session, proxy) == (0, 0)
    status, _, body = await call(session, proxy.url("/sleep?s=0"))
    assert status == 200, body
    chaos.handled()


@pytest.mark.chaos("misbehaving predictors")
async def test_upstream_failures_are_502(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession, chaos: Case
) -> None:
    proxy = start_proxy()
    assert (await call(session, proxy.url("/drop")))[0] == 502
    assert (await call(session, proxy.url("/sleep?s=0")))[0] == 200
    upstream.process.terminate()
    upstream.process.wait(timeout=10)
    assert (await call(session, proxy.url("/sleep?s=0")))[0] == 502
    assert await counts(session, proxy) == (0, 0)
    chaos.handled()


@pytest.mark.chaos("abusive HTTP")
async def test_a_client_that_leaves_frees_its_place(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession, chaos: Case
) -> None:
    proxy = start_proxy(max_concurrency=1, max_queue_length=1)
    request = b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
    holder = await asyncio.open_connection("127.0.0.1", proxy.port)
    holder[1].write(request)
    await eventually(lambda: _equals(counts(session, proxy), (1, 0)), timeout=10, what="held")
    waiter = await asyncio.open_connection("127.0.0.1", proxy.port)
    waiter[1].write(request)
    await eventually(lambda: _equals(counts(session, proxy), (1, 1)), timeout=10, what="queued")

    waiter[1].close()
    await eventually(lambda: _equals(counts(session, proxy), (1, 0)), timeout=10, what="dequeued")
    holder[1].close()
    await eventually(lambda: _equals(counts(session, proxy), (0, 0)), timeout=10, what="freed")
    assert 'ferry_proxy_requests_total{code="499"} 2.0' in proxy.metrics()
    status, _, _ = await call(session, proxy.url("/sleep?s=0"))
    assert status == 200
    chaos.handled()


async def _equals(value: Any, expected: object) -> bool:
    return bool(await value == expected)
