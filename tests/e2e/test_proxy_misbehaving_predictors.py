"""A predictor that answers what no HTTP server should: the client gets a clear status or a cut
connection, never another request's bytes, and the proxy gives the slot back and serves on."""

from __future__ import annotations

import aiohttp
import pytest

from ferry_local.wait import eventually
from tests.e2e.conftest import ProxyProcess, StartProxy, exchange, get_json
from tests.support.chaos import Case
from tests.support.scripted_predictor import Script, first_then, scripted_predictor

pytestmark = pytest.mark.chaos("misbehaving predictors")

GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def then_good(first: bytes, close: bool = True) -> Script:
    """`first` for the first request, a good answer for every later one."""
    return first_then(first, GOOD, close_first=close)


async def serves_on(proxy: ProxyProcess, session: aiohttp.ClientSession) -> None:
    """Every slot given back, and the next request answered."""

    async def idle() -> bool:
        stats = await get_json(session, proxy.admin("/stats"))
        return (stats["inFlight"], stats["queued"]) == (0, 0)

    await eventually(idle, timeout=10, what="the proxy's slots given back")
    assert (await exchange(proxy, request("/next"))).endswith(b"\r\n\r\ngood")


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"502"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", b"502"),
        (b"HTTP/1.1 99 Too Early\r\nContent-Length: 0\r\n\r\n", b"502"),
        # Seen before anything went to the client, so the client can still be told.
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"502"),
        (b"", b"502"),  # closes without a word
    ],
    ids=[
        "not HTTP",
        "malformed length",
        "bad status",
        "malformed chunk",
        "silent close",
    ],
)
async def test_an_answer_that_is_not_http_is_a_502(
    start_proxy: StartProxy,
    session: aiohttp.ClientSession,
    answer: bytes,
    status: bytes,
    chaos: Case,
) -> None:
    async with scripted_predictor(then_good(answer)) as predictor:
        proxy = start_proxy(upstream_port=predictor.port)
        got = await exchange(proxy, request("/predict"))
        assert got.startswith(b"HTTP/1.1 " + status), got[:200]
        await serves_on(proxy, session)
    chaos.handled()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ngood\r\n",
    ],
    ids=["body shorter than its length", "chunks cut off"],
)
async def test_a_response_cut_short_is_cut_short_for_the_client_too(
    start_proxy: StartProxy, session: aiohttp.ClientSession, answer: bytes, chaos: Case
) -> None:
    # The status went out with the head: closing the connection early is all that can tell the
    # client the body is not whole.
    async with scripted_predictor(then_good(answer)) as predictor:
        proxy = start_proxy(upstream_port=predictor.port)
        got = await exchange(proxy, request("/predict"))
        assert got.startswith(b"HTTP/1.1 200")
        head, _, body = got.partition(b"\r\n\r\n")
        assert (
            len(body) < 100 if b"Content-Length: 100" in head else not body.endswith(b"0\r\n\r\n")
        )
        await serves_on(proxy, session)
    chaos.handled()


async def test_bytes_past_a_response_never_reach_the_next_client(
    start_proxy: StartProxy, session: aiohttp.ClientSession, chaos: Case
) -> None:
    # A second response smuggled after the first, on a connection the predictor keeps open: the
    # proxy must not hand it to whoever sends next on a pooled connection.
    smuggled = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
    )
    async with scripted_predictor(then_good(smuggled, close=False)) as predictor:
        proxy = start_proxy(upstream_port=predictor.port)
        assert (await exchange(proxy, request("/first"))).endswith(b"\r\n\r\nok")
        for _ in range(3):
            assert (await exchange(proxy, request("/next"))).endswith(b"\r\n\r\ngood")
        assert predictor.requests == 4
        await serves_on(proxy, session)
    chaos.handled()


async def test_a_flood_of_interim_answers_ends_in_the_final_one(
    start_proxy: StartProxy, session: aiohttp.ClientSession, chaos: Case
) -> None:
    flood = b"HTTP/1.1 100 Continue\r\n\r\n" * 10_000 + GOOD
    async with scripted_predictor(then_good(flood, close=False)) as predictor:
        proxy = start_proxy(upstream_port=predictor.port)
        got = await exchange(proxy, request("/predict"))
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"\r\n\r\ngood"), got[:200]
        await serves_on(proxy, session)
    chaos.handled()


async def test_a_response_that_never_ends_is_cut_at_the_timeout(
    start_proxy: StartProxy, session: aiohttp.ClientSession, chaos: Case
) -> None:
    endless = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nmore\r\n"
    async with scripted_predictor(then_good(endless, close=False)) as predictor:
        proxy = start_proxy(upstream_port=predictor.port, timeout_seconds=1)
        got = await exchange(proxy, request("/predict"))
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"4\r\nmore\r\n"), got[:200]
        assert 'ferry_proxy_requests_total{code="504"} 1.0' in proxy.metrics()
        await serves_on(proxy, session)
    chaos.handled()
