"""The proxy's /stats: the document its admin port serves and the operator's scraper reads.

The proxy (ferry.proxy.stats, ferry.proxy.admin) writes a `StatsDocument` with `encode`. The
scraper (ferry.adapters.stats) sends `request`, takes the answer's bytes through an
`AnswerReader`, and reads the body with `decode`, which is pure: the body in, the load of the
window closest to the scraper's tick out.

VERSION changes only when a field changes meaning or goes away: fields are only ever added
within a version, and a reader ignores those it does not know. The fields marked NotRequired
came within version 1, so `decode` reads a document without them: during an upgrade the
operator scrapes proxies older than itself, and such a proxy does not count requests served.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import NotRequired, TypedDict, cast

VERSION = 1

MAX_HEAD_BYTES = 64 * 1024
"""The longest answer head the scraper waits for; an admin port's is about a hundred bytes."""
MAX_BODY_BYTES = 64 * 1024
"""The largest /stats body the scraper takes; a proxy's, with its windows, is well under 1 KiB."""


class WindowDocument(TypedDict):
    """One averaging window: the means of the proxy's last `seconds` one-second samples."""

    seconds: int
    samples: int
    """One-second samples held so far: fewer than `seconds` just after the proxy started."""
    inFlight: float
    queued: float
    received: NotRequired[float]
    """Requests received per second, as requestsTotal counts them (rejected ones included)."""
    served: NotRequired[float]
    """Requests per second that held a slot and ended, as servedTotal counts them."""


class StatsDocument(TypedDict):
    """The /stats document; docs/proxy.md says what each field means."""

    version: int
    startTime: float
    uptimeSeconds: float
    draining: bool
    maxConcurrency: int
    maxQueueLength: int
    inFlight: int
    queued: int
    requestsTotal: int
    rejectedTotal: int
    servedTotal: NotRequired[int]
    bufferedBytes: NotRequired[int]
    windows: list[WindowDocument]


def encode(document: StatsDocument) -> bytes:
    """The body the admin port sends: compact JSON."""
    return json.dumps(document, separators=(",", ":")).encode()


class StatsFormatError(ValueError):
    """The body is not the proxy's /stats in a format this operator reads."""


@dataclass(frozen=True, slots=True)
class Averages:
    """A pod's load averaged over one window of its proxy's one-second samples."""

    in_flight: float
    queued: float
    received: float | None
    """Requests received per second; None, as `served`, from a proxy older than the two."""
    served: float | None


@dataclass(frozen=True, slots=True)
class Counts:
    """A pod's load before its proxy's first one-second sample: its counts at that instant."""

    in_flight: float
    queued: float
    served_total: float | None
    """None from a proxy older than the field, which does not count requests served."""


def decode(body: bytes, tick: float = 0.0) -> Averages | Counts:
    """The load a /stats body gives, averaged over the window with samples closest in length
    to `tick` (the shorter of two as close), the operator's seconds between ticks (0: the
    shortest window); before the proxy's first sample, its counts.

    That window's averages cover about the time since the previous tick: every second is seen
    once, and none late. Only the fields read are checked: anything in them but counts, and
    anything but a JSON object of this version with a list of windows, is a StatsFormatError.
    """
    document = json.loads(body)
    if not isinstance(document, dict):
        raise StatsFormatError(f"expected a JSON object, got {type(document).__name__}")
    stats = cast(StatsDocument, document)
    if stats.get("version") != VERSION:
        raise StatsFormatError(f"unknown stats version {stats.get('version')!r}")
    windows = stats.get("windows")
    if not isinstance(windows, list) or not all(isinstance(w, dict) for w in windows):
        raise StatsFormatError("windows is not a list of objects")
    sampled = [w for w in windows if _count(w.get("samples"), "windows[].samples") > 0]
    if not sampled:
        served_total = stats.get("servedTotal")
        return Counts(
            _count(stats.get("inFlight"), "inFlight"),
            _count(stats.get("queued"), "queued"),
            None if "servedTotal" not in stats else _count(served_total, "servedTotal"),
        )

    def fit(window: WindowDocument) -> tuple[float, float]:
        seconds = _count(window.get("seconds"), "windows[].seconds")
        return abs(seconds - tick), seconds

    window = min(sampled, key=fit)
    in_flight = _count(window.get("inFlight"), "windows[].inFlight")
    queued = _count(window.get("queued"), "windows[].queued")
    if "received" not in window and "served" not in window:
        return Averages(in_flight, queued, None, None)
    served = _count(window.get("served"), "windows[].served")
    return Averages(in_flight, queued, _count(window.get("received"), "windows[].received"), served)


def _count(value: object, field: str) -> float:
    # Python's json reads NaN and Infinity, which no count is.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise StatsFormatError(f"{field} is not a count: {value!r}")
    return float(value)


def request(ip: str, port: int) -> bytes:
    """The scraper's GET of /stats from the admin port at `ip`."""
    host = f"[{ip}]" if ":" in ip else ip
    return f"GET /stats HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


class StatsHttpError(ValueError):
    """The answer is not a 200 with a Content-Length body, as an admin port sends."""


class AnswerReader:
    """One answer to `request` as its bytes arrive.

    The admin port answers every request with a status line, a few fields and a Content-Length
    body (ferry.proxy.admin); that is all this reads, and anything else is a StatsHttpError. A
    general client's response objects cost more per scrape than the answer itself, and a
    thousand APIs ticking every second make a thousand scrapes a second.
    """

    __slots__ = ("_buffer", "_length", "keep_alive")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._length = -1
        """The body's, once the head is in."""
        self.keep_alive = True
        """Whether the connection may carry the next request, once the head is in."""

    def feed(self, data: bytes) -> bytes | None:
        """The body once the whole answer is in; None until then."""
        buffer = self._buffer
        buffer += data
        if self._length < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise StatsHttpError("response head too long")
                return None
            self._length, self.keep_alive = _answer_head(bytes(buffer[:end]))
            del buffer[: end + 4]
        if len(buffer) < self._length:
            return None
        if len(buffer) > self._length:
            raise StatsHttpError("more bytes than the Content-Length")
        return bytes(buffer)


def _answer_head(head: bytes) -> tuple[int, bool]:
    """The body's length and whether the connection stays open, from an answer's head (given
    without its blank line) that is a 200 with a Content-Length of at most MAX_BODY_BYTES."""
    status_line, *fields = head.split(b"\r\n")
    version = status_line[:9]
    if version not in (b"HTTP/1.1 ", b"HTTP/1.0 ") or not status_line[9:12].isdigit():
        raise StatsHttpError(f"malformed status line {status_line[:40]!r}")
    keep_alive = version == b"HTTP/1.1 "
    length = -1
    chunked = False
    for field in fields:
        name, colon, value = field.partition(b":")
        name = name.lower() if colon else b""
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise StatsHttpError("malformed Content-Length") from None
        elif name == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
    status = int(status_line[9:12])
    if status != HTTPStatus.OK:
        raise StatsHttpError(f"HTTP {status}")
    if chunked or not 0 <= length <= MAX_BODY_BYTES:
        raise StatsHttpError("not a body with a Content-Length of at most 64 KiB")
    return length, keep_alive
