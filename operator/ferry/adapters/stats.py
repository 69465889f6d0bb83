"""Reading each ready pod's demand and offered load from its proxy's /stats (ferry.proxy.admin).

`pod_figures` is pure: the JSON in; queued + in-flight requests, the offered load, and
requests in service and served per second out. `StatsScraper` does the HTTP for every API:
one kept-open connection per pod, a short timeout per pod, and one semaphore that caps scrapes
in flight across all APIs, so a thousand APIs ticking together cannot open thousands of
sockets at once. A pod that does not answer, or answers nonsense, is None: its demand is
unknown, which is not the same as zero.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from ferry import names
from ferry.autoscaling import offered_load
from ferry.proxy.http import (
    BODY_LENGTH,
    MAX_HEAD_BYTES,
    BadResponseError,
    ResponseHead,
    parse_response_head,
)

_KEEP_ALIVE = 15.0
"""Seconds a pod's connection is kept idle between scrapes; the proxy keeps it 30 s."""
_MAX_BODY = 64 * 1024

STATS_FORMAT_VERSION = 1
"""The /stats format this parser reads (ferry.proxy.stats.FORMAT_VERSION)."""


class StatsFormatError(ValueError):
    """The body is not the proxy's /stats in a format this operator reads."""


def _count(value: Any, field: str) -> float:
    # Python's json reads NaN and Infinity, which no count is.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise StatsFormatError(f"{field} is not a count: {value!r}")
    return float(value)


def _sampled_window(stats: Any, tick: float) -> Mapping[str, Any] | None:
    """The averaging window with samples closest in length to `tick` (the shorter of two as
    close), or None before the proxy's first sample; anything but the proxy's /stats is a
    StatsFormatError.

    It is the proxy's average of its one-second samples over about the time since the previous
    tick: every second is seen once, and none is seen late.
    """
    if not isinstance(stats, Mapping):
        raise StatsFormatError(f"expected a JSON object, got {type(stats).__name__}")
    if stats.get("version") != STATS_FORMAT_VERSION:
        raise StatsFormatError(f"unknown stats version {stats.get('version')!r}")
    windows = stats.get("windows")
    if not isinstance(windows, list) or not all(isinstance(w, Mapping) for w in windows):
        raise StatsFormatError("windows is not a list of objects")
    sampled: list[Mapping[str, Any]] = [
        w for w in windows if _count(w.get("samples"), "windows[].samples") > 0
    ]
    if not sampled:
        return None

    def fit(window: Mapping[str, Any]) -> tuple[float, float]:
        seconds = _count(window.get("seconds"), "windows[].seconds")
        return abs(seconds - tick), seconds

    return min(sampled, key=fit)


@dataclass(frozen=True)
class PodFigures:
    """What one pod's /stats says, averaged over the window closest to the operator's tick."""

    demand: float
    """Queued + in-flight requests."""
    offered: float | None
    """The offered load (ferry.autoscaling.offered_load); None from a proxy that does not count
    requests served."""
    service: tuple[float, float] | None
    """Requests in service and requests served per second, from which the service time follows
    by Little's law; None before the proxy's first sample, and as for `offered`."""


def pod_figures(stats: Any, tick: float = 0.0) -> PodFigures:
    """One pod's figures from its /stats document, averaged over the window with samples
    closest to `tick` seconds, the operator's interval between ticks (0: the shortest).

    A proxy that has not taken a sample yet (its first second) has only its current counts,
    which stand in for its demand; it has served nothing it could have timed, so its demand
    also stands in for its offered load, as offered_load() has it for a window in which
    nothing was served.
    """
    window = _sampled_window(stats, tick)
    if window is None:
        demand = _count(stats.get("inFlight"), "inFlight") + _count(stats.get("queued"), "queued")
        if "servedTotal" not in stats:
            return PodFigures(demand, None, None)
        _count(stats["servedTotal"], "servedTotal")
        return PodFigures(demand, demand, None)
    in_flight = _count(window.get("inFlight"), "windows[].inFlight")
    demand = in_flight + _count(window.get("queued"), "windows[].queued")
    if "received" not in window and "served" not in window:
        return PodFigures(demand, None, None)
    served = _count(window.get("served"), "windows[].served")
    offered = offered_load(
        _count(window.get("received"), "windows[].received"), served, in_flight, demand
    )
    return PodFigures(demand, offered, (in_flight, served))


@dataclass(frozen=True)
class PodAnswer:
    pod: str
    demand: float | None
    """None: the pod did not answer in time, or not with stats; see `error`."""
    error: str | None = None
    offered: float | None = None
    """None: not known (no answer, or a proxy that does not count requests served)."""
    service: tuple[float, float] | None = None
    """(in flight, served per second), as PodFigures.service; None when not known."""


class StatsHttpError(ValueError):
    """The proxy's answer is not a 200 with a Content-Length body, as its admin port sends."""


