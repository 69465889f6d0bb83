"""The README's first command, end to end: the iris example trained, pushed, served and asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.local import demo
from ferry.local.cluster import ClusterInfo, local_cluster
from ferry.local.layout import ClusterLayout


@pytest.fixture(scope="module")
def full_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """A cluster of its own with moto, the node agent and the operator, as `ferry local up`."""
    root: Path = tmp_path_factory.mktemp("demo") / "ferry-demo"
    with local_cluster(ClusterLayout(root), nodes=1, operator=True) as info:
        yield info


async def test_the_iris_example_serves_real_predictions(full_cluster: ClusterInfo) -> None:
    lines: list[str] = []
    version = demo.publish_model(full_cluster, lines.append)
    demo.deploy(full_cluster, lines.append)
    predictions = await demo.predict(full_cluster)

    assert version == "1"
    assert [p["class"] for p in predictions] == ["setosa", "versicolor", "virginica"]
    for prediction in predictions:
        assert abs(sum(prediction["probabilities"].values()) - 1.0) < 0.01
    table = lines[-1].splitlines()
    assert table[1].split()[:4] == ["iris", "True", "1/1", "1"]  # Ready, replicas, version
