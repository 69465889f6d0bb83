"""The gate: exact slots, FIFO queue, and occupancy averaged over time, not sampled at instants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ferry.proxy.admission import Admission, Gate


class Recorder:
    def __init__(self, log: list[int], name: int) -> None:
        self.log = log
        self.name = name

    def admitted(self) -> None:
        self.log.append(self.name)


def test_slots_then_queue_then_rejection() -> None:
    gate = Gate(capacity=2, queue_limit=1)
    admitted: list[int] = []
    results = [gate.enter(Recorder(admitted, n)) for n in range(4)]
    assert results == [Admission.ADMITTED] * 2 + [Admission.QUEUED, Admission.REJECTED]
    assert (gate.in_flight, gate.queued) == (2, 1)
    gate.leave()
    assert admitted == [2], "a freed slot passes straight to the first in line"
    assert (gate.in_flight, gate.queued) == (2, 0)


@given(st.lists(st.sampled_from(["enter", "leave", "withdraw"]), max_size=200))
def test_limits_hold_and_the_queue_stays_in_order(operations: list[str]) -> None:
    gate = Gate(capacity=3, queue_limit=4)
    admitted: list[int] = []
    waiting: list[Recorder] = []
    holding = 0
    for number, operation in enumerate(operations):
        if operation == "enter":
            waiter = Recorder(admitted, number)
            result = gate.enter(waiter)
            if result is Admission.ADMITTED:
                holding += 1
            elif result is Admission.QUEUED:
                waiting.append(waiter)
        elif operation == "leave" and holding:
            before = len(admitted)
            gate.leave()
            if waiting:
                assert admitted[before:] == [waiting.pop(0).name]
            else:
                holding -= 1
        elif operation == "withdraw" and waiting:
            gate.withdraw(waiting.pop())
        assert gate.in_flight == holding <= 3
        assert gate.queued == len(waiting) <= 4
        assert holding == 3 or not waiting, "nobody waits while a slot is free"


def test_samples_average_occupancy_over_the_second() -> None:
    now = [0.0]
    gate = Gate(capacity=4, queue_limit=4, clock=lambda: now[0])
    gate.enter(Recorder([], 0))
    now[0] = 0.25
    gate.leave()  # one request for a quarter of the second
    now[0] = 1.0
    assert gate.sample() == (0.25, 0.0)
    now[0] = 2.0
    assert gate.sample() == (0.0, 0.0)


def test_a_sample_with_no_time_passed_reports_the_counts_now() -> None:
    gate = Gate(capacity=1, queue_limit=1, clock=lambda: 5.0)
    gate.enter(Recorder([], 0))
    gate.enter(Recorder([], 1))
    assert gate.sample() == (1.0, 1.0)
