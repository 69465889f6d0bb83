"""AWS faults, injected in front of moto by tests.support.fault_proxy: throttling is retried
with back-off until it passes, what no retry fixes becomes a reason a person can act on, and
the operator stays healthy through all of it.

Covered elsewhere: a hanging endpoint holds up no other API (test_aws_isolation.py); a
missing bucket as a model check's reason (test_model_check.py); the capacity loop's refused
scale-out and throttled describes, end to end (test_capacity.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry.adapters.aws import Aws, AwsPermanentError, AwsSettings, AwsTemporaryError
from ferry.artifacts.versions import ModelReason
from ferry.capacity.node_group import NodeGroup
from ferry.services.model import check_model
from ferry.services.node_groups import describe
from ferry.spec.model import ModelSource
from ferry_local.aws import REGION, MotoServer
from ferry_local.cluster import ClusterInfo
from ferry_local.health import healthy
from ferry_local.wait import eventually
from tests.integration.test_operator import condition, create, get_api, realtime_api, wait_ready
from tests.support import fault_proxy
from tests.support.chaos import Case
from tests.support.fault_proxy import FaultProxy
from tests.support.ferry_operator import Operator

THROTTLING = {"status": 400, "code": "Throttling", "message": "Rate exceeded"}
SLOW_DOWN = {"status": 503, "code": "SlowDown", "message": "Please reduce your request rate."}
ACCESS_DENIED = {"status": 403, "code": "AccessDenied", "message": "Access Denied"}
BACKED_OFF = 0.1
"""Seconds three throttled attempts take at least. botocore waits rand(0, 1) * 2**i seconds
before retry i, so three waits add up to less than this once in some 50,000 calls; without
back-off, four round trips to moto on loopback take a few milliseconds."""


@pytest.fixture
def faults(moto: MotoServer, tmp_path: Path) -> Iterator[FaultProxy]:
    with fault_proxy.running(moto.endpoint, tmp_path / "faults.log") as proxy:
        yield proxy


@pytest.fixture
async def aws(faults: FaultProxy, aws_env: dict[str, str]) -> AsyncIterator[Aws]:
    """The operator's AWS adapter, speaking to moto through the fault proxy."""
    adapter = Aws(AwsSettings(region=REGION, endpoint_url=faults.url))
    yield adapter
    adapter.close()


@pytest.fixture
def bucket(aws_env: dict[str, str]) -> str:
    """A bucket of this test with one complete model version."""
    name = f"faults-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="m/1/model.bin", Body=b"w")
    return name


def hits(faults: FaultProxy) -> list[int]:
    return [rule["hits"] for rule in faults.rules()]


@pytest.mark.chaos("component faults")
async def test_throttled_s3_calls_are_retried_until_they_pass(
    aws: Aws, faults: FaultProxy, bucket: str, chaos: Case
) -> None:
    faults.inject({"service": "s3", "bucket": bucket, "times": 3, **SLOW_DOWN})
    started = time.monotonic()
    check = await check_model(aws, ModelSource(f"s3://{bucket}/m", "1"))
    assert check.reason == ModelReason.AVAILABLE, check.message
    assert hits(faults) == [3]
    assert time.monotonic() - started >= BACKED_OFF
    chaos.handled()


@pytest.mark.chaos("component faults")
async def test_throttled_autoscaling_calls_are_retried_until_they_pass(
    aws: Aws, faults: FaultProxy, chaos: Case
) -> None:
    faults.inject(
        {"service": "autoscaling", "action": "DescribeAutoScalingGroups", "times": 3, **THROTTLING}
    )
    started = time.monotonic()
    found = await aws.call("autoscaling", "describe_auto_scaling_groups")
    assert "AutoScalingGroups" in found
    assert hits(faults) == [3]
    assert time.monotonic() - started >= BACKED_OFF
    chaos.handled()


@pytest.mark.chaos("component faults")
async def test_throttling_that_lasts_ends_as_a_temporary_error_after_bounded_retries(
    faults: FaultProxy, aws_env: dict[str, str], chaos: Case
) -> None:
    # Two retries rather than the operator's five keep the test short; the bound is the same.
    aws = Aws(AwsSettings(region=REGION, endpoint_url=faults.url, max_attempts=2))
    faults.inject({"service": "autoscaling", **THROTTLING})
    try:
        with pytest.raises(AwsTemporaryError) as raised:
            await aws.call("autoscaling", "describe_auto_scaling_groups")
    finally:
        aws.close()
    assert raised.value.code == "Throttling"
    # botocore's max_attempts counts the retries after the first attempt.
    assert hits(faults) == [1 + 2]
    chaos.handled()


