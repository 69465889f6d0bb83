"""The policy: durations as the CRD writes them, fields that contradict each other refused."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ferry.autoscaling import (
    AutoscalingPolicy,
    DurationError,
    PolicyError,
    default_target_in_flight,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0.0),
        ("60s", 60.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("1m30s500ms", 90.5),
    ],
)
def test_a_duration_is_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("longer", "shorter"),
    [("60.0000000001s", "60s"), ("1m0.0000000009s", "60s"), ("1000.0000000001ms", "1s")],
)
def test_durations_the_api_server_reads_as_equal_are_equal(longer: str, shorter: str) -> None:
    # The CRD compares panicWindow with window as Go durations, in whole nanoseconds.
    assert parse_duration(longer) == parse_duration(shorter)


def test_a_fraction_of_an_hour_is_read_to_the_nanosecond() -> None:
    assert parse_duration("1.0000001h") == 3600.00036
    assert parse_duration("0.333333333333h") == 1199.999999998


@pytest.mark.parametrize("text", ["", "60", "s", "5 m", "-5s", "1d", "1m-", "m5", ".5s", "\u0663s"])
def test_a_malformed_duration_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(DurationError, match="like 1m30s"):
        parse_duration(text)


def test_the_defaults_make_a_valid_policy() -> None:
    policy = AutoscalingPolicy(target_in_flight=2.8)
    assert policy.window == 60.0
    assert policy.panic_window == 6.0
    assert policy.downscale_stabilization == 150.0


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"target_in_flight": 0.0}, "targetInFlight"),
        ({"min_replicas": 0}, "minReplicas must be at least 1"),
        ({"min_replicas": 5, "max_replicas": 4}, "maxReplicas cannot be below minReplicas"),
        ({"panic_window": 90.0}, "panicWindow cannot be longer than window"),
        ({"panic_threshold": 0.5}, "panicThreshold"),
        ({"max_upscale_factor": 0.9}, "maxUpscaleFactor"),
        ({"max_downscale_factor": 0.0}, "maxDownscaleFactor"),
        ({"tolerance": 1.0}, "tolerance"),
        ({"downscale_stabilization": -1.0}, "downscaleStabilization"),
        ({"max_concurrency": 0}, "maxConcurrency"),
        ({"max_queue_length": -1}, "maxQueueLength"),
        ({"queue_allowance": 1.5}, "queueAllowance"),
        ({"startup_delay": 0.0}, "startupDelay"),
    ],
)
def test_contradictory_fields_are_refused_by_name(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(PolicyError, match=complaint):
        dataclasses.replace(AutoscalingPolicy(target_in_flight=4.0), **change)


def test_the_default_target_leaves_a_replica_headroom() -> None:
    assert default_target_in_flight(4) == pytest.approx(2.8)
