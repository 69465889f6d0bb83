"""A reconcile slowed between its apply and its status (a loaded API server, a slow S3) still
publishes the Deployment as it is by then: its pods may have turned ready meanwhile, and the
Deployment events that told so may have found nothing they could write yet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry.adapters.aws import Aws, AwsSettings
from ferry.adapters.kube import Kube
from ferry.services.reconcile import reconcile
from ferry.services.status_writer import StatusWriter
from ferry.settings import Settings
from ferry.spec.resource import RealtimeAPI, parse_api
from ferry_local.wait import eventually
from tests.integration.test_operator import condition, create, get_api, realtime_api


class HeldWriter(StatusWriter):
    """Ferry's status writer, held before it reads the API to publish until `release` is set."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(kube)
        self.release = asyncio.Event()
        self.held = asyncio.Event()

    async def current(self, api: RealtimeAPI) -> RealtimeAPI | None:  # type: ignore[override]
        self.held.set()
        await self.release.wait()
        return await super().current(api)


@pytest.fixture
async def aws(aws_env: dict[str, str]) -> AsyncIterator[Aws]:
    adapter = Aws(AwsSettings.from_env(aws_env))
    yield adapter
    adapter.close()


async def test_a_reconcile_whose_pods_turn_ready_before_it_publishes_publishes_them_ready(
    api: ApiClient, namespace: str, crd: None, aws: Aws
) -> None:
    await create(api, namespace, realtime_api("iris"))
    kube = Kube(api)
    writer = HeldWriter(kube)
    events: list[tuple[str, str, str]] = []
    reconciling = asyncio.create_task(
        reconcile(
            kube,
            aws,
            Settings(),
            writer,
            parse_api(await get_api(api, namespace, "iris")),
            record=lambda *event: events.append(event),
        )
    )
    await asyncio.wait_for(writer.held.wait(), timeout=30)
    apps = client.AppsV1Api(api)

    async def available() -> bool:
        found = await apps.read_namespaced_deployment("iris", namespace)
        return (found.status.available_replicas or 0) >= 1

    await eventually(available, timeout=90, what="iris's pod ready while its reconcile is held")
    writer.release.set()
    written = await asyncio.wait_for(reconciling, timeout=30)

    stored = await get_api(api, namespace, "iris")
    ready = condition(stored, "Ready")
    assert (ready.get("status"), ready.get("reason")) == ("True", "Available"), stored["status"]
    assert written["readyReplicas"] == 1
    assert ("Normal", "Created", "created Deployment and Service iris") in events
