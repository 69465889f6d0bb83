"""The real `ferry-operator` process, watching one test's namespace of the real control plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry_local.aws import MotoServer
from ferry_local.cluster import ClusterInfo
from tests.support.ferry_operator import Operator


@pytest.fixture
def operator(
    cluster: ClusterInfo, crd: None, namespace: str, tmp_path: Path, moto: MotoServer
) -> Iterator[Operator]:
    running = Operator(cluster, namespace, tmp_path / "operator.log", env=moto.env())
    running.start()
    yield running
    running.stop()