@pytest.mark.chaos("component faults")
async def test_access_denied_is_permanent_and_not_retried(
    aws: Aws, faults: FaultProxy, chaos: Case
) -> None:
    faults.inject({"service": "autoscaling", **ACCESS_DENIED})
    with pytest.raises(AwsPermanentError) as raised:
        await aws.call("autoscaling", "describe_auto_scaling_groups")
    assert raised.value.code == "AccessDenied"
    assert hits(faults) == [1]
    chaos.handled()


@pytest.mark.chaos("component faults")
async def test_a_denied_model_bucket_is_a_reason_to_fix_the_operators_role(
    aws: Aws, faults: FaultProxy, bucket: str, chaos: Case
) -> None:
    faults.inject({"service": "s3", "bucket": bucket, **ACCESS_DENIED})
    check = await check_model(aws, ModelSource(f"s3://{bucket}/m", "1"))
    assert check.reason == ModelReason.ACCESS_DENIED
    assert f"may not list s3://{bucket}/m" in check.message
    chaos.handled()


@pytest.mark.chaos("component faults")
async def test_an_unreadable_or_missing_auto_scaling_group_leaves_its_node_group_alone(
    aws: Aws, faults: FaultProxy, chaos: Case
) -> None:
    group = NodeGroup("gpu", asg_name="no-such-asg")
    missing = await describe(aws, [group])
    assert (missing.states, missing.failed) == ({}, False)
    assert missing.unavailable == {
        "gpu": "Auto Scaling group no-such-asg does not exist (asgName in FERRY_NODE_GROUPS)"
    }
    faults.inject({"service": "autoscaling", **ACCESS_DENIED})
    denied = await describe(aws, [group])
    assert (denied.states, denied.failed) == ({}, True)
    assert "AccessDenied" in denied.unavailable["gpu"]
    chaos.handled()


@pytest.fixture
def faulty_operator(
    cluster: ClusterInfo,
    crd: None,
    namespace: str,
    tmp_path: Path,
    moto: MotoServer,
    faults: FaultProxy,
) -> Iterator[Operator]:
    env = {**moto.env(), "AWS_ENDPOINT_URL": faults.url}
    running = Operator(cluster, namespace, tmp_path / "operator.log", env=env)
    running.start()
    yield running
    running.stop()


@pytest.mark.chaos("component faults")
async def test_the_operator_reports_each_fault_and_recovers_when_throttling_ends(
    api: ApiClient,
    namespace: str,
    faults: FaultProxy,
    faulty_operator: Operator,
    aws_env: dict[str, str],
    chaos: Case,
) -> None:
    s3 = boto3.client("s3")
    for name in (f"denied-{namespace}", f"throttled-{namespace}"):
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="m/1/model.bin", Body=b"w")
    faults.inject(
        {"service": "s3", "bucket": f"denied-{namespace}", **ACCESS_DENIED},
        {"service": "s3", "bucket": f"throttled-{namespace}", **SLOW_DOWN},
    )
    for name, bucket in (
        ("denied", f"denied-{namespace}"),
        ("missing", f"missing-{namespace}"),
        ("throttled", f"throttled-{namespace}"),
    ):
        await create(api, namespace, realtime_api(name, model={"uri": f"s3://{bucket}/m"}))

    async def model_reason(name: str) -> str | None:
        found = condition(await get_api(api, namespace, name), "ModelAvailable")
        return found.get("reason") if found.get("status") == "False" else None

    assert await eventually(lambda: model_reason("denied"), timeout=60, what="denied") == (
        "AccessDenied"
    )
    assert await eventually(lambda: model_reason("missing"), timeout=60, what="missing") == (
        "NoSuchBucket"
    )

    async def retrying() -> list[Any]:
        found = await client.CoreV1Api(api).list_namespaced_event(
            namespace, field_selector="involvedObject.name=throttled"
        )
        return [e for e in found.items if e.reason == "CheckFailed" and "SlowDown" in e.message]

    await eventually(retrying, timeout=90, what="a CheckFailed event for the throttled bucket")
    throttled = await get_api(api, namespace, "throttled")
    assert condition(throttled, "Ready").get("status") == "False"
    assert condition(throttled, "ModelAvailable")["reason"] == "CheckFailed"
    assert "SlowDown" in condition(throttled, "ModelAvailable")["message"]
    assert faulty_operator.process is not None and faulty_operator.process.poll() is None
    assert healthy(faulty_operator.liveness_url)

    faults.inject({"service": "s3", "bucket": f"denied-{namespace}", **ACCESS_DENIED})
    ready = await wait_ready(api, namespace, "throttled", timeout=120)
    assert ready["status"]["modelVersion"] == "1"
    assert condition(await get_api(api, namespace, "denied"), "Ready").get("status") != "True"
    assert healthy(faulty_operator.liveness_url)
    chaos.handled()
