"""Waiting for a condition, with a deadline and a message that says what never happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(TimeoutError):
    """The condition did not hold in time; the message names it and the last thing seen."""


def _message(what: str, timeout: float, last: object) -> str:
    detail = f"; last seen: {last!r}" if last is not None else ""
    return f"timed out after {timeout:g}s waiting for {what}{detail}"


def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1
) -> T:
    """Call `check` until it returns something truthy and return that.

    Exceptions from `check` count as "not yet"; the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
        except Exception as error:  # noqa: BLE001 - "not yet", reported if it never clears
            last = error
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(_message(what, timeout, last))
        time.sleep(interval)


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float, what: str, interval: float = 0.1
) -> T:
    """The asyncio twin of `wait_until`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = None
    while True:
        try:
            result = await check()
        except Exception as error:  # noqa: BLE001 - "not yet", reported if it never clears
            last = error
        else:
            if result:
                return result
            last = result
        if loop.time() >= deadline:
            raise WaitTimeoutError(_message(what, timeout, last))
        await asyncio.sleep(interval)
