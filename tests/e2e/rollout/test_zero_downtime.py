"""Two consecutive rollouts of a 3-replica API under steady load fail no request.

Real pods on the node agent: the model fetched from S3 by the init container, Ferry's proxy in
front of ferry-runtime serving the iris model; the load goes through the Service as a client of
it would, and every response is counted.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from ferry.adapters.kube import Kube
from ferry.artifacts.push import push
from ferry.local.client import ServiceClient
from ferry.local.cluster import ClusterInfo, local_cluster
from ferry.local.demo import IRIS
from ferry.local.layout import ClusterLayout
from tests.support.ferry_operator import kubectl

LOAD_WORKERS = 6
MAX_REQUESTS = 20_000  # a bound, never reached: the load stops when the rollouts are done
SAMPLE = json.dumps({"instances": [[6.2, 2.9, 4.3, 1.3]]}).encode()


@pytest.fixture(scope="module")
def full_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    root: Path = tmp_path_factory.mktemp("rollout") / "ferry-rollout"
    with local_cluster(ClusterLayout(root), nodes=1, operator=True) as info:
        yield info


def s3_of(info: ClusterInfo) -> object:
    env = info.env()
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def api_manifest(version: str) -> str:
    return json.dumps(
        {
            "apiVersion": "ferry.dev/v1alpha1",
            "kind": "RealtimeAPI",
            "metadata": {"name": "iris", "namespace": "default"},
            "spec": {
                "predictor": {
                    "image": "ghcr.io/ferry-dev/examples-iris:0.1.0",
                    "readinessPath": "/healthz",
                    "resources": {"cpu": "100m", "memory": "256Mi"},
                },
                "model": {"uri": "s3://rollouts/iris", "version": version},
                "serving": {"maxConcurrency": 4, "maxQueueLength": 64, "timeoutSeconds": 10},
                "autoscaling": {"minReplicas": 3, "maxReplicas": 3},
                "rollout": {"maxSurge": 1, "maxUnavailable": 0},
            },
        }
    )


def apply_and_wait(info: ClusterInfo, version: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as manifest:
        manifest.write(api_manifest(version))
        manifest.flush()
        kubectl(info, "apply", "-f", manifest.name)
    kubectl(info, "wait", "--for=condition=Ready", "rtapi/iris", "--timeout=180s")


async def load(info: ClusterInfo, stop: asyncio.Event) -> Counter[str]:
    """Steady requests through the Service until `stop`; every outcome counted."""
    outcomes: Counter[str] = Counter()
    kube = await Kube.connect(str(info.kubeconfig))
    try:
        async with ServiceClient(kube, "default", "iris") as service:
            await service.wait_for_endpoints(3, timeout=60)

            async def worker() -> None:
                while not stop.is_set() and sum(outcomes.values()) < MAX_REQUESTS:
                    try:
                        reply = await service.request(
                            "POST", "/", body=SAMPLE, headers={"Content-Type": "application/json"}
                        )
                        outcomes[str(reply.status)] += 1
                    except Exception as error:  # noqa: BLE001 - every failure is counted
                        outcomes[type(error).__name__] += 1

            await asyncio.gather(*(worker() for _ in range(LOAD_WORKERS)))
    finally:
        await kube.close()
    return outcomes


async def test_two_rollouts_under_load_fail_no_request(full_cluster: ClusterInfo) -> None:
    s3 = s3_of(full_cluster)
    s3.create_bucket(Bucket="rollouts")  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as out:
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(IRIS / "train.py"), out],
            check=True,
            capture_output=True,
        )
        for version in ("1", "2", "3"):
            push(s3, Path(out), "s3://rollouts/iris", version=version)
    apply_and_wait(full_cluster, "1")

    stop = asyncio.Event()
    load_task = asyncio.create_task(load(full_cluster, stop))
    for version in ("2", "3"):
        await asyncio.to_thread(apply_and_wait, full_cluster, version)
    stop.set()
    outcomes = await load_task

    assert set(outcomes) == {"200"}, outcomes
    assert outcomes["200"] > 100, outcomes
    status = json.loads(kubectl(full_cluster, "get", "rtapi", "iris", "-o", "json").stdout)[
        "status"
    ]
    assert (status["modelVersion"], status["updatedReplicas"], status["readyReplicas"]) == (
        "3",
        3,
        3,
    )