class _Connection(asyncio.Protocol):
    """One kept-open connection to one proxy's admin port: one GET at a time.

    The admin port answers every request with a status line, a few fields and a
    Content-Length body (ferry.proxy.admin); that is all this client reads. A general client's
    request building and response objects cost more per scrape than the answer itself, and a
    thousand APIs ticking every second make a thousand scrapes a second.
    """

    transport: asyncio.Transport
    """Set on connecting, before create_connection() hands the connection over."""

    def __init__(self) -> None:
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._head: ResponseHead | None = None
        self._answer: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(ConnectionResetError("the proxy closed the connection"))

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            # Bytes nobody asked for: what follows on this connection cannot be trusted.
            self.close()
            return
        self._buffer += data
        try:
            body = self._body()
        except (BadResponseError, StatsHttpError) as error:
            self._answer.set_exception(StatsHttpError(str(error)))
            self.close()
            return
        if body is not None:
            self._answer.set_result(body)

    def _body(self) -> bytes | None:
        """The body once the whole response is in; None until then."""
        buffer = self._buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise StatsHttpError("response head too long")
                return None
            head = parse_response_head(bytes(buffer[:end]), b"GET")
            if head.status != HTTPStatus.OK:
                raise StatsHttpError(f"HTTP {head.status}")
            if head.framing != BODY_LENGTH or head.length > _MAX_BODY:
                raise StatsHttpError("not a body with a Content-Length of at most 64 KiB")
            del buffer[: end + 4]
            self._head = head
        if len(buffer) < self._head.length:
            return None
        if len(buffer) > self._head.length:
            raise StatsHttpError("more bytes than the Content-Length")
        if not self._head.keep_alive:
            self.close()
        return bytes(buffer)

    async def get(self, request: bytes) -> bytes:
        self._buffer.clear()
        self._head = None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._answer

    def close(self) -> None:
        self.closed = True
        self.transport.close()


class StatsScraper:
    """Scrapes proxies' /stats; one per operator, shared by every API's tick."""

    def __init__(
        self,
        *,
        concurrency: int,
        timeout: float,
        tick: float = 0.0,
        port: int = names.PROXY_ADMIN_PORT,
    ) -> None:
        # Each pod's connection is kept from tick to tick, idle for less time than the proxy
        # keeps it (ferry.proxy.admin.KEEP_ALIVE_TIMEOUT), so this end closes first and never
        # sends a request into a connection the proxy is closing.
        self._idle: dict[str, _Connection] = {}
        self._swept = 0.0
        self._closed = False
        self._slots = asyncio.Semaphore(concurrency)
        self._port, self._timeout, self._tick = port, timeout, tick

    async def close(self) -> None:
        self._closed = True
        for connection in self._idle.values():
            connection.close()
        self._idle.clear()

    async def scrape(self, pods: Sequence[tuple[str, str]]) -> list[PodAnswer]:
        """Each (pod name, pod IP)'s demand, concurrently, in the order given."""
        self._sweep(time.monotonic())
        if len(pods) == 1:
            # An API at its minimum of one pod would pay more for a task and a gather than for
            # the scrape itself.
            return [await self._one(*pods[0])]
        return list(await asyncio.gather(*(self._one(name, ip) for name, ip in pods)))

    async def _one(self, pod: str, ip: str) -> PodAnswer:
        # The semaphore is the cap across all APIs, taken before the timeout starts, so that a
        # busy operator's queue of scrapes does not make live pods look dead.
        async with self._slots:
            if self._closed:
                # The operator is shutting down while a tick is still in flight.
                return PodAnswer(pod, None, "the operator is stopping")
            try:
                async with asyncio.timeout(self._timeout):
                    body = await self._get(ip)
                figures = pod_figures(json.loads(body), self._tick)
                return PodAnswer(
                    pod, figures.demand, offered=figures.offered, service=figures.service
                )
            except TimeoutError:
                return PodAnswer(pod, None, f"no answer within {self._timeout:g}s")
            except (OSError, ValueError) as error:
                return PodAnswer(pod, None, f"{type(error).__name__}: {error}")

    async def _get(self, ip: str) -> bytes:
        connection = self._idle.pop(ip, None)
        if connection is None or connection.closed:
            _, connection = await asyncio.get_running_loop().create_connection(
                _Connection, ip, self._port
            )
        host = f"[{ip}]" if ":" in ip else ip
        try:
            body = await connection.get(
                f"GET /stats HTTP/1.1\r\nHost: {host}:{self._port}\r\n\r\n".encode()
            )
        except BaseException:
            connection.close()
            raise
        if not connection.closed and not self._closed:
            connection.idle_since = time.monotonic()
            if self._idle.setdefault(ip, connection) is not connection:
                connection.close()  # another scrape of the address kept its own
        return body

    def _sweep(self, now: float) -> None:
        """Close connections idle for longer than the keep-alive: their pods are gone, or no
        longer scraped."""
        if now - self._swept < _KEEP_ALIVE:
            return
        self._swept = now
        for ip, connection in list(self._idle.items()):
            if connection.closed or now - connection.idle_since > _KEEP_ALIVE:
                connection.close()
                del self._idle[ip]
