"""When to look again at something that did not work yet, and how a service asks for it."""

from __future__ import annotations

MAX_BACKOFF = 60.0


def backoff(retry: int) -> float:
    """1, 2, 4, … seconds, at most a minute: quick recovery from a blip, no storm in an outage."""
    return min(MAX_BACKOFF, 2.0**retry)


class RetryLaterError(Exception):
    """The reconcile could not finish and has already said why in the status and an Event: run
    it again in `delay` seconds (nothing else would: the cause may go away without a watch
    event, as a foreign object deleted or S3 answering again)."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay
