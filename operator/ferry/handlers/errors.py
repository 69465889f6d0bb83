"""From the project's error types to kopf's retry semantics, with an Event for the user."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import kopf

from ferry.adapters.aws import AwsTemporaryError
from ferry.adapters.kube import RejectedError, TemporaryKubeError
from ferry.services.reconcile import WaitingForModelError

T = TypeVar("T")
MAX_BACKOFF = 60.0


def backoff(retry: int) -> float:
    """1, 2, 4, … seconds, at most a minute: quick recovery from a blip, no storm in an outage.
    A missing model starts at 4 s: an upload takes a while."""
    return min(MAX_BACKOFF, 2.0**retry)


async def guarded(body: Any, retry: int, work: Awaitable[T]) -> T:
    try:
        return await work
    except (TemporaryKubeError, AwsTemporaryError) as error:
        kopf.warn(body, reason="Retrying", message=f"{error}; retrying in {backoff(retry):g}s")
        raise kopf.TemporaryError(str(error), delay=backoff(retry)) from error
    except WaitingForModelError as error:
        # Already reported in status and an Event; look again until the model is there.
        raise kopf.TemporaryError(str(error), delay=backoff(retry + 2)) from error
    except RejectedError as error:
        kopf.warn(body, reason="Rejected", message=str(error))
        raise kopf.PermanentError(str(error)) from error
