"""The start-up delay, measured from the autoscaler's own scale-ups."""

from __future__ import annotations

from ferry.autoscaling.startup import Asked, StartupWatch

ASSUMED = 30.0


def test_until_a_scale_up_is_measured_the_assumed_delay_stands() -> None:
    assert StartupWatch().delay(ASSUMED) == ASSUMED


def test_a_scale_up_is_measured_from_the_ask_to_the_tick_that_sees_it_ready() -> None:
    watch = StartupWatch().asking(desired=6, ready=2, current=2, now=100.0)
    assert watch.asked == Asked(100.0, 6)
    still = watch.watch(ready=5, current=6, now=140.0)
    assert still == watch
    done = still.watch(ready=6, current=6, now=146.0)
    assert (done.asked, done.delay(ASSUMED)) == (None, 46.0)


def test_a_scale_up_undone_before_it_is_ready_teaches_nothing() -> None:
    watch = StartupWatch(measured=20.0).asking(desired=6, ready=2, current=2, now=100.0)
    undone = watch.watch(ready=3, current=4, now=110.0)
    assert (undone.asked, undone.delay(ASSUMED)) == (None, 20.0)


def test_only_a_scale_up_beyond_the_ready_replicas_is_watched_and_the_oldest_first() -> None:
    assert StartupWatch().asking(desired=4, ready=4, current=6, now=1.0).asked is None
    first = StartupWatch().asking(desired=6, ready=2, current=2, now=1.0)
    assert first.asking(desired=9, ready=2, current=6, now=3.0) == first


def test_pods_count_as_starting_for_at_most_one_start_up_delay() -> None:
    watch = StartupWatch().asking(desired=6, ready=2, current=2, now=100.0)
    assert watch.starting(now=129.0, assumed=ASSUMED)
    assert not watch.starting(now=130.0, assumed=ASSUMED)
    assert not StartupWatch().starting(now=100.0, assumed=ASSUMED)
