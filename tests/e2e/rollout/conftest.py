"""One whole local environment for the rollout e2e tests: control plane, node agent, moto's S3
and the operator, as `ferry local up` starts them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.layout import ClusterLayout


@pytest.fixture(scope="package")
def full_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    root: Path = tmp_path_factory.mktemp("rollout") / "ferry-rollout"
    with local_cluster(ClusterLayout(root), nodes=1, operator=True) as info:
        yield info
