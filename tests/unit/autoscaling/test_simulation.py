"""The simulator in bench/autoscaling, exercised on short traces so CI keeps it honest."""

from __future__ import annotations

from bench.autoscaling.cluster import Serving, simulate
from bench.autoscaling.run import ferry_policy
from bench.autoscaling.scalers.ferry import FerryAutoscaler
from bench.autoscaling.scalers.oracle import Oracle
from bench.autoscaling.traces import EXAMPLE_REPLAY, Trace, piecewise, poisson, replay, step

SERVING = Serving(startup_delay=10.0, min_replicas=1, max_replicas=8)


def short_step() -> Trace:
    return poisson(
        "short-step",
        "20 rps, 60 rps from 60 s to 120 s",
        180.0,
        piecewise((60.0, 20.0), (60.0, 60.0), (120.0, 60.0), (120.0, 20.0)),
        peak_rate=60.0,
    )


def test_the_oracle_rejects_nothing_on_a_trace_it_can_serve() -> None:
    trace = short_step()
    oracle = Oracle(trace, SERVING)
    result = simulate(trace, oracle, SERVING, initial=oracle.initial)
    assert result.requests == len(trace.arrivals) > 5000
    assert result.rejected == 0
    assert result.scaling_actions > 0


def test_ferry_stays_within_its_bounds_and_follows_the_step() -> None:
    trace = short_step()
    policy = ferry_policy(SERVING, {})
    oracle = Oracle(trace, SERVING)
    result = simulate(trace, FerryAutoscaler(policy), SERVING, initial=oracle.initial)
    replicas = result.replicas_over_time
    assert all(policy.min_replicas <= r <= policy.max_replicas for r in replicas)
    assert max(replicas[60:120]) > max(replicas[:55])


def test_a_run_is_deterministic() -> None:
    def once() -> object:
        trace = short_step()
        oracle = Oracle(trace, SERVING)
        scaler = FerryAutoscaler(ferry_policy(SERVING, {}))
        return simulate(trace, scaler, SERVING, initial=oracle.initial)

    assert once() == once()


def test_the_example_request_log_replays_from_time_zero() -> None:
    trace = replay(EXAMPLE_REPLAY)
    assert trace.arrivals[0] == 0.0
    assert list(trace.arrivals) == sorted(trace.arrivals)
    assert len(trace.arrivals) == len(trace.services) > 1000
    assert trace.duration > trace.arrivals[-1]


def test_after_a_burst_ferry_falls_to_its_queue_floor_not_down_the_stable_window() -> None:
    # 30 s at 80 rps every 90 s, 8 rps between: 8 replicas in a burst, 1 for the lull alone.
    trace = poisson(
        "short-bursts",
        "80 rps for 30 s every 90 s, 8 rps between",
        270.0,
        lambda t: 80.0 if t % 90 < 30 else 8.0,
        peak_rate=80.0,
    )
    policy = ferry_policy(SERVING, {"downscale_stabilization": "60s"})
    oracle = Oracle(trace, SERVING)
    result = simulate(trace, FerryAutoscaler(policy), SERVING, initial=oracle.initial)
    replicas = result.replicas_over_time
    assert max(replicas[180:210]) == 8
    # Ten seconds after the third burst: the floor its return needs, above the lull's own 1.
    assert 1 < replicas[220] <= 4


def test_a_seed_draws_other_requests_of_the_same_trace() -> None:
    standard, other = step(), step(seed=1)
    assert (other.name, other.duration) == (standard.name, standard.duration)
    assert other.arrivals != standard.arrivals
    assert abs(len(other.arrivals) - len(standard.arrivals)) < 0.02 * len(standard.arrivals)
    assert step(seed=1).arrivals == other.arrivals
