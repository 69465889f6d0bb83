"""Bad input never crashes the proxy or leaks a slot: each gets its status and the door."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ferry_local.wait import eventually
from tests.e2e.conftest import LOOPBACK, StartProxy, Upstream, exchange, get_json
from tests.support.chaos import Case
from tests.support.scripted_predictor import always, scripted_predictor


@pytest.mark.chaos("abusive HTTP")
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
        (b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nX-Pad: " + b"p" * 70_000, b"431"),
        # Request smuggling: anything two parsers could frame differently.
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", b"501"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", b"501"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\na", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\na", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 0x1\r\n\r\na", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nX@: y\r\n\r\n", b"400"),
        (b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"GET /\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", b"417"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 17 + b"\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n", b"400"),
    ],
)
async def test_malformed_and_oversized_requests_are_refused(
    start_proxy: StartProxy, session: aiohttp.ClientSession, raw: bytes, status: bytes, chaos: Case
) -> None:
    proxy = start_proxy(max_body_bytes=1000)
    answer = await exchange(proxy, raw)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    stats = await get_json(session, proxy.admin("/stats"))
    assert (stats["inFlight"], stats["queued"]) == (0, 0)
    async with session.get(proxy.url("/sleep?s=0")) as response:
        assert response.status == 200
    chaos.refused()


@pytest.mark.chaos("abusive HTTP")
async def test_garbage_pipelined_behind_a_good_request_gets_its_own_400_after_its_answer(
    start_proxy: StartProxy, upstream: Upstream, chaos: Case
) -> None:
    proxy = start_proxy()
    raw = b"GET /sleep?s=0 HTTP/1.1\r\nHost: x\r\n\r\nNOT A REQUEST\r\n\r\n"
    answer = await exchange(proxy, raw)
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"HTTP/1.1 400" in rest, answer
    assert upstream.state()["total"] == 1
    chaos.refused()


_FORWARDED = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nforwarded"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
            + b"p" * 90_000
            + b"\r\n\r\n",
            b"431",
        ),
        (b"GET /?" + b"q" * 100_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"414"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1;" + b"e" * 100_000 + b"\r\nx\r\n0\r\n\r\n",
            b"400",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1\r\nx\r\n0\r\nX-Trailer: " + b"t" * 100_000 + b"\r\n\r\n",
            b"400",
        ),
    ],
    ids=["head-over-64KiB", "request-line-over-64KiB", "chunk-line-over-4KiB", "trailer-line"],
)
@pytest.mark.chaos("abusive HTTP")
async def test_heads_and_chunk_lines_over_their_limits_are_refused_when_sent_in_one_write(
    start_proxy: StartProxy, raw: bytes, status: bytes, chaos: Case
) -> None:
    async with scripted_predictor(always(_FORWARDED)) as predictor:
        proxy = start_proxy(upstream_port=predictor.port)
        answer = await exchange(proxy, raw)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
        assert predictor.received == b"", "the predictor saw the request"
    chaos.refused()


_CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"


@pytest.mark.chaos("misbehaving predictors")
@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 90_000 + b"\r\nContent-Length: 2\r\n\r\nok",
        _CHUNKED_HEAD + b"\r\n2;" + b"e" * 10_000 + b"\r\nok\r\n0\r\n\r\n",
        _CHUNKED_HEAD + b"\r\n2\r\nok\r\n0\r\nX-Trailer: " + b"t" * 10_000 + b"\r\n\r\n",
    ],
    ids=["head-over-64KiB", "chunk-line-over-4KiB", "trailer-line"],
)
async def test_responses_over_the_same_limits_are_not_passed_on_but_answered_502(
    start_proxy: StartProxy, response: bytes, chaos: Case
) -> None:
    async with scripted_predictor(always(response)) as predictor:
        proxy = start_proxy(upstream_port=predictor.port)
        answer = await exchange(proxy, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 502"), answer[:200]
        assert predictor.received.startswith(b"GET / HTTP/1.1\r\n")
    chaos.handled()


@pytest.mark.chaos("abusive HTTP")
async def test_a_client_refused_while_it_sends_its_body_reads_the_answer_not_a_reset(
    start_proxy: StartProxy, upstream: Upstream, chaos: Case
) -> None:
    proxy = start_proxy(max_body_bytes=2**20)
    reader, writer = await asyncio.open_connection(LOOPBACK, proxy.port)
    # As simple clients do: the whole request first (a reset would break a write), then read.
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (8 * 2**20))
    for _ in range(8):
        writer.write(b"x" * 2**20)
        await writer.drain()
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert answer.endswith(b'{"error":"body too large"}\n')
    assert upstream.state()["total"] == 0
    chaos.refused()


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


@pytest.mark.chaos("abusive HTTP")
async def test_a_slow_client_gets_408_and_its_connection_closed(
    start_proxy: StartProxy, session: aiohttp.ClientSession, chaos: Case
) -> None:
    proxy = start_proxy(read_timeout=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert (await get_json(session, proxy.admin("/stats")))["requestsTotal"] == 0
    chaos.refused()


@pytest.mark.chaos("abusive HTTP")
async def test_a_client_idle_past_the_timeout_is_closed(
    start_proxy: StartProxy, chaos: Case
) -> None:
    proxy = start_proxy(idle_timeout=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /sleep?s=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        first = await reader.readuntil(b"}")
        rest = await reader.read()
    writer.close()
    assert first.startswith(b"HTTP/1.1 200")
    assert rest == b""
    chaos.handled()


@pytest.mark.chaos("abusive HTTP")
async def test_the_admin_port_knows_only_its_own_paths(
    start_proxy: StartProxy, session: aiohttp.ClientSession, chaos: Case
) -> None:
    proxy = start_proxy()
    async with session.get(proxy.admin("/nope")) as response:
        assert response.status == 404
        assert "error" in await response.json()
    async with session.post(proxy.admin("/stats")) as response:
        assert response.status == 405
    chaos.refused()


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


@pytest.mark.chaos("abusive HTTP")
async def test_the_idle_loop_survives_a_storm_of_disconnects(
    start_proxy: StartProxy, session: aiohttp.ClientSession, chaos: Case
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
    chaos.handled()
