"""The proxy proper: client connections through the gate to pooled upstream connections.

Written on asyncio Protocols rather than streams: a request costs a few callbacks and no task,
future or per-request object beyond the bytes themselves. Each client connection carries one
request at a time through these states:

    IDLE -> READING (head and body arriving) -> WAITING (queued) -> FORWARDING -> IDLE

and every way out of WAITING or FORWARDING (response, timeout, upstream failure, client gone)
goes through `_end_request`, the one place a slot or queue place is given back.

Besides the count of requests, the bytes they hold are bounded: every connection counts what it
holds (a head arriving, a body from its head on, a request queued or in flight) against
`--max-buffered-bytes`, and a request that would pass it is answered 503 at its head. A refused
request's connection closes lingering: the proxy reads and drops what the client still sends
for a while, since closing with unread bytes resets the connection, and a reset can destroy the
answer before the client reads it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from ferry.proxy.admission import Admission, Gate
from ferry.proxy.config import ProxyConfig
from ferry.proxy.http import (
    MAX_HEAD_BYTES,
    BadRequestError,
    ChunkedRequestBody,
    RequestHead,
    error_body,
    oversized_head,
    parse_request_head,
    simple_response,
    with_connection_close,
)
from ferry.proxy.stats import Stats
from ferry.proxy.timeouts import Timeouts
from ferry.proxy.upstream import UpstreamConnection, UpstreamPool

log = logging.getLogger("ferry.proxy")

_IDLE, _READING, _WAITING, _FORWARDING, _CLOSED, _LINGERING = range(6)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A connection opened during the drain gets this long to send its request.
_DRAIN_IDLE_SECONDS = 1.0
# Status recorded for requests whose client went away first (nginx's convention).
CLIENT_CLOSED = 499
# Requests up to this size are copied out of the connection's buffer into bytes, which the
# upstream transport sends fastest; a larger one takes the buffer itself, so it is held once.
_COPIED_UP_TO = MAX_HEAD_BYTES


class Proxy:
    """What every connection shares: the gate, the upstream pool, counters, the drain state."""

    def __init__(self, config: ProxyConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.gate = Gate(config.max_concurrency, config.max_queue_length)
        self.stats = Stats(self.gate, config.windows)
        self.pool = UpstreamPool(config.upstream_host, config.upstream_port, loop)
        self.timeouts = Timeouts(loop, config.timeout_seconds)
        self.connections: set[ClientConnection] = set()
        self.draining = False
        self._all_closed = asyncio.Event()
        # Set once every accepted request is answered (or cut): the predictor's preStop hook waits
        # on it, so the predictor outlives the requests the proxy still forwards to it.
        self.drained = asyncio.Event()
        self.busy_response = simple_response(
            503,
            error_body("every slot and queue place is taken"),
            extra=b"Retry-After: %d\r\n" % config.retry_after,
        )
        self.over_budget_response = simple_response(
            503,
            error_body("the proxy holds as many request bytes as it may"),
            close=True,
            extra=b"Retry-After: %d\r\n" % config.retry_after,
        )
        self.timeout_response = simple_response(504, error_body("the predictor did not answer"))
        self.bad_gateway_response = simple_response(502, error_body("the predictor failed"))

    def connection_closed(self, connection: ClientConnection) -> None:
        self.connections.discard(connection)
        if self.draining and not self.connections:
            self._all_closed.set()

    def tick(self) -> None:
        """Once a second: sample the counts, time out slow and idle clients, prune the pool."""
        self.stats.tick()
        now = self.loop.time()
        for connection in [c for c in self.connections if c.deadline < now]:
            connection.deadline_passed()
        self.pool.reap(self.config.upstream_idle_timeout)

    async def tick_forever(self) -> None:
        # Scheduled against the start, so the samples stay one second apart on average.
        next_tick = self.loop.time()
        while True:
            next_tick += 1.0
            await asyncio.sleep(max(0.0, next_tick - self.loop.time()))
            self.tick()

    async def drain(self, server: asyncio.AbstractServer) -> int:
        """Serve everything accepted so far, then return 0; 1 if the grace period ran out."""
        self.draining = True
        started = self.loop.time()
        log.info("draining: %d in flight, %d queued", self.gate.in_flight, self.gate.queued)
        for connection in list(self.connections):
            connection.drain()
        grace = self.config.grace_period
        if self.config.drain_delay:
            await asyncio.sleep(min(self.config.drain_delay, grace))
        server.close()
        if not self.connections:
            self._all_closed.set()
        remaining = max(0.0, grace - (self.loop.time() - started))
        try:
            await asyncio.wait_for(self._all_closed.wait(), remaining)
        except TimeoutError:
            log.error(  # noqa: TRY400 - no traceback: running out of time is not a bug
                "grace period of %gs over: cutting %d in flight and %d queued requests",
                grace,
                self.gate.in_flight,
                self.gate.queued,
            )
            for connection in list(self.connections):
                connection.abort()
            self.drained.set()
            return 1
        log.info("drained in %.3fs", self.loop.time() - started)
        self.drained.set()
        return 0


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "_body_start",
        "_buf",
        "_chunked",
        "_head",
        "_held",
        "_keep_alive",
        "_loop",
        "_method",
        "_paused",
        "_proxy",
        "_request",
        "_responded",
        "_retried",
        "_scan_from",
        "_seq",
        "_served",
        "_started",
        "_state",
        "_status",
        "_transport",
        "_upstream",
        "deadline",
    )

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self._loop = proxy.loop
        self._transport: asyncio.Transport | None = None
        self._state = _IDLE
        self._buf = bytearray()
        self._scan_from = 0
        self._head: RequestHead | None = None
        self._body_start = 0
        self._chunked: ChunkedRequestBody | None = None
        self._held = 0  # request bytes counted against the proxy's budget
        self._request: bytes | bytearray = b""
        self._method = b""
        self._keep_alive = True
        self._started = 0.0
        self._upstream: UpstreamConnection | None = None
        self._responded = False
        self._retried = False
        self._status = 0
        self._seq = 0
        self._served = 0
        self._paused = False
        self.deadline = 0.0

    # -- the client side ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast("asyncio.Transport", transport)
        proxy = self._proxy
        proxy.connections.add(self)
        idle = _DRAIN_IDLE_SECONDS if proxy.draining else proxy.config.idle_timeout
        self.deadline = self._loop.time() + idle

    def data_received(self, data: bytes) -> None:
        state = self._state
        if state <= _READING:
            self._buf += data
            self._parse()
        elif state < _CLOSED:
            # A client sending its next requests before this one is answered: count what they
            # hold, and hold off once they pass a head's worth.
            self._buf += data
            self._held += len(data)
            self._proxy.stats.buffered += len(data)
            if len(self._buf) > MAX_HEAD_BYTES and not self._paused:
                assert self._transport is not None
                self._paused = True
                self._transport.pause_reading()
        # Closed or lingering: the rest of a refused request, dropped.

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state in (_WAITING, _FORWARDING):
            self._drop_upstream()
            self._end_request(CLIENT_CLOSED)
        self._state = _CLOSED
        self._release()
        # Whatever half-received request it held goes now, not when the collector finds it.
        self._buf = bytearray()
        self._chunked = None
        self._proxy.connection_closed(self)

    def pause_writing(self) -> None:
        # The client reads the response slower than the predictor writes it: slow the predictor.
        upstream = self._upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        upstream = self._upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.resume_reading()

    def _parse(self) -> None:
        head = self._head or self._parse_head()
        if head is None:
            return
        request = self._take_request(head)
        if request is None:
            return
        self._head = None
        self._begin(head, request)

    def _parse_head(self) -> RequestHead | None:
        """The next request's head once it is all here (refused if it cannot be forwarded)."""
        buf = self._buf
        while buf.startswith(b"\r\n"):  # RFC 9112 section 2.2: ignore blank lines first
            del buf[:2]
        # Only a blank line within the limit ends a head: beyond it the head is too large,
        # whether it came in one read or in many.
        end = buf.find(b"\r\n\r\n", self._scan_from, MAX_HEAD_BYTES)
        if end < 0:
            self._head_incomplete(buf)
            return None
        body_start = end + 4
        try:
            head = parse_request_head(bytes(buf[:end]))
        except BadRequestError as error:
            self._refuse_error(error)
            return None
        proxy = self._proxy
        config = proxy.config
        limit = config.max_body_bytes
        if head.content_length > limit:
            self._refuse(413, "body too large")
            return None
        # A body counts whole from its head on, a chunked one as it is decoded: as _hold(),
        # without a call on the hot path.
        size = body_start if head.chunked else body_start + head.content_length
        stats = proxy.stats
        buffered = stats.buffered - self._held + size
        if buffered > config.max_buffered_bytes and size > self._held:
            self._refuse_over_budget()
            return None
        stats.buffered = buffered
        self._held = size
        self._head = head
        self._body_start = body_start
        self._scan_from = 0
        if head.expect_continue and (head.chunked or len(buf) < body_start + head.content_length):
            assert self._transport is not None
            self._transport.write(_CONTINUE)
        if head.chunked:
            self._chunked = ChunkedRequestBody(bytes(buf[:end]), limit)
            del buf[:body_start]
        return head

    def _head_incomplete(self, buf: bytearray) -> None:
        if len(buf) > MAX_HEAD_BYTES:
            self._refuse_error(oversized_head(buf))
        elif b"\n\n" in buf:  # a head ended with bare LFs would otherwise wait forever
            self._refuse(400, "bare LF in request head")
        elif buf:
            if not self._hold(len(buf)):
                self._refuse_over_budget()
                return
            self._scan_from = max(0, len(buf) - 3)
            self._reading()

    def _take_request(self, head: RequestHead) -> bytes | bytearray | None:
        """The whole request to forward, once its body is here; chunked ones get a length."""
        if self._chunked is not None:
            return self._take_chunked(self._chunked)
        buf = self._buf
        total = self._body_start + head.content_length
        size = len(buf)
        if size < total:
            self._reading()
            return None
        if total <= _COPIED_UP_TO:
            if size == total:
                request = bytes(buf)
                buf.clear()
            else:
                request = bytes(buf[:total])
                del buf[:total]
            return request
        # The buffer becomes the request; what came after it starts the next one.
        self._buf = buf[total:]
        del buf[total:]
        return buf

    def _take_chunked(self, chunked: ChunkedRequestBody) -> bytearray | None:
        buf = self._buf
        try:
            chunked.feed(buf)
        except BadRequestError as error:
            self._refuse_error(error)
            return None
        if not self._hold(chunked.size):
            self._refuse_over_budget()
            return None
        if not chunked.done:
            self._reading()
            return None
        self._chunked = None
        return chunked.request()

    def _reading(self) -> None:
        if self._state == _IDLE:
            self._state = _READING
            self.deadline = self._loop.time() + self._proxy.config.read_timeout

    def _hold(self, size: int) -> bool:
        """Count `size` bytes as what this connection holds; False, counting nothing new, if
        more than it held would take the proxy past its budget."""
        proxy = self._proxy
        stats = proxy.stats
        buffered = stats.buffered - self._held + size
        if buffered > proxy.config.max_buffered_bytes and size > self._held:
            return False
        stats.buffered = buffered
        self._held = size
        return True

    def _release(self) -> None:
        self._proxy.stats.buffered -= self._held
        self._held = 0

    def _refuse(self, status: int, reason: str, *, linger: bool = True) -> None:
        """Answer input the proxy will not forward, and close: the stream cannot be trusted."""
        self._proxy.stats.by_status[status] = self._proxy.stats.by_status.get(status, 0) + 1
        self._close_with(simple_response(status, error_body(reason), close=True), linger=linger)

    def _refuse_error(self, error: BadRequestError) -> None:
        self._refuse(error.status, str(error))

    def _refuse_over_budget(self) -> None:
        """Past the byte budget: a 503 like that of a full queue, and counted as one."""
        stats = self._proxy.stats
        stats.requests += 1
        stats.rejected += 1
        stats.finished(503, 0.0)
        self._close_with(self._proxy.over_budget_response, linger=True)

    def _close_with(self, response: bytes, *, linger: bool) -> None:
        """Answer and close. Lingering, the proxy sends its answer and its end of the stream,
        then drops what the client still sends until the client closes or `--read-timeout`
        passes: the time any request gets to arrive whole."""
        self._release()
        self._head = None
        self._chunked = None
        self._buf = bytearray()
        transport = self._transport
        assert transport is not None
        transport.write(response)
        if not linger:
            self._state = _CLOSED
            transport.close()
            return
        self._state = _LINGERING
        transport.write_eof()
        if self._paused:
            self._paused = False
            transport.resume_reading()
        self.deadline = self._loop.time() + self._proxy.config.read_timeout

    # -- one request ----------------------------------------------------------------------------

    def _begin(self, head: RequestHead, request: bytes | bytearray) -> None:
        proxy = self._proxy
        proxy.stats.requests += 1
        self._request = request
        self._method = head.method
        self._keep_alive = head.keep_alive
        self._responded = False
        self._retried = False
        self._started = now = self._loop.time()
        admission = proxy.gate.enter(self)
        if admission is Admission.REJECTED:
            self._state = _IDLE
            self._request = b""
            self._release()
            proxy.stats.rejected += 1
            proxy.stats.finished(503, 0.0)
            self._answer(proxy.busy_response)
            return
        proxy.timeouts.start(self, now)
        if admission is Admission.QUEUED:
            self._state = _WAITING
        else:  # admitted at once: what admitted() does, without a call on the hot path
            self._state = _FORWARDING
            self._forward()

    def admitted(self) -> None:
        self._state = _FORWARDING
        self._forward()

    def _forward(self, fresh: bool = False) -> None:
        upstream = None if fresh else self._proxy.pool.take()
        if upstream is not None:
            self._upstream = upstream
            upstream.send(self, self._request, self._method)
            return
        seq = self._seq
        self._proxy.pool.open(lambda connection: self._connected(seq, connection))

    def _connected(self, seq: int, upstream: UpstreamConnection | None) -> None:
        if seq != self._seq or self._state != _FORWARDING:
            if upstream is not None:  # the request ended meanwhile: keep the connection
                self._proxy.pool.put(upstream)
            return
        if upstream is None:
            self._fail()
            return
        self._upstream = upstream
        upstream.send(self, self._request, self._method)

    def timed_out(self) -> None:
        if self._state not in (_WAITING, _FORWARDING):
            return
        self._drop_upstream()
        self._end_request(504)
        if self._responded:  # the client has part of a response: only closing can tell it
            self.abort()
        else:
            self._answer(self._proxy.timeout_response)

    def _fail(self) -> None:
        self._end_request(502)
        if self._responded:
            self.abort()
        else:
            self._answer(self._proxy.bad_gateway_response)

    def _drop_upstream(self) -> None:
        upstream = self._upstream
        if upstream is not None:
            self._upstream = None
            upstream.abandon()

    def _end_request(self, status: int) -> None:
        proxy = self._proxy
        proxy.timeouts.end(self)
        state = self._state
        self._state = _IDLE
        self._seq += 1
        self._request = b""
        stats = proxy.stats
        stats.buffered -= self._held  # as _release(), without a call on the hot path
        self._held = 0
        if state == _FORWARDING:
            stats.served += 1
            proxy.gate.leave()
        elif state == _WAITING:
            proxy.gate.withdraw(self)
        stats.finished(status, self._loop.time() - self._started)

    def _answer(self, response: bytes) -> None:
        assert self._transport is not None
        self._transport.write(response)
        self._next()

    def _next(self) -> None:
        """After a response: close, or wait for (or start on) the next request."""
        self._served += 1
        transport = self._transport
        assert transport is not None
        if not self._keep_alive or self._proxy.draining:
            self._state = _CLOSED
            transport.close()
            return
        self.deadline = self._loop.time() + self._proxy.config.idle_timeout
        if self._paused:
            self._paused = False
            transport.resume_reading()
        if self._buf:
            self._parse()

    # -- the upstream's side (ferry.proxy.upstream.Exchange) ------------------------------------

    def relay_start(self, status: int, data: bytes, head_length: int, closes: bool) -> None:
        self._status = status
        self._responded = True
        if closes:
            self._keep_alive = False
        elif not self._keep_alive or self._proxy.draining:
            self._keep_alive = False
            data = with_connection_close(data[:head_length]) + data[head_length:]
        assert self._transport is not None
        self._transport.write(data)

    def relay(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    def relay_end(self) -> None:
        self._upstream = None
        self._end_request(self._status)
        self._next()

    def upstream_lost(self, replayable: bool) -> None:
        self._upstream = None
        if replayable and not self._retried:
            self._retried = True
            self._forward(fresh=True)
            return
        self._fail()

    # -- housekeeping ---------------------------------------------------------------------------

    def deadline_passed(self) -> None:
        if self._state in (_IDLE, _LINGERING):
            self._state = _CLOSED
            assert self._transport is not None
            self._transport.close()
        elif self._state == _READING:
            # No lingering: the client has had its time to send.
            self._refuse(408, "request not received in time", linger=False)

    def drain(self) -> None:
        """SIGTERM: a kept-alive connection between requests stays open through the drain delay,
        as clients may still send on it until the endpoint update reaches them (closing it now
        would race their next request), and its next answer closes it; a fresh one gets a
        moment."""
        now = self._loop.time()
        if self._state == _IDLE:
            delay = self._proxy.config.drain_delay
            if not self._served:
                self.deadline = min(self.deadline, now + _DRAIN_IDLE_SECONDS)
            elif delay:
                self.deadline = min(self.deadline, now + delay)
            else:
                self.deadline_passed()
        elif self._state == _LINGERING:  # its answer is sent: it only waits for the client
            self.deadline = min(self.deadline, now + _DRAIN_IDLE_SECONDS)

    def abort(self) -> None:
        # A request still holding a slot keeps its state: connection_lost gives the slot back.
        if self._state not in (_WAITING, _FORWARDING):
            self._state = _CLOSED
        if self._transport is not None:
            self._transport.abort()
