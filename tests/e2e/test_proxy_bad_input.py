"""Bad input never crashes the proxy or leaks a slot: each gets its status and the door."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ferry_local.wait import eventually
from tests.e2e.conftest import ProxyProcess, StartProxy, get_json


async def exchange(proxy: ProxyProcess, raw: bytes, *, send_eof: bool = False) -> bytes:
    """Send raw bytes; everything the proxy answers until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(raw)
    if send_eof:
        writer.write_eof()
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"HELLO\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\nHost: x\n\n", b"400"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", b"413"),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + b"x" * 1001, b"413"),
        (b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\n", b"431"),
    ],
)
async def test_malformed_and_oversized_requests_are_refused(
    start_proxy: StartProxy, session: aiohttp.ClientSession, raw: bytes, status: bytes
) -> None:
    proxy = start_proxy(max_body_bytes=1000)
    answer = await exchange(proxy, raw)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    stats = await get_json(session, proxy.admin("/stats"))
    assert (stats["inFlight"], stats["queued"]) == (0, 0)
    async with session.get(proxy.url("/sleep?s=0")) as response:
        assert response.status == 200


async def test_a_chunked_body_reaches_the_predictor_whole(start_proxy: StartProxy) -> None:
    proxy = start_proxy(max_body_bytes=1000)
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
        b"\r\n5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
    )
    answer = await exchange(proxy, raw)
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"\r\n\r\nhello world")


async def test_chunked_responses_and_keep_alive_pass_through(
    start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy()
    for _ in range(3):  # the same pooled connections carry response after response
        async with session.get(proxy.url("/chunked?n=200")) as response:
            body = await response.read()
        assert body == b"".join(b"chunk-%d;" % index for index in range(200))
    async with session.head(proxy.url("/sleep?s=0")) as response:
        assert response.status == 200
    async with session.post(proxy.url("/echo"), data=b"x" * 500_000) as response:
        assert len(await response.read()) == 500_000


async def test_a_slow_client_gets_408_and_its_connection_closed(
    start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy(read_timeout=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert (await get_json(session, proxy.admin("/stats")))["requestsTotal"] == 0


async def test_a_client_idle_past_the_timeout_is_closed(start_proxy: StartProxy) -> None:
    proxy = start_proxy(idle_timeout=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /sleep?s=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        first = await reader.readuntil(b"}")
        rest = await reader.read()
    writer.close()
    assert first.startswith(b"HTTP/1.1 200")
    assert rest == b""


async def test_the_admin_port_knows_only_its_own_paths(
    start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy()
    async with session.get(proxy.admin("/nope")) as response:
        assert response.status == 404
        assert "error" in await response.json()
    async with session.post(proxy.admin("/stats")) as response:
        assert response.status == 405


async def test_expect_continue_gets_its_interim_answer(start_proxy: StartProxy) -> None:
    proxy = start_proxy()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    async with asyncio.timeout(10):
        interim = await reader.readuntil(b"\r\n\r\n")
        writer.write(b"ok")
        response = await reader.readuntil(b"ok")
    writer.close()
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert response.startswith(b"HTTP/1.1 200")


async def test_the_idle_loop_survives_a_storm_of_disconnects(
    start_proxy: StartProxy, session: aiohttp.ClientSession
) -> None:
    proxy = start_proxy(max_concurrency=2, max_queue_length=50)
    for _ in range(30):
        _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        writer.close()

    async def settled() -> bool:
        stats = await get_json(session, proxy.admin("/stats"))
        return stats["requestsTotal"] == 30 and (stats["inFlight"], stats["queued"]) == (0, 0)

    await eventually(settled, timeout=10, what="every abandoned request's slot back")
