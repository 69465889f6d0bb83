"""SIGTERM: not ready at once, every accepted request answered, then exit."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from ferry_local.wait import eventually, wait_until
from tests.e2e.conftest import StartProxy, Upstream, get_json, post
from tests.support.chaos import Case


async def test_a_drain_answers_every_accepted_request_then_exits(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy(max_concurrency=2, max_queue_length=10, grace_period=30)
    async with session.get(proxy.admin("/ready")) as response:
        assert response.status == 200

    async def one() -> int:
        async with session.post(proxy.url("/hold"), data=b"payload") as response:
            assert (await response.json())["bytes"] == 7
            return response.status

    tasks = [asyncio.create_task(one()) for _ in range(8)]

    async def all_accepted() -> bool:
        stats = await get_json(session, proxy.admin("/stats"))
        return (stats["inFlight"], stats["queued"]) == (2, 6)

    await eventually(all_accepted, timeout=10, what="2 in flight and 6 queued")
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    proxy.process.send_signal(signal.SIGTERM)

    async def not_ready() -> bool:
        async with session.get(proxy.admin("/ready")) as response:
            return response.status == 503

    await eventually(not_ready, timeout=5, what="/ready to turn 503 after SIGTERM")
    assert proxy.process.poll() is None, "exited with requests still queued"

    async def all_answered() -> bool:
        await post(session, upstream.url("/control/release"))
        return all(task.done() for task in tasks)

    await eventually(all_answered, timeout=20, what="every accepted request answered")
    assert [task.result() for task in tasks] == [200] * 8
    assert wait_until(
        lambda: proxy.process.poll() is not None, timeout=10, what="the proxy to exit"
    )
    assert proxy.process.returncode == 0
    idle_writer.close()
    assert await idle_reader.read() == b""


@pytest.mark.chaos("misbehaving predictors")
async def test_a_drain_that_outlasts_the_grace_period_cuts_and_fails(
    start_proxy: StartProxy, session: aiohttp.ClientSession, chaos: Case
) -> None:
    proxy = start_proxy(grace_period=1)

    async def held() -> int:
        async with session.get(proxy.url("/hold")) as response:
            return response.status

    task = asyncio.create_task(held())

    async def in_flight() -> bool:
        return bool((await get_json(session, proxy.admin("/stats")))["inFlight"] == 1)

    await eventually(in_flight, timeout=10, what="one request in flight")
    proxy.process.send_signal(signal.SIGTERM)
    wait_until(lambda: proxy.process.poll() is not None, timeout=10, what="the proxy to exit")
    assert proxy.process.returncode == 1
    try:
        status = await task
    except aiohttp.ClientError:
        status = None
    assert status is None, "a request cut by the grace period must not look answered"
    chaos.handled()
