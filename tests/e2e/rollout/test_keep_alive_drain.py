"""A replica being replaced keeps its clients' kept-alive connections open through the drain
delay: a client that has not yet heard of the replica's end may send its next request on one at
any moment, and that request is answered (with Connection: close), never cut.

Closing those connections at SIGTERM raced exactly such requests: one in 16,000 failed with
"Server disconnected" in the scaling-during-a-rollout test before.
"""

from __future__ import annotations

import asyncio
import signal

from ferry_local.wait import wait_until
from tests.e2e.conftest import StartProxy

REQUEST = b"GET /status/200 HTTP/1.1\r\nHost: proxy\r\n\r\n"


async def answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head


async def test_a_kept_alive_connection_is_served_through_the_drain_delay(
    start_proxy: StartProxy,
) -> None:
    proxy = start_proxy(drain_delay=2, grace_period=10)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(REQUEST)
    first = await answer(reader)
    assert first.startswith(b"HTTP/1.1 200"), first

    proxy.process.send_signal(signal.SIGTERM)
    wait_until(
        lambda: "draining" in proxy.log.read_text(), timeout=10, what="the proxy to start draining"
    )
    writer.write(REQUEST)
    second = await answer(reader)

    assert second.startswith(b"HTTP/1.1 200"), second
    assert b"connection: close" in second.lower()
    assert await reader.read() == b"", "closed once answered"
    writer.close()
    wait_until(lambda: proxy.process.poll() is not None, timeout=15, what="the proxy to exit")
    assert proxy.process.returncode == 0
