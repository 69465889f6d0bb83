"""examples/ci-rollout/rollout.py's canary verdict: the figures it reads from the proxies'
/metrics, and when it refuses to promote."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from types import ModuleType

import pytest

from ferry.proxy.admission import Gate
from ferry.proxy.metrics import registry_for, render
from ferry.proxy.stats import Stats
from tests.support.ferry_operator import REPO


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "ci_rollout", REPO / "examples" / "ci-rollout" / "rollout.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while they are made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rollout = load_script()


def metrics(answers: list[tuple[int, float]]) -> str:
    """A real proxy's /metrics after these answers (status, seconds)."""
    stats = Stats(Gate(4, 10), (1,))
    for status, seconds in answers:
        stats.finished(status, seconds)
    return render(registry_for(stats)).decode()


def test_the_figures_are_the_proxys_counts_by_code_and_its_latency_histogram() -> None:
    answers = [(200, 0.003)] * 97 + [(503, 0.0005)] + [(504, 9.0)] * 2
    figures = rollout.figures_of(metrics(answers))
    assert (figures.requests, figures.errors) == (100, 3)
    assert figures.p99() == 10.0  # 98 of 100 answers within 5 ms, the 99th within 10 s
    assert figures.describe() == "100 requests, 3.00% 5xx, p99 <= 10s"


def test_a_window_counts_what_each_pod_answered_in_it() -> None:
    before = {"a": rollout.figures_of(metrics([(200, 0.01)] * 10))}
    after = {
        "a": rollout.figures_of(metrics([(200, 0.01)] * 25)),
        # New since the first scrape: all of its answers fall in the window.
        "b": rollout.figures_of(metrics([(500, 0.01)] * 5)),
    }
    window = rollout.over(before, after)
    assert (window.requests, window.errors) == (20, 5)
    # A proxy that restarted counts from zero again: what it shows is all new.
    restarted = rollout.over(before, {"a": rollout.figures_of(metrics([(200, 0.01)] * 4))})
    assert restarted.requests == 4


def args(**given: object) -> argparse.Namespace:
    defaults = {"min_requests": 20, "max_error_rate": 0.01, "max_p99": None, "observe": 60.0}
    return argparse.Namespace(**{**defaults, **given})


@pytest.mark.parametrize(
    ("answers", "given", "why"),
    [
        ([(200, 0.01)] * 50, {}, None),
        ([(200, 0.01)] * 5, {}, "answered 5 requests in 60s, fewer than --min-requests 20"),
        ([(200, 0.01)] * 98 + [(500, 0.01)] * 2, {}, "its 5xx rate is 2.00%, above"),
        ([(200, 0.01)] * 98 + [(500, 0.01)] * 2, {"max_error_rate": 0.05}, None),
        ([(200, 0.7)] * 50, {"max_p99": 0.5}, "its p99 latency is up to 1s, above --max-p99 0.5s"),
        ([(200, 0.3)] * 50, {"max_p99": 0.5}, None),
    ],
    ids=["healthy", "too-few", "errors", "errors-allowed", "slow", "fast-enough"],
)
def test_a_canary_is_promoted_only_when_its_answers_are_many_good_and_fast_enough(
    answers: list[tuple[int, float]], given: dict[str, object], why: str | None
) -> None:
    verdict = rollout.judge(args(**given), rollout.figures_of(metrics(answers)))
    if why is None:
        assert verdict is None
    else:
        assert verdict is not None and why in verdict
