"""The chaos tally: what was tried as an attacker or an unlucky operator would, and how each case
ended, printed after every run so that a regression shows as a number and not only as a red test.

A case is a test marked `@pytest.mark.chaos("group")` (a module can mark all of its tests with
`pytestmark`) that asks for the `chaos` fixture and says how the system met it:

- refused: the bad input was turned away at the door (the API server's schema or CEL, an answer
  from the proxy before the predictor saw anything), with a reason a person can act on;
- handled: the input or fault got in, and the system coped as documented (a condition and an
  Event, a restart, requests answered, nothing lost);
- failed: anything else; a failed case is a failed test, and a test that ends without saying
  how its case was met fails too.

The cases live beside the behaviour they exercise (tests/integration, tests/e2e) and in
tests/chaos for faults with no other home; `pytest -m chaos` runs them all.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field

import pytest


class Outcome(enum.Enum):
    REFUSED = "refused"
    HANDLED = "handled"
    FAILED = "failed"


@dataclass
class Ledger:
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)

    def record(self, group: str, case: str, outcome: Outcome) -> None:
        # A case that failed stays failed, whatever it said before the failure.
        if self.outcomes.get((group, case)) is not Outcome.FAILED:
            self.outcomes[(group, case)] = outcome

    def recorded(self, group: str, case: str) -> bool:
        return (group, case) in self.outcomes

    def table(self) -> list[str]:
        """A line per group, then one for all, each with its counts."""
        groups: dict[str, Counter[Outcome]] = {}
        for (group, _case), outcome in sorted(self.outcomes.items()):
            groups.setdefault(group, Counter())[outcome] += 1
        total: Counter[Outcome] = sum(groups.values(), Counter())
        width = max(len(group) for group in [*groups, "group"])
        lines = [f"{'group':<{width}}  {'tried':>5}  {'refused':>7}  {'handled':>7}  {'failed':>6}"]
        for group, counts in [*groups.items(), ("all", total)]:
            lines.append(
                f"{group:<{width}}  {sum(counts.values()):>5}  {counts[Outcome.REFUSED]:>7}  "
                f"{counts[Outcome.HANDLED]:>7}  {counts[Outcome.FAILED]:>6}"
            )
        return lines

    def failures(self) -> list[str]:
        return [
            f"{group}: {case}"
            for (group, case), outcome in sorted(self.outcomes.items())
            if outcome is Outcome.FAILED
        ]


LEDGER = pytest.StashKey[Ledger]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos(group): a case of the chaos tally (tests/support/chaos.py)"
    )
    config.stash[LEDGER] = Ledger()


@dataclass
class Case:
    """One chaos case: the test says how the system met it; a failure says it for the test."""

    ledger: Ledger
    group: str
    name: str

    def refused(self) -> None:
        self.ledger.record(self.group, self.name, Outcome.REFUSED)

    def handled(self) -> None:
        self.ledger.record(self.group, self.name, Outcome.HANDLED)


def _case(item: pytest.Item) -> tuple[str, str] | None:
    marker = item.get_closest_marker("chaos")
    return None if marker is None else (str(marker.args[0]), item.name)


@pytest.fixture
def chaos(request: pytest.FixtureRequest) -> Generator[Case]:
    found = _case(request.node)
    if found is None:
        raise AssertionError("a test that asks for `chaos` is marked @pytest.mark.chaos(group)")
    group, name = found
    case = Case(request.config.stash[LEDGER], group, name)
    yield case
    if not case.ledger.recorded(group, name):
        case.ledger.record(group, name, Outcome.FAILED)
        raise AssertionError(f"chaos case {name!r} ended without saying how it was met")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    found = _case(item)
    if found is not None and report.failed:
        item.config.stash[LEDGER].record(*found, Outcome.FAILED)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ledger = terminalreporter.config.stash.get(LEDGER, None)
    if ledger is None or not ledger.outcomes:
        return
    terminalreporter.write_sep("=", "chaos: cases tried, refused, handled, failed")
    for line in ledger.table():
        terminalreporter.write_line(line)
    for failure in ledger.failures():
        terminalreporter.write_line(f"FAILED {failure}")
