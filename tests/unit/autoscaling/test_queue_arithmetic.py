"""The queues' arithmetic: the scale-down floor and the overload rule, by hand."""

from __future__ import annotations

import pytest

from ferry.autoscaling import AutoscalingPolicy, WindowAverage
from ferry.autoscaling.queues import Overload, floor_replicas, overload

# 4 at once and 100 queued per replica, half of each queue counted on.
POLICY = AutoscalingPolicy(target_in_flight=2.8, max_concurrency=4, max_queue_length=100)


def window(offered: float, demand: float, in_flight: float, service: float | None) -> WindowAverage:
    return WindowAverage(
        demand=demand,
        samples=3,
        partial=False,
        offered=offered,
        offered_peak=offered,
        in_flight=in_flight,
        service_time=service,
    )


def test_the_floor_counts_on_the_allowed_queue_for_one_start_up_delay() -> None:
    # Per replica: 4 in service + 0.5 x 100 queued x 0.25 s / 30 s = 4.42 of load; 50 needs 12.
    assert floor_replicas(POLICY, 50.0, service=0.25, startup=30.0) == 12
    # Counting the whole queue: 4.83 per replica, 11 of them, which queues fill in 30 s exactly.
    whole = AutoscalingPolicy(target_in_flight=2.8, queue_allowance=1.0)
    assert floor_replicas(whole, 50.0, service=0.25, startup=30.0) == 11


def test_a_slower_start_leaves_the_queues_less_to_absorb() -> None:
    assert floor_replicas(POLICY, 50.0, service=0.25, startup=120.0) == 13


def test_without_a_service_time_the_floor_is_the_load_at_full_concurrency() -> None:
    assert floor_replicas(POLICY, 50.0, service=None, startup=30.0) == 13
    assert floor_replicas(POLICY, 0.0, service=0.25, startup=30.0) == 0


def test_replicas_that_keep_up_are_not_overloaded_but_keep_what_the_load_needs() -> None:
    # 10 of load on 3 replicas serving 12 at once: the queues do not grow.
    assert overload(POLICY, window(10.0, 10.0, 10.0, 0.25), ready=3, startup=30.0) == Overload(
        ask=0, keep=3
    )


def test_queues_that_fill_before_a_pod_starts_ask_for_more_at_once() -> None:
    # 20 of load on 2 replicas serving 8: the excess of 12 in flight is 48 requests a second,
    # and the 200 queue places (40 taken) fill in 3.3 s, long before a 30 s start-up.
    result = overload(POLICY, window(20.0, 48.0, 8.0, 0.25), ready=2, startup=30.0)
    # What carries the 20 and drains the 40 queued within a start-up: (20 + 40 x 0.25 / 30) / 4.
    assert result == Overload(ask=6, keep=6)


def test_queues_that_outlast_a_start_up_do_not_ask_but_keep() -> None:
    # 50 of load on 12 replicas serving 48: 8 requests a second fill 1200 places in 150 s.
    result = overload(POLICY, window(50.0, 48.0, 48.0, 0.25), ready=12, startup=30.0)
    assert result == Overload(ask=0, keep=13)


@pytest.mark.parametrize(
    "average",
    [
        window(20.0, 48.0, 8.0, None),
        WindowAverage(demand=48.0, samples=3, partial=False, offered=20.0),
        WindowAverage(demand=48.0, samples=3, partial=False),
    ],
)
def test_without_the_proxys_figures_there_is_no_overload(average: WindowAverage) -> None:
    assert overload(POLICY, average, ready=2, startup=30.0) == Overload(ask=0, keep=0)


def test_a_window_that_served_nothing_borrows_the_stable_service_time() -> None:
    stuck = window(20.0, 48.0, 8.0, None)
    assert overload(POLICY, stuck, ready=2, startup=30.0, service_fallback=0.25).ask == 6
