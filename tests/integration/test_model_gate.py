"""Nothing rolls out before its model is in S3; "latest" is resolved and recorded."""

from __future__ import annotations

from typing import Any

import boto3
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry_local.wait import eventually
from tests.integration.test_operator import condition, create, get_api, realtime_api, wait_ready
from tests.support.events import event
from tests.support.ferry_operator import Operator


async def test_an_api_waits_for_its_model_then_rolls_out_the_resolved_version(
    api: ApiClient, namespace: str, operator: Operator, aws_env: dict[str, str]
) -> None:
    s3 = boto3.client("s3")
    bucket = f"gate-{namespace}"
    s3.create_bucket(Bucket=bucket)
    await create(api, namespace, realtime_api("iris", model={"uri": f"s3://{bucket}/iris"}))

    async def waiting() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "iris")
        return obj if condition(obj, "ModelAvailable").get("status") == "False" else None

    obj = await eventually(waiting, timeout=60, what="ModelAvailable=False")
    assert condition(obj, "ModelAvailable")["reason"] == "EmptyPrefix"
    assert condition(obj, "Ready")["reason"] == "EmptyPrefix"
    apps = client.AppsV1Api(api)
    assert not (await apps.list_namespaced_deployment(namespace)).items
    await event(api, namespace, "EmptyPrefix", "")

    for version in ("4", "12"):
        s3.put_object(Bucket=bucket, Key=f"iris/{version}/model.pkl", Body=b"weights")
    ready = await wait_ready(api, namespace, "iris", timeout=120)
    assert ready["status"]["modelVersion"] == "12"
    assert condition(ready, "ModelAvailable")["status"] == "True"
    deployment = await apps.read_namespaced_deployment("iris", namespace)
    template = deployment.spec.template
    assert template.metadata.annotations["ferry.dev/model-version"] == "12"
    assert template.spec.init_containers[0].args[:3] == [f"s3://{bucket}/iris", "--version", "12"]
