"""The scraper against real sockets: a live proxy, an address where nothing listens, a mute one."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import aiohttp

from ferry.adapters.stats import PodAnswer, StatsScraper
from ferry.wire.stats import VERSION, StatsDocument, encode
from ferry_local.wait import eventually
from tests.e2e.conftest import LOOPBACK, StartProxy, Upstream


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
                demands = [demand(answer) for answer in answers]
                return demands if demands[0] == 3.0 else None

            started = time.monotonic()
            demands = await eventually(loaded, timeout=15, what="the live proxy to report 3")
            assert demands == [3.0, None, None]
            # Two slots for three pods, one of them mute: the cap queues, the timeout bounds.
            assert time.monotonic() - started < 10
            answers = await scraper.scrape([("refused", "127.64.0.250"), ("mute", "127.0.0.2")])
            assert [str(a.error).split(":")[0] for a in answers] == [
                "ConnectionRefusedError",
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


async def test_the_admin_port_answers_many_scrapes_on_one_connection(
    start_proxy: StartProxy,
) -> None:
    proxy = start_proxy()
    reader, writer = await asyncio.open_connection(LOOPBACK, proxy.admin_port)
    try:
        for request in (b"GET /stats", b"HEAD /stats", b"GET /healthz", b"GET /stats"):
            writer.write(request + b" HTTP/1.1\r\nHost: pod\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert b"connection: close" not in head.lower()
            if request.startswith(b"GET"):
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                json.loads(await reader.readexactly(length))
        # A client that says it is done gets its answer and the end of the connection.
        writer.write(b"GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert b"Connection: close\r\n" in answer
    finally:
        writer.close()


async def test_the_scraper_reuses_its_connection_to_a_pod_from_tick_to_tick(
    start_proxy: StartProxy,
) -> None:
    proxy = start_proxy()
    scraper = StatsScraper(concurrency=2, timeout=1.0, port=proxy.admin_port)
    try:
        for _ in range(3):
            (answer,) = await scraper.scrape([("live", LOOPBACK)])
            assert demand(answer) == 0.0
        # One connection the whole time: a new one per scrape would leave three open.
        assert established_on(proxy.admin_port) == 1
    finally:
        await scraper.close()


def demand(answer: PodAnswer) -> float | None:
    return None if answer.figures is None else answer.figures.demand


def established_on(port: int) -> int:
    """Established TCP connections whose local end is this port (the server's side)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    fields = (line.split() for line in lines)
    return sum(1 for f in fields if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "01")


# A proxy in its first second, before any sample: 2 in flight and 1 queued.
STATS = encode(
    StatsDocument(
        version=VERSION,
        startTime=1700000000.0,
        uptimeSeconds=0.5,
        draining=False,
        maxConcurrency=4,
        maxQueueLength=100,
        inFlight=2,
        queued=1,
        requestsTotal=3,
        rejectedTotal=0,
        servedTotal=0,
        bufferedBytes=0,
        windows=[],
    )
)


def answer(status: str = "200 OK", fields: str = "", body: bytes = STATS) -> bytes:
    head = f"HTTP/1.1 {status}\r\n{fields}"
    if "Transfer-Encoding" not in fields:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def test_the_scraper_takes_only_what_an_admin_port_sends_and_reconnects_after_a_close() -> (
    None
):
    """Scripted answers, one per connection and request: anything but a 200 with a
    Content-Length body is an error for that pod, and a connection the server closed, or that
    broke, is replaced by a new one on the next scrape."""
    script = [
        [answer(), answer(fields="Connection: close\r\n")],
        [answer("503 Service Unavailable", body=b"draining")],
        [answer(fields="Transfer-Encoding: chunked\r\n", body=b"0\r\n\r\n")],
        # Nonsense in a well-framed answer is the pod's; the connection is still good.
        [answer(body=b"{"), answer() + b"HTTP/1.1 200 OK\r\n"],
        [answer()],
    ]
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        answers = script[connections]
        connections += 1
        try:
            for response in answers:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(response)
            await reader.read()  # until the scraper closes
        finally:
            writer.close()

    server = await asyncio.start_server(serve, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    scraper = StatsScraper(concurrency=1, timeout=2.0, port=port)
    try:
        seen = []
        for _ in range(7):
            (result,) = await scraper.scrape([("pod", LOOPBACK)])
            seen.append(demand(result) if result.error is None else result.error)
        assert seen == [
            3.0,  # kept open
            3.0,  # the same connection; the server closes it after answering
            "StatsHttpError: HTTP 503",
            "StatsHttpError: not a body with a Content-Length of at most 64 KiB",
            seen[4],
            "StatsHttpError: more bytes than the Content-Length",
            3.0,
        ]
        assert str(seen[4]).startswith("JSONDecodeError")
        assert connections == len(script)
    finally:
        await scraper.close()
        server.close()
