"""Connections to the predictor: kept alive, pooled, and relaying responses as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol, cast

from ferry.proxy.http import (
    BODY_CHUNKED,
    BODY_LENGTH,
    BODY_NONE,
    MAX_HEAD_BYTES,
    BadResponseError,
    ChunkedScanner,
    ResponseHead,
    parse_response_head,
)

_HEAD, _LENGTH, _CHUNKED, _CLOSE = range(4)


class Exchange(Protocol):
    """The side that sent a request and receives its response (the client connection)."""

    def relay_start(self, status: int, data: bytes, head_length: int, closes: bool) -> None:
        """The response's head and whatever of its body came with it."""

    def relay(self, data: bytes) -> None:
        """More of the response body."""

    def relay_end(self) -> None:
        """The response is complete."""

    def upstream_lost(self, replayable: bool) -> None:
        """The response will not complete; `replayable` if the upstream never saw it begin."""


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_buf",
        "_keep_alive",
        "_method",
        "_received",
        "_remaining",
        "_scanner",
        "_state",
        "exchange",
        "idle_since",
        "pool",
        "reused",
        "transport",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.reused = False
        self.idle_since = 0.0
        self._state = _HEAD
        self._buf = b""
        self._method = b"GET"
        self._keep_alive = True
        self._received = False
        self._remaining = 0
        self._scanner = ChunkedScanner()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast("asyncio.Transport", transport)

    def send(self, exchange: Exchange, request: bytes | bytearray, method: bytes) -> None:
        assert self.transport is not None
        self.exchange = exchange
        self._method = method
        self._state = _HEAD
        self._received = False
        self.transport.write(request)

    def abandon(self) -> None:
        """Drop the request in progress; the connection cannot be reused mid-response."""
        self.exchange = None
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:
            # Bytes nobody asked for: this connection can no longer frame a next response.
            assert self.transport is not None
            self.transport.abort()
            return
        self._received = True
        state = self._state
        if state == _HEAD:
            self._head_received(exchange, data)
        elif state == _LENGTH:
            remaining = self._remaining - len(data)
            if remaining > 0:
                self._remaining = remaining
                exchange.relay(data)
                return
            if remaining < 0:
                self._keep_alive = False
                data = data[: self._remaining]
            exchange.relay(data)
            self._done(exchange)
        elif state == _CHUNKED:
            try:
                end = self._scanner.feed(data, 0)
            except BadResponseError:
                self._broken(exchange)
                return
            if end < 0:
                exchange.relay(data)
                return
            if end < len(data):
                self._keep_alive = False
                data = data[:end]
            exchange.relay(data)
            self._done(exchange)
        else:
            exchange.relay(data)

    def _head_received(self, exchange: Exchange, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        while True:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD_BYTES:
                    self._broken(exchange)
                else:
                    self._buf = data
                return
            if end + 4 > MAX_HEAD_BYTES:  # a head that came whole never waited in `_buf`
                self._broken(exchange)
                return
            try:
                head = parse_response_head(data[:end], self._method)
            except BadResponseError:
                self._broken(exchange)
                return
            if head.status >= 200 or head.status == 101:  # noqa: PLR2004
                break
            # An interim response (100 Continue): the proxy answered that itself already.
            data = data[end + 4 :]
            if not data:
                return
        body_start = end + 4
        self._keep_alive = head.keep_alive
        closes = not head.keep_alive
        try:
            complete_at = self._complete_at(head, data, body_start)
        except BadResponseError:
            self._broken(exchange)
            return
        if complete_at < 0:
            exchange.relay_start(head.status, data, body_start, closes)
            return
        if complete_at < len(data):
            self._keep_alive = False
            data = data[:complete_at]
        exchange.relay_start(head.status, data, body_start, closes)
        self._done(exchange)

    def _complete_at(self, head: ResponseHead, data: bytes, body_start: int) -> int:
        """Where in `data` the response ends, or -1 (and the state to read the rest in)."""
        framing = head.framing
        if framing == BODY_NONE:
            return body_start
        if framing == BODY_LENGTH:
            complete_at = body_start + head.length
            if complete_at <= len(data):
                return complete_at
            self._state = _LENGTH
            self._remaining = complete_at - len(data)
            return -1
        if framing == BODY_CHUNKED:
            self._scanner = ChunkedScanner()
            complete_at = self._scanner.feed(data, body_start)
            if complete_at < 0:
                self._state = _CHUNKED
            return complete_at
        self._state = _CLOSE
        return -1

    def _done(self, exchange: Exchange) -> None:
        self.exchange = None
        self._state = _HEAD
        if self._keep_alive:
            self.pool.put(self)
        else:
            assert self.transport is not None
            self.transport.close()
        exchange.relay_end()

    def _broken(self, exchange: Exchange) -> None:
        self.exchange = None
        assert self.transport is not None
        self.transport.abort()
        exchange.upstream_lost(replayable=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.discard(self)
        exchange = self.exchange
        self.exchange = None
        if exchange is None:
            return
        if self._state == _CLOSE:
            exchange.relay_end()
        else:
            # A kept-alive connection the upstream closed before answering never carried this
            # request into the predictor's hands: the classic idle-close race, safe to resend.
            exchange.upstream_lost(replayable=self.reused and not self._received)

    def pause_writing(self) -> None:
        """The request is written in one go; nothing more to hold back."""

    def resume_writing(self) -> None:
        """See pause_writing."""


class UpstreamPool:
    """Idle keep-alive connections to one upstream, most recently used first."""

    def __init__(self, host: str, port: int, loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.port = port
        self._loop = loop
        self._idle: list[UpstreamConnection] = []
        self._connecting: set[asyncio.Task[None]] = set()

    def take(self) -> UpstreamConnection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.transport is not None and not connection.transport.is_closing():
                connection.reused = True
                return connection
        return None

    def put(self, connection: UpstreamConnection) -> None:
        connection.idle_since = self._loop.time()
        self._idle.append(connection)

    def discard(self, connection: UpstreamConnection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)

    def open(self, done: Callable[[UpstreamConnection | None], None]) -> None:
        """Connect in the background; `done` gets the connection, or None if it failed."""
        task = self._loop.create_task(self._open(done))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _open(self, done: Callable[[UpstreamConnection | None], None]) -> None:
        try:
            _, connection = await self._loop.create_connection(
                lambda: UpstreamConnection(self), self.host, self.port
            )
        except OSError:
            done(None)
        else:
            done(connection)

    def reap(self, max_idle: float) -> None:
        """Close connections idle for longer than `max_idle` seconds (oldest are first)."""
        limit = self._loop.time() - max_idle
        while self._idle and self._idle[0].idle_since < limit:
            transport = self._idle.pop(0).transport
            if transport is not None:
                transport.close()

    def close(self) -> None:
        for task in self._connecting:
            task.cancel()
        while self._idle:
            transport = self._idle.pop().transport
            if transport is not None:
                transport.close()


async def upstream_ready(host: str, port: int, path: str | None, timeout: float) -> bool:
    """Whether the predictor answers: its readiness path with 2xx/3xx, or just a TCP connect."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                if path is None:
                    return True
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    "User-Agent: ferry-proxy-probe\r\nConnection: close\r\n\r\n".encode()
                )
                status_line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    parts = status_line.split(b" ", 2)
    return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400  # noqa: PLR2004
