"""The chaos tier: hostile specs, abusive HTTP, killed and paused components, misbehaving
predictors. Each test is one case and asks for the `chaos` fixture, which files the case under its
module's GROUP as refused, handled or failed; the run ends with the counts."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ferry.local.cluster import ClusterInfo, local_cluster
from ferry.local.layout import ClusterLayout
from tests.chaos.ledger import Ledger, Outcome

LEDGER = pytest.StashKey[Ledger]()


def pytest_configure(config: pytest.Config) -> None:
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


def _case(item: pytest.Item) -> tuple[str, str]:
    module = getattr(item, "module", None)
    return getattr(module, "GROUP", item.nodeid.split("::")[0]), item.name


@pytest.fixture
def chaos(request: pytest.FixtureRequest) -> Generator[Case]:
    group, name = _case(request.node)
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
    if "chaos" in getattr(item, "fixturenames", ()) and report.failed:
        group, name = _case(item)
        item.config.stash[LEDGER].record(group, name, Outcome.FAILED)
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


@pytest.fixture(scope="package")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """A whole local environment, as `ferry local up` starts it (control plane, moto, the node
    agent, the CRD and the operator), whose components the fault cases kill and pause."""
    root: Path = tmp_path_factory.mktemp("chaos") / "ferry-chaos"
    with local_cluster(ClusterLayout(root), nodes=0, operator=True) as info:
        yield info
