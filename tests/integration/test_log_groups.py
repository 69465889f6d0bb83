"""Each API's CloudWatch Logs group, against moto: created, retention followed, kept on delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry.services.logs import log_group_name
from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    create,
    patch_api,
    realtime_api,
    wait_ready,
)
from tests.support.ferry_operator import Operator


def test_log_groups_are_named_for_namespace_and_api() -> None:
    assert log_group_name("ml", "iris") == "/ferry/ml/iris"
    assert log_group_name("ml", "iris", "/acme/") == "/acme/ml/iris"


async def test_an_api_gets_a_log_group_that_follows_its_retention_and_outlives_it(
    api: ApiClient, namespace: str, operator: Operator, aws_env: dict[str, str]
) -> None:
    logs = boto3.client("logs")
    group = f"/ferry/{namespace}/iris"

    def retention() -> Any:
        found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        return found[0].get("retentionInDays") if found else None

    await create(api, namespace, realtime_api("iris", logging={"retentionDays": 7}))
    await wait_ready(api, namespace, "iris")

    async def created() -> bool:
        # The reconciler sees to the log group after the status, so that a slow AWS never
        # delays serving: Ready may come a moment before it.
        return bool(retention() == 7)

    await eventually(created, timeout=30, what="a log group with 7 days' retention")

    async def announced() -> bool:
        # kopf posts Events from a queue of its own, after the group is there.
        events = await client.CoreV1Api(api).list_namespaced_event(
            namespace, field_selector="involvedObject.name=iris"
        )
        return "LogGroupCreated" in {e.reason for e in events.items}

    await eventually(announced, timeout=30, what="a LogGroupCreated Event on the API")

    await patch_api(api, namespace, "iris", {"spec": {"logging": {"retentionDays": 30}}})

    async def retention_followed() -> bool:
        return retention() == 30

    await eventually(retention_followed, timeout=60, what="retention 30 days on the log group")

    await client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "iris"
    )

    async def api_gone() -> bool:
        listed = await client.CustomObjectsApi(api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL
        )
        return not listed["items"]

    await eventually(api_gone, timeout=60, what="the API to be deleted")
    assert retention() == 30, "the operator keeps log groups unless told to delete them"


async def test_an_operator_without_aws_still_serves_and_says_why_logs_are_missing(
    api: ApiClient, namespace: str, cluster: ClusterInfo, crd: None, tmp_path: Path
) -> None:
    # Nothing listens on port 9 of loopback: every AWS call fails to connect.
    no_aws = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_REGION": "us-east-1",
    }
    operator = Operator(cluster, namespace, tmp_path / "operator.log", env=no_aws)
    operator.start()
    try:
        await create(api, namespace, realtime_api("iris"))
        await wait_ready(api, namespace, "iris", timeout=60)

        async def warned() -> bool:
            events = await client.CoreV1Api(api).list_namespaced_event(
                namespace, field_selector="involvedObject.name=iris"
            )
            return "LogGroupFailed" in {e.reason for e in events.items}

        await eventually(warned, timeout=120, what="a LogGroupFailed Warning")
    finally:
        operator.stop()
