"""The local environment's demo: the iris example served for real, end to end.

Trains examples/iris, pushes the model to the local S3 as a new version, applies the
RealtimeAPI, waits for Ready as a CI job would, and sends predictions to the API through the
cluster's Gateway (Envoy Gateway's Envoy, which balances them over the ready pods), at the URL
the API's status gives (its pods run as processes on the node agent, behind Ferry's proxy).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import boto3

from ferry.adapters.kube import Kube
from ferry.model.push import push
from ferry.services.status_writer import api_path
from ferry_local.cluster import ClusterInfo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IRIS = EXAMPLES / "iris"
BUCKET = "ferry-examples"
SAMPLES = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]
READY_TIMEOUT = 240
JSON = {"Content-Type": "application/json"}


class DemoError(RuntimeError):
    pass


def _run(info: ClusterInfo, *argv: str) -> str:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{info.bin_dir}:{os.environ.get('PATH', '')}", **info.env()},
    )
    if result.returncode != 0:
        raise DemoError(f"{' '.join(argv[:3])} failed: {result.stderr.strip()}")
    return result.stdout


def publish_model(info: ClusterInfo, say: Callable[[str], None]) -> str:
    """Train and push a new version of the iris model; return its version."""
    aws = info.env()
    s3 = boto3.client(
        "s3",
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        region_name=aws["AWS_REGION"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
    )
    if BUCKET not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    with tempfile.TemporaryDirectory() as out:
        say(_run(info, sys.executable, str(IRIS / "train.py"), out).strip())
        pushed = push(s3, Path(out), f"s3://{BUCKET}/iris")
    say(f"pushed {pushed.files} files as version {pushed.version} to {pushed.uri}")
    return pushed.version


async def predict(
    info: ClusterInfo, say: Callable[[str], None], namespace: str = "default"
) -> list[dict[str, Any]]:
    """The predictions of SAMPLES, asked of the iris API through the cluster's Gateway, at the
    URL its status gives, as a client outside the cluster would."""
    body = json.dumps({"instances": SAMPLES})
    kube = await Kube.connect(str(info.kubeconfig))
    try:
        api = await kube.get(api_path(namespace, "iris"))
    finally:
        await kube.close()
    url = str(((api or {}).get("status") or {}).get("endpoint", ""))
    if not url.startswith("http://") or ".svc:" in url:
        raise DemoError(f"rtapi/iris has no URL through the Gateway (status.endpoint {url!r})")
    say(
        "asking it through the cluster's Gateway (Envoy Gateway), as this machine can: curl -s "
        f"-H 'Content-Type: application/json' -d '{body}' {url}"
    )
    try:
        status, text = await _post_when_routed(url, body)
    except (TimeoutError, aiohttp.ClientError) as error:
        raise DemoError(f"could not ask the iris API at {url}: {error}") from None
    if status != 200:  # noqa: PLR2004
        raise DemoError(f"the API answered {status}: {text[:300]!r}")
    predictions: list[dict[str, Any]] = json.loads(text)["predictions"]
    return predictions


# Envoy learns of the route's endpoints from Envoy Gateway a moment after the route is
# accepted (which Ready covers); until then it answers 503 "no healthy upstream".
ROUTED_WITHIN = 30.0


async def _post_when_routed(url: str, body: str) -> tuple[int, str]:
    deadline = asyncio.get_running_loop().time() + ROUTED_WITHIN
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            async with session.post(url, data=body, headers=JSON) as reply:
                text = await reply.text()
                unrouted = reply.status == 503 and "no healthy upstream" in text  # noqa: PLR2004
                if not unrouted or asyncio.get_running_loop().time() > deadline:
                    return reply.status, text
            await asyncio.sleep(0.2)


def deploy(info: ClusterInfo, say: Callable[[str], None]) -> None:
    say(_run(info, info.tool("kubectl"), "apply", "-f", str(IRIS / "realtimeapi.yaml")).strip())
    say("waiting for rtapi/iris to be Ready (the pod fetches the model, then the runtime loads it)")
    _run(
        info,
        info.tool("kubectl"),
        "wait",
        "--for=condition=Ready",
        "rtapi/iris",
        f"--timeout={READY_TIMEOUT}s",
    )
    say(_run(info, info.tool("kubectl"), "get", "rtapi", "iris").rstrip())
