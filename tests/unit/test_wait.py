"""Waiting for conditions: the value comes back, and a timeout says what never happened."""

from __future__ import annotations

import itertools

import pytest

from ferry_local.wait import WaitTimeoutError, eventually, wait_until


def test_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert (
        wait_until(lambda: next(counter) >= 3 and "done", timeout=5, what="x", interval=0) == "done"
    )


def test_a_timeout_names_the_condition_and_the_last_error() -> None:
    def failing() -> bool:
        raise ConnectionRefusedError("port closed")

    with pytest.raises(WaitTimeoutError, match=r"waiting for the server.*port closed"):
        wait_until(failing, timeout=0.2, what="the server", interval=0.01)


def test_a_falsy_value_is_not_yet() -> None:
    with pytest.raises(WaitTimeoutError, match="last seen: 0"):
        wait_until(lambda: 0, timeout=0.1, what="zero to turn truthy", interval=0.01)


async def test_the_async_twin_behaves_alike() -> None:
    counter = itertools.count()

    async def check() -> int | None:
        value = next(counter)
        return value if value >= 2 else None

    assert await eventually(check, timeout=5, what="x", interval=0) == 2
    with pytest.raises(WaitTimeoutError, match="never"):

        async def never() -> None:
            return None

        await eventually(never, timeout=0.1, what="never", interval=0.01)
