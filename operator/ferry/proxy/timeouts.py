"""Request timeouts on one timer.

Every request gets the same number of seconds from its start, so deadlines come due in the order
requests started: kept in that order, the earliest pending one is first, and a single timer set
for it serves them all. Starting or ending a request is then a dict operation; a timer of its
own would cost several microseconds on each (a fifth of the proxy's Python work per request).
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Expiring(Protocol):
    def timed_out(self) -> None:
        """The request's deadline passed before it ended."""


class Timeouts:
    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._loop = loop
        self._seconds = seconds
        # Insertion order is deadline order: every deadline is start time + the same seconds.
        self._pending: dict[Expiring, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def start(self, request: Expiring, now: float) -> None:
        deadline = now + self._seconds
        self._pending[request] = deadline
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._expire)

    def end(self, request: Expiring) -> None:
        self._pending.pop(request, None)

    def _expire(self) -> None:
        now = self._loop.time()
        pending = self._pending
        expired = []
        for request, deadline in pending.items():
            if deadline > now:
                break
            expired.append(request)
        for request in expired:
            del pending[request]
        # Set before the callbacks run, which may start requests (with later deadlines).
        self._timer = None
        if pending:
            self._timer = self._loop.call_at(next(iter(pending.values())), self._expire)
        for request in expired:
            request.timed_out()
