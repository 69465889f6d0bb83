"""Reading each ready pod's demand and offered load from its proxy's /stats (ferry.proxy.admin).

`pod_figures` is pure: the JSON in; queued + in-flight requests, the offered load, and
requests in service and served per second out. `StatsScraper` does the HTTP: one shared
aiohttp session for every API, a short timeout per pod, and one semaphore that caps scrapes in
flight across all APIs, so a thousand APIs ticking together cannot open thousands of sockets
at once. A pod that does not answer, or answers nonsense, is None: its demand is unknown, which
is not the same as zero.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from ferry import names
from ferry.autoscaling import offered_load

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
        # The semaphore is the cap; the connector's own limit would queue requests inside the
        # timeout and make a busy operator look like dead pods. Each pod's connection is kept
        # from tick to tick, for less time than the proxy keeps it (ferry.proxy.admin
        # .KEEP_ALIVE_TIMEOUT), so this end closes first and never reuses a closing connection.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, keepalive_timeout=15),
            timeout=aiohttp.ClientTimeout(total=timeout),
            raise_for_status=True,
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._port, self._timeout, self._tick = port, timeout, tick

    async def close(self) -> None:
        await self._session.close()

    async def scrape(self, pods: Sequence[tuple[str, str]]) -> list[PodAnswer]:
        """Each (pod name, pod IP)'s demand, concurrently, in the order given."""
        return list(await asyncio.gather(*(self._one(name, ip) for name, ip in pods)))

    async def _one(self, pod: str, ip: str) -> PodAnswer:
        async with self._slots:
            if self._session.closed:
                # The operator is shutting down while a tick is still in flight.
                return PodAnswer(pod, None, "the operator is stopping")
            try:
                host = f"[{ip}]" if ":" in ip else ip
                async with self._session.get(f"http://{host}:{self._port}/stats") as response:
                    body = await response.read()
                figures = pod_figures(json.loads(body), self._tick)
                return PodAnswer(
                    pod, figures.demand, offered=figures.offered, service=figures.service
                )
            except TimeoutError:
                return PodAnswer(pod, None, f"no answer within {self._timeout:g}s")
            except (aiohttp.ClientError, OSError, ValueError) as error:
                return PodAnswer(pod, None, f"{type(error).__name__}: {error}")
