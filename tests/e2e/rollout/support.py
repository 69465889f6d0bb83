"""What the rollout e2e tests share: the iris model in the local S3, RealtimeAPIs of it, steady
load to their Service's ClusterIP over kept-alive connections (as clients in a cluster send it)
with every outcome counted, and the CI script."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import boto3

from ferry.adapters.kube import Kube
from ferry.model.push import push
from ferry_local.cluster import ClusterInfo
from ferry_local.cluster_ip import ClusterIPClient, Connections
from ferry_local.demo import IRIS
from ferry_local.wait import eventually
from tests.support.ferry_operator import REPO, kubectl

IRIS_IMAGE = "ghcr.io/ferry-dev/examples-iris:0.1.0"
# No image table of the node agent names it: its containers wait with ErrImagePull.
MISSING_IMAGE = "ghcr.io/ferry-dev/no-such-image:1.0.0"
CI_SCRIPT = REPO / "examples" / "ci-rollout" / "rollout.py"
LOAD_WORKERS = 6
MAX_REQUESTS = 1_000_000  # a bound, never reached: the load stops when the rollouts are done
# Seconds a load worker waits after a failed request before its next one.
FAILURE_PAUSE = 0.05
SAMPLE = json.dumps({"instances": [[6.2, 2.9, 4.3, 1.3]]}).encode()
JSON = {"Content-Type": "application/json"}


def s3_of(info: ClusterInfo) -> Any:
    env = info.env()
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


async def push_iris(info: ClusterInfo, bucket: str, versions: tuple[str, ...]) -> str:
    """The iris model trained once and pushed as each version; its s3:// URI."""
    s3 = s3_of(info)
    s3.create_bucket(Bucket=bucket)
    uri = f"s3://{bucket}/iris"
    with tempfile.TemporaryDirectory() as out:
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(IRIS / "train.py"), out],
            check=True,
            capture_output=True,
        )
        for version in versions:
            push(s3, Path(out), uri, version=version)
    return uri


def api_manifest(name: str, uri: str, version: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "RealtimeAPI",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "predictor": {
                "image": IRIS_IMAGE,
                "readinessPath": "/healthz",
                "resources": {"cpu": "100m", "memory": "256Mi"},
            },
            "model": {"uri": uri, "version": version},
            "serving": {"maxConcurrency": 4, "maxQueueLength": 64, "timeoutSeconds": 10},
            **spec,
        },
    }


def apply(info: ClusterInfo, manifest: dict[str, Any]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        file.write(json.dumps(manifest))
        file.flush()
        kubectl(info, "apply", "-f", file.name)


def wait_ready(info: ClusterInfo, name: str, timeout: int = 180) -> None:
    kubectl(info, "wait", "--for=condition=Ready", f"rtapi/{name}", f"--timeout={timeout}s")


def get_api(info: ClusterInfo, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl(info, "get", "rtapi", name, "-o", "json").stdout)
    return found


class Sender(Protocol):
    async def __call__(self) -> int: ...


async def load(
    info: ClusterInfo,
    name: str,
    stop: asyncio.Event,
    replicas: int,
    outcomes: Counter[str] | None = None,
    connections: Connections = "keep-alive",
    via: str = "cluster-ip",
) -> Counter[str]:
    """Steady requests to the API until `stop`, each worker on a kept-alive connection (or,
    with `connections="per-request"`, a new one per request); every outcome counted (into
    `outcomes` when given, so the caller can follow them). At its Service's ClusterIP, sent once
    the Service answers with `replicas` ready endpoints listed; or (`via="gateway"`) through the
    cluster's Gateway at the URL in the API's status, sent once the Gateway answers."""
    outcomes = Counter() if outcomes is None else outcomes
    failures: list[tuple[float, str]] = []

    async def run(send: Sender) -> None:
        async def worker() -> None:
            while not stop.is_set() and sum(outcomes.values()) < MAX_REQUESTS:
                try:
                    outcomes[str(await send())] += 1
                except Exception as error:  # noqa: BLE001 - every failure is counted
                    outcomes[f"{type(error).__name__}: {error}"] += 1
                    failures.append((time.time(), repr(error)))
                    # A failure that comes at once (no endpoints) would otherwise spin.
                    await asyncio.sleep(FAILURE_PAUSE)

        await asyncio.gather(*(worker() for _ in range(LOAD_WORKERS)))

    kube = await Kube.connect(str(info.kubeconfig))
    try:
        if via == "gateway":
            url = str(get_api(info, name)["status"]["endpoint"])
            connector = aiohttp.TCPConnector(
                limit=LOAD_WORKERS, force_close=connections == "per-request"
            )
            async with aiohttp.ClientSession(connector=connector) as session:

                async def to_gateway() -> int:
                    async with session.post(url, data=SAMPLE, headers=JSON) as reply:
                        await reply.read()
                        return reply.status

                await eventually(
                    lambda: _answers(to_gateway), timeout=30, what=f"the Gateway to serve {url}"
                )
                await run(to_gateway)
        else:
            async with ClusterIPClient(kube, "default", name, connections=connections) as service:
                await service.wait_until_serving(replicas, timeout=60)

                async def to_cluster_ip() -> int:
                    reply = await service.request("POST", "/", body=SAMPLE, headers=JSON)
                    return reply.status

                await run(to_cluster_ip)
    finally:
        await kube.close()
    print(f"load on {name}: {dict(outcomes)}")
    for at, failure in failures:  # when, to read beside the pods' logs
        when = datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="milliseconds")
        print(f"load on {name}: {when} {failure}")
    return outcomes


async def _answers(send: Sender) -> bool:
    # Envoy has a new route's endpoints a moment after the route is accepted.
    return await send() == 200


async def ci_rollout(info: ClusterInfo, *args: str) -> subprocess.CompletedProcess[str]:
    """examples/ci-rollout/rollout.py as a pipeline runs it."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(CI_SCRIPT), f"--kubectl={info.tool('kubectl')}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "KUBECONFIG": str(info.kubeconfig)},
    )
