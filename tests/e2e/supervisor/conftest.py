"""A whole local environment for the supervisor's tests (control plane, moto, the node agent and
the operator, as `ferry local up` starts them), whose components the tests kill."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.layout import ClusterLayout


@pytest.fixture(scope="package")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    root: Path = tmp_path_factory.mktemp("supervisor") / "ferry-supervised"
    with local_cluster(ClusterLayout(root), nodes=0, operator=True) as info:
        yield info
