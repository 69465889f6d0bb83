"""The restart back-off: immediate, then doubling from the base to the cap; a long run resets it."""

from __future__ import annotations

from ferry_local.agent.backoff import BackOff, BackOffPolicy


def test_the_first_restart_is_immediate_then_the_delay_doubles_to_the_cap() -> None:
    backoff = BackOff(BackOffPolicy())
    assert [backoff.next_delay(1.0) for _ in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]


def test_a_container_that_ran_long_enough_starts_over() -> None:
    backoff = BackOff(BackOffPolicy(base=1, cap=8, reset_after=60))
    assert [backoff.next_delay(1.0) for _ in range(4)] == [0, 1, 2, 4]
    assert backoff.next_delay(60.0) == 0
    assert backoff.next_delay(1.0) == 1
