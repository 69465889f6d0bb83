"""The real `ferry-operator` process, watching one test's namespace of the real control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.local.aws import MotoServer
from ferry.local.cluster import ClusterInfo
from tests.support.ferry_operator import REPO, Operator, kubectl


@pytest.fixture(scope="session")
def crd(cluster: ClusterInfo) -> None:
    kubectl(cluster, "apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl(
        cluster,
        "wait",
        "--for=condition=Established",
        "crd/realtimeapis.ferry.dev",
        "--timeout=60s",
    )


@pytest.fixture
def operator(
    cluster: ClusterInfo, crd: None, namespace: str, tmp_path: Path, moto: MotoServer
) -> Iterator[Operator]:
    running = Operator(cluster, namespace, tmp_path / "operator.log", env=moto.env())
    running.start()
    yield running
    running.stop()
