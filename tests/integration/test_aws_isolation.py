"""One API's hanging AWS endpoint holds up neither the reconcile nor the autoscaling of another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from kubernetes_asyncio.client import ApiClient

from ferry_local.aws import MotoServer
from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually
from tests.integration.test_operator import condition, create, get_api, realtime_api, wait_ready
from tests.support import stall_proxy
from tests.support.chaos import Case
from tests.support.ferry_operator import Operator


@pytest.fixture
def stalling_endpoint(moto: MotoServer, tmp_path: Path) -> Iterator[str]:
    with stall_proxy.running(moto.endpoint, tmp_path / "proxy.log") as url:
        yield url


@pytest.fixture
def stalling_operator(
    cluster: ClusterInfo,
    crd: None,
    namespace: str,
    tmp_path: Path,
    moto: MotoServer,
    stalling_endpoint: str,
) -> Iterator[Operator]:
    env = {**moto.env(), "AWS_ENDPOINT_URL": stalling_endpoint, "FERRY_AUTOSCALE_INTERVAL": "1"}
    running = Operator(cluster, namespace, tmp_path / "operator.log", env=env)
    running.start()
    yield running
    running.stop()


@pytest.mark.chaos("component faults")
async def test_a_stalled_s3_call_delays_no_other_api(
    api: ApiClient,
    namespace: str,
    stalling_operator: Operator,
    aws_env: dict[str, str],
    chaos: Case,
) -> None:
    s3 = boto3.client("s3")
    for bucket in ("stalled-models", f"fine-{namespace}"):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="m/1/model.bin", Body=b"w")

    await create(api, namespace, realtime_api("stuck", model={"uri": "s3://stalled-models/m"}))
    await create(api, namespace, realtime_api("fine", model={"uri": f"s3://fine-{namespace}/m"}))

    fine = await wait_ready(api, namespace, "fine", timeout=20)
    assert fine["status"]["modelVersion"] == "1"
    stuck = await get_api(api, namespace, "stuck")
    assert condition(stuck, "Ready").get("status") == "False"
    # Still no verdict on its model: being checked, or an attempt failed and another comes.
    assert condition(stuck, "ModelAvailable").get("status") == "Unknown"

    # The autoscaler of the healthy API ticks on (it makes no AWS calls at all).
    async def autoscaled() -> bool:
        obj = await get_api(api, namespace, "fine")
        return "desiredReplicas" in obj.get("status", {})

    await eventually(autoscaled, timeout=20, what="the healthy API's autoscaler to report")
    chaos.handled()
