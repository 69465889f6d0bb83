"""decide(): what demand, replicas and recent history make of the replicas, and why."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferry.autoscaling import (
    AutoscalingPolicy,
    Decision,
    DemandHistory,
    Panic,
    Reason,
    Recommendation,
    Sample,
    ScalerState,
    decide,
)
from ferry.autoscaling.startup import Asked, StartupWatch

POLICY = AutoscalingPolicy(target_in_flight=4.0, min_replicas=1, max_replicas=20)
NOW = 1000.0
WATCHED = ScalerState(since=0.0)
"""A state that has watched long enough to be trusted with scaling down."""


def history(
    demands: Sequence[float],
    *,
    answered: int = 4,
    expected: int = 4,
    every: float = 2.0,
    offered: Sequence[float | None] | None = None,
    service: float | None = None,
) -> DemandHistory:
    """One sample per tick, the last at NOW; `offered` aligned with `demands` if given. With a
    `service` time, each sample also carries what the proxies count: the offered load in
    service, unqueued, at most 4 per pod, finishing at 1 / `service` a second each."""
    result = DemandHistory(horizon=POLICY.window)
    start = NOW - every * (len(demands) - 1)
    loads = offered if offered is not None else [None] * len(demands)
    for index, (demand, load) in enumerate(zip(demands, loads, strict=True)):
        busy = None if service is None else min(demand, load or demand, 4.0 * answered)
        sample = Sample(
            start + index * every,
            demand,
            answered=answered,
            expected=expected,
            offered=load,
            in_flight=busy,
            served=None if busy is None or service is None else busy / service,
        )
        result = result.record(sample)
    return result


def steady(demand: float, **pods: int) -> DemandHistory:
    return history([demand] * 30, **pods)


def run(
    demands: DemandHistory,
    *,
    ready: int,
    current: int | None = None,
    state: ScalerState = WATCHED,
    policy: AutoscalingPolicy = POLICY,
) -> Decision:
    return decide(
        demands,
        policy,
        ready_replicas=ready,
        current_replicas=ready if current is None else current,
        now=NOW,
        state=state,
    )


@pytest.mark.parametrize(
    ("behaviour", "demand", "ready", "replicas", "reason"),
    [
        ("demand at target keeps replicas", 8.0, 2, 2, Reason.WITHIN_TOLERANCE),
        ("a small change is noise", 8.3, 2, 2, Reason.WITHIN_TOLERANCE),
        ("demand that still needs every replica keeps them", 7.0, 2, 2, Reason.STEADY),
        ("more demand adds replicas", 12.0, 2, 3, Reason.SCALE_UP),
        ("less demand gives replicas back, half at most", 4.0, 4, 2, Reason.SCALE_DOWN),
        ("never below the minimum", 0.0, 1, 1, Reason.AT_MIN),
        ("never above the maximum", 120.0, 19, 20, Reason.AT_MAX),
    ],
)
def test_steady_demand(
    behaviour: str, demand: float, ready: int, replicas: int, reason: Reason
) -> None:
    decision = run(steady(demand), ready=ready)
    assert (decision.replicas, decision.reason) == (replicas, reason), behaviour


def test_without_data_replicas_stay() -> None:
    decision = run(DemandHistory(horizon=60.0), ready=3)
    assert (decision.replicas, decision.reason) == (3, Reason.NO_DATA)
    assert decision.stable_demand is None


def test_without_data_bounds_still_hold() -> None:
    decision = run(DemandHistory(horizon=60.0), ready=25)
    assert (decision.replicas, decision.reason) == (20, Reason.AT_MAX)


def test_samples_where_nobody_answered_are_no_data() -> None:
    decision = run(steady(0.0, answered=0, expected=4), ready=4)
    assert (decision.replicas, decision.reason) == (4, Reason.NO_DATA)


def test_a_pod_that_did_not_answer_is_not_zero_demand() -> None:
    decision = run(steady(4.0, answered=2, expected=4), ready=4)
    assert (decision.replicas, decision.reason) == (4, Reason.PARTIAL_DATA)


def test_partial_data_still_scales_up_on_what_it_saw() -> None:
    decision = run(steady(24.0, answered=2, expected=4), ready=4)
    assert (decision.replicas, decision.reason) == (6, Reason.SCALE_UP)


def test_one_silent_sample_in_the_window_holds_a_scale_down() -> None:
    demands = history([4.0] * 10)
    demands = demands.record(Sample(NOW + 2, 4.0, answered=3, expected=4))
    for time in (NOW + 4, NOW + 6):
        demands = demands.record(Sample(time, 4.0, answered=4, expected=4))
    decision = decide(
        demands, POLICY, ready_replicas=4, current_replicas=4, now=NOW + 6, state=WATCHED
    )
    assert (decision.replicas, decision.reason) == (4, Reason.PARTIAL_DATA)


def test_a_new_or_restarted_operator_gives_nothing_back_until_it_has_watched() -> None:
    fresh = run(steady(4.0), ready=4, state=ScalerState())
    assert (fresh.replicas, fresh.reason) == (4, Reason.STABILIZING)
    assert fresh.state.since == NOW
    later = run(steady(4.0), ready=4, state=ScalerState(since=NOW - 150.0))
    assert later.replicas == 2


def test_after_a_window_a_restarted_operator_keeps_one_spare_until_a_downscale_window() -> None:
    # The stable window asks for 2 (8 in flight at 4 per replica); the 4 replicas found may
    # have been asked for by a peak before the start, which the memory has not seen.
    def since(watched: float) -> ScalerState:
        return ScalerState(since=NOW - watched)

    assert run(steady(8.0), ready=4, state=since(POLICY.window - 2.0)).replicas == 4
    spare = run(steady(8.0), ready=4, state=since(POLICY.window))
    assert (spare.replicas, spare.reason) == (3, Reason.STABILIZING)
    assert run(steady(8.0), ready=4, state=since(POLICY.downscale_stabilization)).replicas == 2
    assert run(steady(8.0), ready=2, state=since(POLICY.window)).replicas == 2


def test_a_new_operator_still_scales_up() -> None:
    assert run(steady(12.0), ready=2, state=ScalerState()).replicas == 3


def test_a_burst_starts_a_panic_that_follows_the_panic_window() -> None:
    demands = history([4.0] * 27 + [40.0] * 3)
    decision = run(demands, ready=2)
    assert decision.reason == Reason.PANIC
    assert decision.panicking
    assert decision.replicas == 10
    assert decision.state.panic == Panic(since=NOW, last_over=NOW)


def test_below_the_threshold_is_no_panic() -> None:
    demands = history([8.0] * 27 + [15.0] * 3)
    assert not run(demands, ready=2).panicking


def test_no_scale_down_while_panicking() -> None:
    state = ScalerState(panic=Panic(since=NOW - 30, last_over=NOW - 20), since=0.0)
    # 20 needs 5 at 4 each, but 8 ready would carry twice 20 only at 5 each: still a surge.
    decision = run(steady(20.0), ready=8, state=state)
    assert (decision.replicas, decision.reason) == (8, Reason.PANIC)


def test_a_panic_ends_once_the_load_is_so_low_that_it_would_take_another_to_panic() -> None:
    state = ScalerState(panic=Panic(since=NOW - 30, last_over=NOW - 20), since=0.0)
    # 8 ready carry 32 at target; twice the load, 2 x 16, no longer exceeds it.
    decision = run(steady(16.0), ready=8, state=state)
    assert not decision.panicking
    assert decision.replicas == 4


def test_panic_ends_a_stable_window_after_the_last_burst() -> None:
    state = ScalerState(panic=Panic(since=NOW - 90, last_over=NOW - 60), since=0.0)
    decision = run(steady(1.0), ready=8, state=state)
    assert not decision.panicking
    assert decision.replicas == 4


def test_growth_is_bounded_by_ready_replicas() -> None:
    policy = dataclasses.replace(POLICY, max_replicas=100)
    decision = run(steady(400.0), ready=2, policy=policy)
    assert decision.replicas == 20
    assert run(steady(400.0), ready=2, current=20, policy=policy).replicas == 20


def test_a_step_of_one_is_always_allowed_up() -> None:
    policy = dataclasses.replace(POLICY, max_upscale_factor=1.0)
    assert run(steady(40.0), ready=3, policy=policy).replicas == 4


def test_a_step_of_one_is_always_allowed_down() -> None:
    policy = dataclasses.replace(POLICY, max_downscale_factor=1.0)
    assert run(steady(0.0), ready=5, policy=policy).replicas == 4


def test_the_queue_floor_of_a_recent_peak_holds_a_scale_down() -> None:
    state = ScalerState(recommendations=(Recommendation(NOW - 100, 10, floor=6),), since=0.0)
    decision = run(steady(4.0), ready=10, state=state)
    assert (decision.replicas, decision.reason) == (6, Reason.STABILIZING)
    assert decision.message.endswith("(Stabilizing); queue floor 6")
    state = ScalerState(recommendations=(Recommendation(NOW - 151, 10, floor=6),), since=0.0)
    assert run(steady(4.0), ready=10, state=state).replicas == 5


def test_the_floor_counts_on_the_queues_once_the_service_time_is_known() -> None:
    policy = dataclasses.replace(POLICY, target_in_flight=2.8)
    # 50 of load, 0.25 s each: the floor is 12 of the 18 it needs at target (queue_arithmetic).
    decision = run(history([50.0] * 30, offered=[50.0] * 30, service=0.25), ready=18, policy=policy)
    assert (
        decision.state.recommendations[-1].replicas,
        decision.state.recommendations[-1].floor,
    ) == (
        18,
        12,
    )
    # Without the proxies' figures, no queue is counted on: 50 at full concurrency is 13.
    assert run(steady(50.0), ready=18, policy=policy).state.recommendations[-1].floor == 13


def test_after_a_drop_replicas_go_straight_to_the_floor() -> None:
    policy = dataclasses.replace(POLICY, target_in_flight=2.8)
    burst = [50.0] * 27 + [2.0] * 3
    decision = run(history(burst, offered=burst, service=0.25), ready=18, policy=policy)
    # The stable window still averages 45 (17 replicas); the floor of that load is 11.
    assert (decision.replicas, decision.reason) == (11, Reason.SCALE_DOWN)
    assert decision.message.endswith("(ScaleDown); queue floor 11")


def test_noise_around_a_steady_load_is_not_a_drop() -> None:
    policy = dataclasses.replace(POLICY, target_in_flight=2.8)
    dip = [10.0] * 27 + [6.0] * 3
    decision = run(history(dip, offered=dip, service=0.25), ready=4, policy=policy)
    assert decision.replicas == 4


def test_queues_that_would_fill_before_a_pod_starts_scale_up_at_once() -> None:
    # The stable window barely moved; the panic window's 12 of load is below a panic (16) but
    # overflows 2 replicas serving 8: their queues would fill in 12.5 s, a pod takes 30 s.
    surge = [2.0] * 27 + [12.0] * 3
    decision = run(history(surge, offered=surge, service=0.25), ready=2)
    assert not decision.panicking
    assert (decision.replicas, decision.reason) == (3, Reason.OVERLOAD)
    assert decision.state.startup.asked is not None


def test_nothing_the_ready_replicas_need_is_given_back() -> None:
    # 18 of load on 4 replicas serving 16: the queues grow, too slowly to ask for more, but
    # the stable window, still low, would halve the replicas.
    surge = [2.0] * 27 + [18.0] * 3
    decision = run(history(surge, offered=surge, service=0.25), ready=4)
    assert (decision.replicas, decision.reason) == (4, Reason.OVERLOAD)
    assert run(history(surge, offered=surge), ready=4).replicas == 2


def test_a_scale_up_waits_for_the_pods_still_starting_but_a_panic_does_not() -> None:
    starting = ScalerState(since=0.0, startup=StartupWatch(Asked(NOW - 10, 6)))
    decision = run(steady(28.0), ready=4, current=6, state=starting)
    assert (decision.replicas, decision.reason) == (6, Reason.STABILIZING)
    assert run(steady(28.0), ready=4, current=6, state=WATCHED).replicas == 7
    burst = history([16.0] * 27 + [64.0] * 3)
    assert run(burst, ready=4, current=6, state=starting).replicas == 16


def test_the_start_up_delay_measured_sets_the_floor() -> None:
    policy = dataclasses.replace(POLICY, target_in_flight=2.8)
    slow = ScalerState(since=0.0, startup=StartupWatch(measured=120.0))
    demands = history([50.0] * 30, offered=[50.0] * 30, service=0.25)
    assert run(demands, ready=18, state=slow, policy=policy).state.recommendations[-1].floor == 13


def test_the_offered_load_sizes_replicas_instead_of_a_backlog() -> None:
    # Saturated pods: 200 requests queued or in flight, but the traffic needs 12 in flight.
    backlog = history([200.0] * 30, offered=[12.0] * 30)
    assert run(backlog, ready=2, current=2).replicas == 3
    assert run(history([200.0] * 30), ready=2, current=2).replicas == 20


def test_a_panic_is_sized_by_its_busiest_tick_of_offered_load() -> None:
    demands = history([4.0] * 27 + [100.0] * 3, offered=[4.0] * 27 + [8.0, 8.0, 40.0])
    decision = run(demands, ready=1, current=1)
    assert (decision.replicas, decision.reason) == (10, Reason.PANIC)


def test_demand_below_the_offered_load_still_counts_as_demand() -> None:
    assert run(history([8.0] * 30, offered=[40.0] * 30), ready=2).replicas == 2


def test_without_offered_load_in_every_sample_demand_alone_decides() -> None:
    mixed = history([200.0] * 30, offered=[12.0] * 29 + [None])
    assert run(mixed, ready=2, current=2).replicas == 20


def test_a_recent_lower_recommendation_holds_a_scale_up() -> None:
    policy = dataclasses.replace(POLICY, upscale_stabilization=30.0)
    state = ScalerState(recommendations=(Recommendation(NOW - 10, 2, floor=1),), since=0.0)
    decision = run(steady(14.0), ready=2, state=state, policy=policy)
    assert (decision.replicas, decision.reason) == (2, Reason.STABILIZING)


def test_a_panic_recommendation_is_not_held_after_the_burst() -> None:
    demands = history([4.0] * 27 + [40.0] * 3)
    burst = run(demands, ready=2)
    assert burst.state.recommendations[-1].replicas < burst.replicas


def test_the_message_shows_the_arithmetic() -> None:
    message = run(steady(12.0), ready=2).message
    assert "demand 12.00 over 60s" in message
    assert "at 4 per replica with 2 ready: 2 -> 3 (ScaleUp)" in message


demand_values = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False)
policies = st.builds(
    AutoscalingPolicy,
    target_in_flight=st.floats(min_value=0.5, max_value=50.0),
    min_replicas=st.integers(1, 5),
    max_replicas=st.integers(5, 60),
    window=st.sampled_from([30.0, 60.0]),
    panic_window=st.sampled_from([4.0, 6.0]),
    panic_threshold=st.floats(min_value=1.0, max_value=4.0),
    upscale_stabilization=st.sampled_from([0.0, 20.0]),
    downscale_stabilization=st.sampled_from([0.0, 60.0, 300.0]),
    max_upscale_factor=st.floats(min_value=1.0, max_value=20.0),
    max_downscale_factor=st.floats(min_value=0.1, max_value=1.0),
    tolerance=st.floats(min_value=0.0, max_value=0.5),
    offered_headroom=st.floats(min_value=1.0, max_value=3.0),
    max_concurrency=st.integers(1, 16),
    max_queue_length=st.integers(0, 200),
    queue_allowance=st.floats(min_value=0.0, max_value=1.0),
    startup_delay=st.sampled_from([5.0, 30.0, 120.0]),
)
states = st.builds(
    ScalerState,
    panic=st.none() | st.builds(Panic, st.just(NOW - 50), st.sampled_from([NOW - 40, NOW - 70])),
    recommendations=st.lists(
        st.builds(
            Recommendation, st.floats(NOW - 400, NOW - 1), st.integers(0, 80), st.integers(0, 80)
        ),
        max_size=5,
    ).map(lambda r: tuple(sorted(r, key=lambda rec: rec.time))),
    since=st.sampled_from([None, 0.0, NOW - 30]),
    startup=st.builds(
        StartupWatch,
        st.none() | st.builds(Asked, st.sampled_from([NOW - 10, NOW - 200]), st.integers(1, 80)),
        st.none() | st.sampled_from([4.0, 60.0]),
    ),
)
situations = st.fixed_dictionaries(
    {
        "policy": policies,
        "state": states,
        "ready": st.integers(0, 70),
        "current": st.integers(0, 70),
        "answered": st.integers(0, 4),
        "service": st.none() | st.sampled_from([0.05, 0.25, 2.0]),
    }
)


def _decide(
    demands: Sequence[float],
    s: dict[str, object],
    offered: Sequence[float | None] | None = None,
) -> Decision:
    policy, state = s["policy"], s["state"]
    assert isinstance(policy, AutoscalingPolicy)
    assert isinstance(state, ScalerState)
    ready, current, answered, service = s["ready"], s["current"], s["answered"], s["service"]
    assert isinstance(ready, int)
    assert isinstance(current, int)
    assert isinstance(answered, int)
    assert service is None or isinstance(service, float)
    return decide(
        history(demands, answered=answered, offered=offered, service=service),
        policy,
        ready_replicas=ready,
        current_replicas=current,
        now=NOW,
        state=state,
    )


@given(st.lists(demand_values, min_size=1, max_size=40), situations)
def test_bounds_are_always_respected(demands: list[float], s: dict[str, object]) -> None:
    policy = s["policy"]
    assert isinstance(policy, AutoscalingPolicy)
    decision = _decide(demands, s)
    assert policy.min_replicas <= decision.replicas <= policy.max_replicas


@given(st.lists(st.tuples(demand_values, demand_values), min_size=1, max_size=40), situations)
def test_more_demand_never_gives_fewer_replicas(
    pairs: list[tuple[float, float]], s: dict[str, object]
) -> None:
    less = [base for base, _ in pairs]
    more = [base + extra for base, extra in pairs]
    assert _decide(less, s).replicas <= _decide(more, s).replicas


@given(
    st.lists(st.tuples(demand_values, demand_values, demand_values), min_size=1, max_size=40),
    situations,
)
def test_more_demand_or_more_offered_load_never_gives_fewer_replicas(
    triples: list[tuple[float, float, float]], s: dict[str, object]
) -> None:
    """With both signals: raising either one, the other held, never lowers the replicas."""
    demand = [d for d, _, _ in triples]
    offered = [o for _, o, _ in triples]
    base = _decide(demand, s, offered).replicas
    more_demand = [d + extra for d, _, extra in triples]
    more_offered = [o + extra for _, o, extra in triples]
    assert base <= _decide(more_demand, s, offered).replicas
    assert base <= _decide(demand, s, more_offered).replicas


@given(st.lists(demand_values, min_size=1, max_size=40), situations)
def test_the_same_inputs_give_the_same_decision(demands: list[float], s: dict[str, object]) -> None:
    assert _decide(demands, s) == _decide(demands, s)


def test_a_run_of_one_recommendation_is_remembered_by_its_newest() -> None:
    """A steady API remembers one recommendation however long it runs, and a change starts a
    new one while the old one still holds replicas through the downscale window."""
    policy = AutoscalingPolicy(target_in_flight=4.0, downscale_stabilization=20.0)
    demands, state, now = DemandHistory(horizon=policy.window), WATCHED, 0.0
    replicas = 4

    def tick(demand: float) -> Decision:
        nonlocal demands, state, now, replicas
        now += 2.0
        demands = demands.record(Sample(now, demand, 4, 4))
        decision = decide(
            demands,
            policy,
            ready_replicas=replicas,
            current_replicas=replicas,
            now=now,
            state=state,
        )
        state, replicas = decision.state, decision.replicas
        return decision

    for _ in range(40):
        tick(16.0)
    assert [r.time for r in state.recommendations] == [now]
    falling = [tick(4.0).replicas for _ in range(60)]
    # The stable window's average falls tick by tick, a new recommendation each time; once it
    # has settled, one run again.
    assert [r.time for r in state.recommendations] == [now]
    assert falling[0] == 4
    assert falling[-1] == 1
