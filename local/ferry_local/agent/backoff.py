"""The kubelet's restart back-off: the first restart is immediate, then 10 s doubling to 5 min.

A container that ran for 10 minutes before it stopped starts over at no delay. Image pulls back
off the same way. The base is configurable so tests see several restarts in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackOffPolicy:
    base: float = 10.0
    """Delay before the second restart; each later one doubles it."""
    cap: float = 300.0
    """The longest delay."""
    reset_after: float = 600.0
    """A container that ran at least this long is treated as healthy again."""


class BackOff:
    """The delays before the restarts of one container."""

    def __init__(self, policy: BackOffPolicy) -> None:
        self.policy = policy
        self.failures = 0

    def next_delay(self, ran_for: float) -> float:
        """Delay before the next start, after a run of `ran_for` seconds ended."""
        if ran_for >= self.policy.reset_after:
            self.failures = 0
        self.failures += 1
        if self.failures == 1:
            return 0.0
        return float(min(self.policy.base * 2 ** (self.failures - 2), self.policy.cap))
