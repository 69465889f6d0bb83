"""The chaos tier's own cases: components of a whole local environment killed and paused under
load, and predictors that misbehave. (Hostile specs and abusive requests are chaos cases beside
the behaviour they exercise, in tests/integration and tests/e2e; tests/support/chaos.py tallies
them all.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.layout import ClusterLayout


@pytest.fixture(scope="package")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """A whole local environment, as `ferry local up` starts it (control plane, moto, the node
    agent, the CRD and the operator), whose components the fault cases kill and pause."""
    root: Path = tmp_path_factory.mktemp("chaos") / "ferry-chaos"
    with local_cluster(ClusterLayout(root), nodes=0, operator=True) as info:
        yield info
