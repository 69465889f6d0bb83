"""The request bytes the proxy holds are bounded, and a client it turns away reads why.

Large bodies queued in front of a slow predictor once took the proxy past its container's memory
limit: each request held its whole body, and only their number was bounded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from ferry.proxy.config import ProxyConfig
from ferry_local.wait import eventually
from tests.e2e.conftest import LOOPBACK, ProxyProcess, StartProxy, Upstream, get_json, post
from tests.support.chaos import Case

MIB = 2**20
BUDGET = ProxyConfig().max_buffered_bytes
# What the proxy may hold beyond its request bytes at the peak: the interpreter's heap, a read
# buffer per connection, the responses on their way out.
PEAK_MARGIN = 32 * MIB
# What may stay resident once the burst is over (the heap grown by 60 connections' objects).
SETTLED_MARGIN = 16 * MIB


def memory(proxy: ProxyProcess, name: str) -> int:
    """VmRSS, VmHWM (peak RSS)... of the proxy process, in bytes."""
    for line in Path(f"/proc/{proxy.process.pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {name} in /proc/{proxy.process.pid}/status")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Clients:
    """Clients that send a whole request before they read, as simple HTTP clients do."""

    port: int
    answers: list[Answer | str] = field(default_factory=list)
    # Kept-alive connections stay open until this is set, as a pooling client leaves them.
    hang_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def post(self, path: str, body: bytes, extra: bytes = b"") -> None:
        head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (
            path.encode(),
            len(body),
            extra,
        )
        reader, writer = await asyncio.open_connection(LOOPBACK, self.port)
        try:
            writer.write(head)
            view = memoryview(body)
            for start in range(0, len(body), MIB):
                writer.write(view[start : start + MIB])
                await writer.drain()
            answer = await read_answer(reader)
            self.answers.append(answer)
            if answer.headers.get("connection") != "close":
                await self.hang_up.wait()
        except (OSError, asyncio.IncompleteReadError) as error:
            self.answers.append(f"{type(error).__name__}: {error}")
        finally:
            writer.close()


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return Answer(int(lines[0].split(" ")[1]), headers, body)


@pytest.mark.chaos("abusive HTTP")
async def test_a_burst_of_large_bodies_stays_within_the_byte_budget_and_every_client_is_answered(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession, chaos: Case
) -> None:
    proxy = start_proxy(max_concurrency=4, max_queue_length=200, timeout_seconds=120)
    for _ in range(5):
        async with session.get(proxy.url("/sleep?s=0")) as response:
            assert response.status == 200
    baseline = memory(proxy, "VmRSS")
    warm_up = (await get_json(session, proxy.admin("/stats")))["requestsTotal"]
    clients = Clients(proxy.port)
    body = b"x" * (9 * MIB)
    tasks = [asyncio.create_task(clients.post("/hold", body)) for _ in range(60)]

    async def all_taken_or_refused() -> dict[str, int] | None:
        stats: dict[str, int] = await get_json(session, proxy.admin("/stats"))
        refused = sum(isinstance(a, Answer) and a.status == 503 for a in clients.answers)
        taken = stats["inFlight"] + stats["queued"]
        return stats if stats["requestsTotal"] - warm_up == 60 and taken + refused == 60 else None

    stats = await eventually(
        all_taken_or_refused, timeout=60, what="60 requests admitted, queued or turned away"
    )
    peak = memory(proxy, "VmHWM")
    assert peak <= baseline + BUDGET + PEAK_MARGIN, (
        f"peak RSS {peak / MIB:.0f} MiB over baseline {baseline / MIB:.0f} MiB"
        f" + budget {BUDGET / MIB:.0f} MiB + margin {PEAK_MARGIN / MIB:.0f} MiB"
    )

    async def all_answered() -> bool:
        await post(session, upstream.url("/control/release"))
        return len(clients.answers) == len(tasks)

    await eventually(all_answered, timeout=120, what="every client answered")
    statuses = sorted(a.status if isinstance(a, Answer) else 0 for a in clients.answers)
    assert all(isinstance(a, Answer) for a in clients.answers), clients.answers
    answers = [a for a in clients.answers if isinstance(a, Answer)]
    refused = [a for a in answers if a.status == 503]
    assert all(a.headers["retry-after"] == "1" for a in refused)
    assert set(statuses) == {200, 503}, statuses
    assert len(refused) == stats["rejectedTotal"]

    # With the 200s' connections still open, the bodies' memory has gone back to the system.
    async def settled() -> int | None:
        rss = memory(proxy, "VmRSS")
        return rss if rss <= baseline + SETTLED_MARGIN else None

    await eventually(settled, timeout=10, what="RSS back near its baseline")
    clients.hang_up.set()
    await asyncio.gather(*tasks)
    chaos.handled()


@pytest.mark.chaos("abusive HTTP")
async def test_a_request_that_would_pass_the_byte_budget_is_503_at_its_head_until_bytes_return(
    start_proxy: StartProxy, upstream: Upstream, session: aiohttp.ClientSession, chaos: Case
) -> None:
    # Room for one body of 120 kB and a half, as 220 kB is just above the least budget allowed,
    # the largest request (150 kB of body and 64 KiB of head).
    proxy = start_proxy(max_body_bytes=150_000, max_buffered_bytes=220_000)
    clients = Clients(proxy.port)
    body = b"x" * 120_000
    held = asyncio.create_task(clients.post("/hold", body))

    async def holding() -> dict[str, int] | None:
        stats: dict[str, int] = await get_json(session, proxy.admin("/stats"))
        return stats if stats["inFlight"] == 1 else None

    stats = await eventually(holding, timeout=10, what="one request held by the predictor")
    assert 120_000 < stats["bufferedBytes"] < 120_200  # the body and its head

    # The same again would pass the budget: refused at its head, whatever follows it.
    await clients.post("/hold", body)
    reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
    writer.write(b"POST /hold HTTP/1.1\r\nContent-Length: 120000\r\nExpect: 100-continue\r\n\r\n")
    expecting = await read_answer(reader)  # a 503, not a 100 Continue
    assert await reader.read() == b""
    writer.close()
    reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
    chunk = b"%x\r\n%s\r\n" % (60_000, b"c" * 60_000)
    writer.write(b"POST /hold HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2)
    writer.write(b"0\r\n\r\n")
    chunked = await read_answer(reader)  # 120 kB: within the body limit, not the budget
    writer.close()
    for answer in (*clients.answers, expecting, chunked):
        assert isinstance(answer, Answer), answer
        assert (answer.status, answer.headers.get("retry-after")) == (503, "1"), answer
        assert answer.headers["connection"] == "close"
    stats = await get_json(session, proxy.admin("/stats"))
    assert (stats["requestsTotal"], stats["rejectedTotal"]) == (4, 3)
    assert upstream.state()["total"] == 1

    # A client that leaves halfway through its body gives its bytes back too.
    _, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
    writer.write(b"POST /hold HTTP/1.1\r\nContent-Length: 90000\r\n\r\n" + b"x" * 40_000)
    await writer.drain()
    writer.close()
    clients.hang_up.set()
    upstream.release()
    await held
    assert isinstance(clients.answers[-1], Answer) and clients.answers[-1].status == 200

    async def all_given_back() -> bool:
        return (await get_json(session, proxy.admin("/stats")))["bufferedBytes"] == 0

    await eventually(all_given_back, timeout=10, what="every held byte given back")
    async with session.post(proxy.url("/echo"), data=body) as response:
        assert (response.status, len(await response.read())) == (200, len(body))
    chaos.refused()
