"""The scraper against real sockets: a live proxy, an address where nothing listens, a mute one."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp

from e2e.conftest import StartProxy, Upstream
from ferry.adapters.stats import StatsScraper
from ferry.local.wait import eventually


async def test_a_pod_that_does_not_answer_is_unknown_not_zero(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy(max_concurrency=1, max_queue_length=10, windows="1,60")
    port = proxy.admin_port
    held = [asyncio.create_task(session.get(proxy.url("/hold"))) for _ in range(3)]
    # Accepts connections (the kernel's backlog) but never answers them.
    with socket.socket() as mute:
        mute.bind(("127.0.0.2", port))
        mute.listen(8)
        scraper = StatsScraper(concurrency=2, timeout=0.5, port=port)
        try:

            async def loaded() -> list[float | None] | None:
                answers = await scraper.scrape(
                    [("live", "127.0.0.1"), ("refused", "127.64.0.250"), ("mute", "127.0.0.2")]
                )
                demands = [answer.demand for answer in answers]
                return demands if demands[0] == 3.0 else None

            started = time.monotonic()
            demands = await eventually(loaded, timeout=15, what="the live proxy to report 3")
            assert demands == [3.0, None, None]
            # Two slots for three pods, one of them mute: the cap queues, the timeout bounds.
            assert time.monotonic() - started < 10
            answers = await scraper.scrape([("refused", "127.64.0.250"), ("mute", "127.0.0.2")])
            assert [str(a.error).split(":")[0] for a in answers] == [
                "ClientConnectorError",
                "no answer within 0.5s",
            ]
        finally:
            await scraper.close()

    async def answered() -> bool:
        upstream.release()
        return all(task.done() for task in held)

    await eventually(answered, timeout=20, what="the held requests answered")
    for task in held:
        task.result().release()
