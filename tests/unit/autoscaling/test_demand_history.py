"""Demand history: samples from the pods that answered, averaged over a window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferry.autoscaling import DemandHistory, PodFigures, Sample, WindowAverage, offered_load


def test_a_sample_sums_the_pods_that_answered_and_counts_those_that_did_not() -> None:
    sample = Sample.from_pods(10.0, [PodFigures(3.0), None, PodFigures(1.5), None])
    assert (sample.demand, sample.answered, sample.expected) == (4.5, 2, 4)
    assert sample.partial
    assert sample.informative


def test_a_sample_sums_the_offered_load_only_when_every_pod_that_answered_reports_it() -> None:
    pods = [PodFigures(3.0, offered=2.0), None, PodFigures(1.0, offered=0.5)]
    assert Sample.from_pods(10.0, pods).offered == 2.5
    assert Sample.from_pods(10.0, [PodFigures(3.0, offered=2.0), PodFigures(1.0)]).offered is None
    assert Sample.from_pods(10.0, [PodFigures(3.0), PodFigures(1.0)]).offered is None


def test_the_window_averages_the_offered_load_and_keeps_its_peak() -> None:
    history = DemandHistory(horizon=60.0)
    for time, offered in [(0.0, 2.0), (2.0, 8.0), (4.0, 5.0)]:
        history = history.record(Sample(time, 9.0, answered=1, expected=1, offered=offered))
    window = history.average(now=4.0, window=6.0)
    assert window is not None
    assert (window.offered, window.offered_peak) == (pytest.approx(5.0), 8.0)
    history = history.record(Sample(6.0, 9.0, answered=1, expected=1))
    window = history.average(now=6.0, window=6.0)
    assert window is not None
    assert (window.offered, window.offered_peak) == (None, None)


def test_a_sample_sums_in_flight_and_served_only_when_every_pod_that_answered_reports_them() -> (
    None
):
    pods = [
        PodFigures(6.0, in_flight=4.0, served=16.0),
        None,
        PodFigures(2.0, in_flight=2.0, served=8.0),
    ]
    sample = Sample.from_pods(10.0, pods)
    assert (sample.in_flight, sample.served) == (6.0, 24.0)
    pods = [PodFigures(6.0, in_flight=4.0, served=16.0), PodFigures(2.0, served=8.0)]
    partly = Sample.from_pods(10.0, pods)
    assert (partly.in_flight, partly.served) == (None, 24.0)


def test_the_window_gives_the_backlog_and_the_service_time_by_littles_law() -> None:
    history = DemandHistory(horizon=60.0)
    # 8 in service finishing 32 a second: 0.25 s each, whatever the queue behind them.
    for time, demand in [(0.0, 8.0), (2.0, 48.0)]:
        sample = Sample(time, demand, 2, 2, offered=10.0, in_flight=8.0, served=32.0)
        history = history.record(sample)
    window = history.average(now=2.0, window=6.0)
    assert window is not None
    assert (window.in_flight, window.service_time) == (8.0, pytest.approx(0.25))
    assert window.demand - window.in_flight == pytest.approx(20.0)


def test_a_window_in_which_nothing_was_served_has_no_service_time() -> None:
    history = DemandHistory(horizon=60.0).record(Sample(0.0, 8.0, 1, 1, in_flight=4.0, served=0.0))
    window = history.average(now=0.0, window=6.0)
    assert window is not None
    assert (window.in_flight, window.service_time) == (4.0, None)
    history = history.record(Sample(2.0, 8.0, 1, 1))
    window = history.average(now=2.0, window=6.0)
    assert window is not None
    assert (window.in_flight, window.service_time) == (None, None)


def test_offered_load_is_arrivals_times_service_time_by_littles_law() -> None:
    # 40 received/s, 16 served/s with 4 in flight: 0.25 s each, so 10 in flight if unqueued.
    assert offered_load(40.0, 16.0, 4.0, demand=104.0) == pytest.approx(10.0)
    # Nothing finished yet: no service time seen, the demand stands in.
    assert offered_load(3.0, 0.0, 2.0, demand=5.0) == 5.0


def test_a_sample_where_no_pod_answered_says_nothing() -> None:
    assert not Sample.from_pods(10.0, [None, None]).informative
    assert not Sample.from_pods(10.0, []).informative


def test_the_average_covers_only_the_window() -> None:
    history = DemandHistory(horizon=60.0)
    for time, demand in [(0.0, 100.0), (10.0, 2.0), (20.0, 4.0)]:
        history = history.record(Sample(time, demand, answered=1, expected=1))
    window = history.average(now=20.0, window=15.0)
    assert window is not None
    assert window.demand == pytest.approx(3.0)
    assert window.samples == 2
    assert not window.partial


def test_a_window_with_a_silent_pod_is_marked_partial() -> None:
    history = DemandHistory(horizon=60.0)
    history = history.record(Sample.from_pods(1.0, [PodFigures(2.0), PodFigures(2.0)]))
    history = history.record(Sample.from_pods(2.0, [PodFigures(2.0), None]))
    window = history.average(now=2.0, window=60.0)
    assert window is not None
    assert window.partial
    assert window.demand == pytest.approx(3.0)


def test_a_window_where_nobody_answered_has_no_average() -> None:
    history = DemandHistory(horizon=60.0).record(Sample.from_pods(1.0, [None]))
    assert history.average(now=1.0, window=60.0) is None
    assert DemandHistory(horizon=60.0).average(now=1.0, window=60.0) is None


def test_samples_older_than_the_horizon_are_dropped() -> None:
    history = DemandHistory(horizon=10.0)
    for time in range(30):
        history = history.record(Sample(float(time), 1.0, answered=1, expected=1))
    assert [s.time for s in history.samples] == [float(t) for t in range(19, 30)]


def test_time_does_not_run_backwards() -> None:
    history = DemandHistory(horizon=10.0).record(Sample(5.0, 1.0, answered=1, expected=1))
    with pytest.raises(ValueError, match="older than the newest"):
        history.record(Sample(4.0, 1.0, answered=1, expected=1))


@pytest.mark.parametrize(
    ("demand", "answered", "expected"), [(-1.0, 1, 1), (1.0, 2, 1), (1.0, -1, 1)]
)
def test_an_impossible_sample_is_refused(demand: float, answered: int, expected: int) -> None:
    with pytest.raises(ValueError, match="impossible sample"):
        Sample(0.0, demand, answered=answered, expected=expected)


@pytest.mark.parametrize("figure", ["offered", "in_flight", "served"])
def test_a_negative_figure_is_refused(figure: str) -> None:
    with pytest.raises(ValueError, match="impossible sample"):
        Sample(0.0, 1.0, answered=1, expected=1, **{figure: -1.0})


def _plain_average(samples: tuple[Sample, ...], now: float, window: float) -> WindowAverage | None:
    """The window average as its docstring defines it, spelled out sample by sample."""
    inside = [s for s in samples if now - window < s.time <= now]
    heard = [s for s in inside if s.answered > 0]
    if not heard:
        return None
    n = len(heard)
    offered = [s.offered for s in heard if s.offered is not None]
    in_flight = [s.in_flight for s in heard if s.in_flight is not None]
    served = [s.served for s in heard if s.served is not None]
    return WindowAverage(
        demand=sum(s.demand for s in heard) / n,
        samples=n,
        partial=any(s.partial for s in inside),
        offered=sum(offered) / n if len(offered) == n else None,
        offered_peak=max(offered) if len(offered) == n else None,
        in_flight=sum(in_flight) / n if len(in_flight) == n else None,
        service_time=(
            sum(in_flight) / sum(served)
            if len(in_flight) == len(served) == n and sum(served) > 0
            else None
        ),
    )


_figure = st.one_of(st.none(), st.floats(0, 50, allow_nan=False))


@st.composite
def _samples(draw: st.DrawFn) -> tuple[Sample, ...]:
    gaps = draw(st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), max_size=40))
    samples, now = [], 0.0
    for gap in gaps:
        now += gap
        expected = draw(st.integers(1, 3))
        samples.append(
            Sample(
                now,
                draw(st.floats(0, 50, allow_nan=False)),
                draw(st.integers(0, expected)),
                expected,
                draw(_figure),
                draw(_figure),
                draw(_figure),
            )
        )
    return tuple(samples)


# Times on the samples' half-second grid, so that windows start and end exactly on samples.
@given(_samples(), st.integers(0, 200).map(lambda k: k / 2), st.sampled_from([1.0, 2.0, 6.0, 60.0]))
def test_the_window_average_is_the_plain_average_of_the_window_s_samples(
    samples: tuple[Sample, ...], now: float, window: float
) -> None:
    history = DemandHistory(horizon=1000.0, samples=samples)
    assert history.average(now, window) == _plain_average(samples, now, window)


@given(_samples(), st.sampled_from([2.0, 6.0, 60.0]))
def test_the_history_keeps_the_samples_of_its_horizon(
    samples: tuple[Sample, ...], horizon: float
) -> None:
    history = DemandHistory(horizon)
    for sample in samples:
        history = history.record(sample)
    if samples:
        newest = samples[-1].time
        assert history.samples == tuple(s for s in samples if s.time >= newest - horizon)
