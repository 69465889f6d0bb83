"""How services report what they did, without knowing who posts the Kubernetes Events."""

from __future__ import annotations

from typing import Protocol


class Recorder(Protocol):
    def __call__(self, kind: str, reason: str, message: str) -> None:
        """kind is "Normal" or "Warning", as in a Kubernetes Event."""
