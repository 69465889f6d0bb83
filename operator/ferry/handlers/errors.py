"""From the project's error types to kopf's retry semantics, with an Event for the user."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import kopf

from ferry.adapters.kube import RejectedError, TemporaryKubeError

T = TypeVar("T")
MAX_BACKOFF = 60.0


def backoff(retry: int) -> float:
    """1, 2, 4, … seconds, at most a minute: quick recovery from a blip, no storm in an outage."""
    return min(MAX_BACKOFF, 2.0**retry)


async def guarded(body: Any, retry: int, work: Awaitable[T]) -> T:
    try:
        return await work
    except TemporaryKubeError as error:
        kopf.warn(body, reason="Retrying", message=f"{error}; retrying in {backoff(retry):g}s")
        raise kopf.TemporaryError(str(error), delay=backoff(retry)) from error
    except RejectedError as error:
        kopf.warn(body, reason="Rejected", message=str(error))
        raise kopf.PermanentError(str(error)) from error
