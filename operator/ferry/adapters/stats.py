"""Reading each ready pod's figures from its proxy's /stats (ferry.wire.stats).

`pod_figures` is pure: a decoded /stats in; the pod's record for the autoscaler out
(ferry.autoscaling.PodFigures: queued + in-flight requests, the offered load, and requests in
service and served per second). `StatsScraper` does the HTTP for every API: one kept-open
connection per pod, a short timeout per pod, and one semaphore that caps scrapes in flight
across all APIs, so a thousand APIs ticking together cannot open thousands of sockets at once.
A pod that does not answer, or answers nonsense, has no figures: its demand is unknown, which is
not the same as zero.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from ferry import names
from ferry.autoscaling import PodFigures, offered_load
from ferry.wire.stats import (
    AnswerReader,
    Averages,
    Counts,
    StatsHttpError,
    decode,
    request,
)

_KEEP_ALIVE = 15.0
"""Seconds a pod's connection is kept idle between scrapes; the proxy keeps it 30 s."""


def pod_figures(load: Averages | Counts) -> PodFigures:
    """One pod's figures from its /stats, read over the window closest to the operator's tick
    (ferry.wire.stats.decode).

    A proxy that has not taken a sample yet (its first second) has only its current counts,
    which stand in for its demand; it has served nothing it could have timed, so its demand
    also stands in for its offered load, as offered_load() has it for a window in which
    nothing was served.
    """
    demand = load.in_flight + load.queued
    if isinstance(load, Counts):
        return PodFigures(demand, None if load.served_total is None else demand)
    if load.received is None or load.served is None:
        return PodFigures(demand)
    offered = offered_load(load.received, load.served, load.in_flight, demand)
    return PodFigures(demand, offered, load.in_flight, load.served)


@dataclass(frozen=True, slots=True)
class PodAnswer:
    pod: str
    figures: PodFigures | None
    """None: the pod did not answer in time, or not with stats; see `error`."""
    error: str | None = None


class _Connection(asyncio.Protocol):
    """One kept-open connection to one proxy's admin port: one GET at a time, its answer read
    by a ferry.wire.stats.AnswerReader."""

    transport: asyncio.Transport
    """Set on connecting, before create_connection() hands the connection over."""

    def __init__(self) -> None:
        self.closed = False
        self.idle_since = 0.0
        self._reader = AnswerReader()
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
        try:
            body = self._reader.feed(data)
        except StatsHttpError as error:
            self._answer.set_exception(error)
            self.close()
            return
        if body is not None:
            if not self._reader.keep_alive:
                self.close()
            self._answer.set_result(body)

    async def get(self, message: bytes) -> bytes:
        self._reader = AnswerReader()
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(message)
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
        """Each (pod name, pod IP)'s figures, concurrently, in the order given."""
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
                return PodAnswer(pod, pod_figures(decode(body, self._tick)))
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
        try:
            body = await connection.get(request(ip, self._port))
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
