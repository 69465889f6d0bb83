"""The spec as the operator reads it: the CRD's defaults, and what each field turns into."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ferry.autoscaling import DurationError
from ferry.spec.model import (
    Autoscaling,
    InvalidSpecError,
    Serving,
    autoscaling_policy,
    parse_spec,
)
from ferry.spec.schema import with_defaults


def spec(**fields: Any) -> dict[str, Any]:
    return with_defaults({"predictor": {"image": "registry.example.com/iris:1.4.0"}, **fields})


def test_a_minimal_spec_gets_every_documented_default() -> None:
    parsed = parse_spec(spec())
    assert parsed.predictor.port == 8080
    assert (parsed.serving.max_concurrency, parsed.serving.max_queue_length) == (4, 100)
    assert parsed.serving.timeout_seconds == 60
    assert (parsed.autoscaling.min_replicas, parsed.autoscaling.max_replicas) == (1, 20)
    assert parsed.autoscaling.window == "60s"
    assert parsed.autoscaling.panic_window == "6s"
    assert parsed.rollout.max_surge == "25%"
    assert parsed.rollout.max_unavailable == 0
    assert parsed.retention_days == 14
    assert parsed.model is None


def test_target_in_flight_defaults_to_seventy_percent_of_max_concurrency() -> None:
    assert parse_spec(spec(serving={"maxConcurrency": 10})).autoscaling.target_in_flight == 7.0
    explicit = spec(autoscaling={"targetInFlight": 2.5})
    assert parse_spec(explicit).autoscaling.target_in_flight == 2.5


def test_a_model_uri_splits_into_bucket_and_prefix() -> None:
    parsed = parse_spec(spec(model={"uri": "s3://acme-models/teams/iris/"}))
    assert parsed.model is not None
    assert (parsed.model.bucket, parsed.model.prefix, parsed.model.version) == (
        "acme-models",
        "teams/iris",
        "latest",
    )


@pytest.mark.parametrize(
    ("autoscaling", "replicas", "initial"),
    [
        ({"minReplicas": 3}, None, 3),
        ({"minReplicas": 3}, 5, 3),  # autoscaling on: spec.replicas is not the autoscaler's input
        ({"enabled": False, "minReplicas": 1}, 4, 4),
        ({"enabled": False, "minReplicas": 2}, None, 2),
    ],
)
def test_the_first_replica_count(
    autoscaling: dict[str, Any], replicas: int | None, initial: int
) -> None:
    raw = spec(autoscaling=autoscaling)
    if replicas is not None:
        raw["replicas"] = replicas
    assert parse_spec(raw).initial_replicas == initial


def test_a_spec_missing_a_defaulted_field_names_it() -> None:
    raw = spec()
    del raw["serving"]
    with pytest.raises(InvalidSpecError, match=r"spec\.serving: is missing"):
        parse_spec(raw)


def test_integer_quantities_are_kept_as_quantities() -> None:
    parsed = parse_spec(
        spec(predictor={"image": "a/b:1", "resources": {"cpu": 2, "memory": "512Mi"}})
    )
    assert (parsed.predictor.resources.cpu, parsed.predictor.resources.memory) == ("2", "512Mi")


def test_a_spec_carries_its_autoscaling_policy_in_seconds() -> None:
    parsed = parse_spec(spec(autoscaling={"window": "1m30s", "downscaleStabilization": "2m"}))
    assert (parsed.policy.window, parsed.policy.downscale_stabilization) == (90.0, 120.0)
    assert parsed.policy.target_in_flight == parsed.autoscaling.target_in_flight


@pytest.mark.parametrize(
    ("autoscaling", "complaint"),
    [
        (
            {"window": "0s", "panicWindow": "0s"},
            "spec.autoscaling: window must be longer than zero; panicWindow must be longer",
        ),
        ({"panicWindow": "2m"}, "spec.autoscaling: panicWindow cannot be longer than window"),
        ({"downscaleStabilization": "soon"}, "spec.autoscaling: downscaleStabilization: 'soon'"),
    ],
)
def test_a_policy_the_autoscaler_could_not_follow_is_an_invalid_spec(
    autoscaling: dict[str, Any], complaint: str
) -> None:
    # Such a spec is stored when it predates the CRD's rules; the reconciler reads it with
    # parse_spec, so it reports it as the autoscaler would meet it.
    with pytest.raises(InvalidSpecError) as refused:
        parse_spec(spec(autoscaling=autoscaling))
    assert str(refused.value).startswith(complaint)
    assert refused.value.field == "autoscaling"


AUTOSCALING = Autoscaling(
    enabled=True,
    min_replicas=2,
    max_replicas=9,
    target_in_flight=3.0,
    window="1m",
    panic_window="6s",
    panic_threshold=2.5,
    upscale_stabilization="0s",
    downscale_stabilization="2m30s",
    max_upscale_factor=4.0,
    max_downscale_factor=0.5,
    tolerance=0.1,
)


def test_a_malformed_duration_in_a_spec_names_its_field() -> None:
    spec = replace(AUTOSCALING, upscale_stabilization="now")
    serving = Serving(max_concurrency=8, max_queue_length=20, timeout_seconds=30)
    with pytest.raises(DurationError, match=r"^upscaleStabilization: 'now' is not a duration"):
        autoscaling_policy(spec, serving)


def test_a_parsed_spec_becomes_a_policy_in_seconds() -> None:
    spec = AUTOSCALING
    serving = Serving(max_concurrency=8, max_queue_length=20, timeout_seconds=30)
    policy = autoscaling_policy(spec, serving)
    assert (policy.window, policy.panic_window, policy.downscale_stabilization) == (60, 6, 150)
    assert (policy.min_replicas, policy.max_replicas, policy.panic_threshold) == (2, 9, 2.5)
    # The queues' arithmetic needs the serving limits the proxies enforce.
    assert (policy.max_concurrency, policy.max_queue_length) == (8, 20)


def test_a_target_of_zero_is_the_users_and_refused_not_taken_for_the_default() -> None:
    assert parse_spec(spec()).autoscaling.target_in_flight == pytest.approx(2.8)
    with pytest.raises(InvalidSpecError, match="targetInFlight must be above zero"):
        parse_spec(spec(autoscaling={"targetInFlight": 0}))
