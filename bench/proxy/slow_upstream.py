"""A slow predictor stand-in for the memory benchmark: it takes its time over every request.

    python slow_upstream.py PORT SECONDS

Reads each request's body (Content-Length framing, as ferry-proxy forwards it) and discards it as
it arrives, waits SECONDS, then answers a small JSON body, keep-alive, on uvloop. Requests queue
in the proxy in front of it, so what the proxy holds is what the benchmark measures.
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

import uvloop

_BODY = b'{"prediction":[0.1,0.9]}'
_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_BODY),
    _BODY,
)


class SlowAnswer(asyncio.Protocol):
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._body_left = -1  # -1: reading a head

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        while data:
            if self._body_left < 0:
                head = self._head + data
                end = head.find(b"\r\n\r\n")
                if end < 0:
                    self._head = head
                    return
                self._head = b""
                self._body_left = _content_length(head[:end])
                data = head[end + 4 :]
            taken = min(self._body_left, len(data))
            self._body_left -= taken
            data = data[taken:]
            if self._body_left == 0:
                self._body_left = -1
                asyncio.get_running_loop().call_later(self._seconds, self._answer)

    def _answer(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_RESPONSE)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def serve(port: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SlowAnswer(seconds), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), float(sys.argv[2])))
