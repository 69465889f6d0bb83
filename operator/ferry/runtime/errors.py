"""Errors a predictor raises on purpose, and how they reach the client."""

from __future__ import annotations

from http import HTTPStatus


class PredictorError(Exception):
    """A prediction refused or failed with a status the client should see (default 400)."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        if not 400 <= status <= 599:  # noqa: PLR2004 - an error is a 4xx or 5xx
            raise ValueError(f"an error status is 4xx or 5xx, got {status}")
        self.status = status


class LoadError(Exception):
    """The predictor class could not be found or built."""
