"""The README's first command, end to end: the iris example trained, pushed, served and asked
through the cluster's Gateway (Envoy Gateway) at the URL in its status, with a curl command that
asks it the same from this machine."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry_local import demo
from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.gateway import NAMESPACE as GATEWAY_NAMESPACE
from ferry_local.layout import ClusterLayout
from tests.support.ferry_operator import kubectl


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
    predictions = await demo.predict(full_cluster, lines.append)

    assert version == "1"
    assert [p["class"] for p in predictions] == ["setosa", "versicolor", "virginica"]
    for prediction in predictions:
        assert abs(sum(prediction["probabilities"].values()) - 1.0) < 0.01
    gateway = json.loads(
        kubectl(
            full_cluster, "get", "gateway", "-n", GATEWAY_NAMESPACE, "ferry", "-o", "json"
        ).stdout
    )
    url = f"http://{gateway['status']['addresses'][0]['value']}/default/iris/"
    asked = lines[-1]
    assert asked.endswith(f" {url}"), asked
    curl = shlex.split(asked.partition(": ")[2])
    assert curl[0] == "curl", asked
    answer = await asyncio.to_thread(
        subprocess.run, curl, capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(answer.stdout)["predictions"] == predictions
    row = _columns(lines[-2])
    shown = (row["NAME"], row["READY"], row["REPLICAS"], row["VERSION"], row["ENDPOINT"])
    assert shown == ("iris", "True", "1/1", "1", url)


def _columns(table: str) -> dict[str, str]:
    """The first row of a `kubectl get` table by header, so a blank cell shifts nothing.

    In-flight stays blank until the autoscaler's first tick, which may or may not have run.
    """
    header, row = table.splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}
