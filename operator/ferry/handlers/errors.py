"""From the project's error types to kopf's retry semantics, with an Event for the user."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import kopf

from ferry.adapters.aws import AwsTemporaryError
from ferry.adapters.kube import RejectedError, TemporaryKubeError
from ferry.services.retry import RetryLaterError, backoff

T = TypeVar("T")


async def guarded(body: Any, retry: int, work: Awaitable[T]) -> T:
    try:
        return await work
    except (TemporaryKubeError, AwsTemporaryError) as error:
        kopf.warn(body, reason="Retrying", message=f"{error}; retrying in {backoff(retry):g}s")
        raise kopf.TemporaryError(str(error), delay=backoff(retry)) from error
    except RetryLaterError as error:
        # Already reported in status and an Event; look again when the service asks.
        raise kopf.TemporaryError(str(error), delay=error.delay) from error
    except RejectedError as error:
        kopf.warn(body, reason="Rejected", message=str(error))
        raise kopf.PermanentError(str(error)) from error
