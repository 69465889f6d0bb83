"""decide() answers for every spec the CRD admits, at the ends of each range too: no spec the API
server lets through can make the autoscaler raise at its ticks.

Specs go the operator's way: raw fields within the CRD's bounds, the CRD's defaults, parse_spec.
The bounds of the schema are read from the CRD; those its CEL rules set are written here and
pinned by tests/integration/test_invalid_specs.py against the real API server.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.autoscaling import DemandHistory, Sample, ScalerState, decide, offered_load
from ferry.spec.model import RealtimeAPISpec, parse_spec
from ferry.spec.schema import openapi_schema, with_defaults

SPEC = openapi_schema()["properties"]["spec"]["properties"]
AUTOSCALING, SERVING = SPEC["autoscaling"]["properties"], SPEC["serving"]["properties"]

# The CEL rules' bounds (crds/realtimeapis.ferry.dev.yaml).
WINDOW_MS = (1_000, 3_600_000)
STABILIZATION_MS = (0, 3_600_000)
MIN_TARGET = 0.1


def ranged(schema: dict[str, Any], *, integer: bool = False) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if integer:
        return st.integers(low, high)
    exclusive = bool(schema.get("exclusiveMinimum"))
    return st.floats(low, high, exclude_min=exclusive, allow_nan=False)


def duration(milliseconds: int) -> str:
    """As a user may write it: whole seconds, or seconds and thousandths."""
    whole, thousandths = divmod(milliseconds, 1000)
    return f"{whole}s" if not thousandths else f"{whole}.{thousandths:03d}s"


@st.composite
def admitted_specs(draw: st.DrawFn) -> RealtimeAPISpec:
    serving = {
        name: draw(ranged(SERVING[name], integer=True))
        for name in ("maxConcurrency", "maxQueueLength", "timeoutSeconds")
    }
    capacity = serving["maxConcurrency"] + serving["maxQueueLength"]
    window = draw(st.integers(*WINDOW_MS))
    low, high = sorted(draw(st.integers(1, 1000)) for _ in range(2))
    autoscaling: dict[str, Any] = {
        "minReplicas": low,
        "maxReplicas": high,
        "window": duration(window),
        "panicWindow": duration(draw(st.integers(WINDOW_MS[0], window))),
        "upscaleStabilization": duration(draw(st.integers(*STABILIZATION_MS))),
        "downscaleStabilization": duration(draw(st.integers(*STABILIZATION_MS))),
        **{
            name: draw(ranged(AUTOSCALING[name]))
            for name in ("panicThreshold", "maxUpscaleFactor", "maxDownscaleFactor", "tolerance")
        },
    }
    target = draw(st.none() | st.floats(MIN_TARGET, float(capacity)))
    if target is not None:
        autoscaling["targetInFlight"] = target
    raw = {"predictor": {"image": "example.com/m:1"}, "serving": serving}
    return parse_spec(with_defaults({**raw, "autoscaling": autoscaling}))


@st.composite
def ticks(draw: st.DrawFn, spec: RealtimeAPISpec) -> list[tuple[float, Sample, int]]:
    """Seconds since the previous tick, what the ready pods' proxies said (timed at the tick),
    and how many pods are ready: each figure within what a proxy enforcing spec.serving can
    report."""
    serving = spec.serving
    ready_counts = st.integers(0, spec.autoscaling.max_replicas)
    # A proxy rounds its per-second means to four decimals (ferry.proxy.stats.Window).
    rates = st.just(0.0) | st.floats(1e-4, 1e6)
    drawn = []
    for _ in range(draw(st.integers(1, 12))):
        ready = draw(ready_counts)
        answered = draw(st.integers(0, ready))
        busy = draw(st.floats(0.0, answered * serving.max_concurrency))
        queued = draw(st.floats(0.0, answered * serving.max_queue_length))
        served = draw(rates)
        counted = draw(st.booleans())
        sample = Sample(
            time=0.0,
            demand=busy + queued,
            answered=answered,
            expected=ready,
            offered=offered_load(draw(rates), served, busy, busy + queued) if counted else None,
            in_flight=busy if counted else None,
            served=served if counted else None,
        )
        drawn.append((draw(st.floats(0.001, 7200.0)), sample, ready))
    return drawn


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_admitted_spec_gets_a_decision_within_its_bounds(data: st.DataObject) -> None:
    spec = data.draw(admitted_specs())
    policy = spec.policy
    history, state, now = DemandHistory(policy.window), ScalerState(), 0.0
    current = data.draw(st.integers(0, policy.max_replicas))
    for elapsed, sample, ready in data.draw(ticks(spec)):
        now += elapsed
        history = history.record(dataclasses.replace(sample, time=now))
        decision = decide(
            history,
            policy,
            ready_replicas=ready,
            current_replicas=current,
            now=now,
            state=state,
        )
        assert policy.min_replicas <= decision.replicas <= policy.max_replicas
        state, current = decision.state, decision.replicas
