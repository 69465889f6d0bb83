"""The one writer of a RealtimeAPI's status against the real API server: the reconciler's fields
are never written from a stale read, the autoscaler's always are, and an API that is gone or has
moved on to a newer generation is not written at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry.adapters.kube import Kube
from ferry.services.status_writer import StatusWriter, api_path
from ferry.spec.resource import StoredAPI, stored_api
from ferry_local.wait import eventually
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    create,
    get_api,
    patch_api,
    realtime_api,
)


async def read(kube: Kube, namespace: str, name: str) -> StoredAPI:
    found = await kube.get(api_path(namespace, name))
    assert found is not None
    return stored_api(found)


async def test_a_status_write_from_a_stale_read_is_refused_so_no_history_is_lost(
    api: ApiClient, namespace: str, crd: None
) -> None:
    await create(api, namespace, realtime_api("iris"))
    writer = StatusWriter(Kube(api))
    stale = await read(Kube(api), namespace, "iris")
    # Another writer (the autoscaler, say) writes in between.
    assert await writer.write_scaled(stale, {"inFlight": 1.5}) == {"inFlight": 1.5}
    seen: list[Mapping[str, Any]] = []

    def compute(now: StoredAPI) -> dict[str, Any]:
        seen.append(dict(now.status))
        return {"phase": "Pending"}

    written = await writer.write_reconciled(stale, compute)
    # Computed from the stale read, the write was refused, and computed again from the API read
    # afresh: what the other writer wrote is what it was computed from.
    assert seen == [{}, {"inFlight": 1.5}]
    assert written is not None and written.changes == {"phase": "Pending"}
    assert written.api.status == {"inFlight": 1.5, "phase": "Pending"}
    stored = await get_api(api, namespace, "iris")
    assert (stored["status"]["inFlight"], stored["status"]["phase"]) == (1.5, "Pending")


async def test_only_fields_that_changed_are_sent(api: ApiClient, namespace: str, crd: None) -> None:
    await create(api, namespace, realtime_api("iris"))
    kube = Kube(api)
    writer = StatusWriter(kube)
    first = await writer.write_reconciled(
        await read(kube, namespace, "iris"), lambda _: {"phase": "Pending", "replicas": 0}
    )
    assert first is not None and first.changes == {"phase": "Pending", "replicas": 0}
    version = first.api.resource_version
    again = await writer.write_reconciled(first.api, lambda _: {"phase": "Ready", "replicas": 0})
    assert again is not None and again.changes == {"phase": "Ready"}
    assert again.api.resource_version != version
    unchanged = await writer.write_reconciled(again.api, lambda _: {"phase": "Ready"})
    assert unchanged is not None and unchanged.changes == {}
    assert unchanged.api.resource_version == again.api.resource_version
    # The autoscaler's fields, judged against what it wrote last as well as what was read.
    assert await writer.write_scaled(again.api, {"desiredReplicas": 2}) == {"desiredReplicas": 2}
    assert (
        await writer.write_scaled(
            again.api, {"desiredReplicas": 2}, last_written={"desiredReplicas": 2}
        )
        == {}
    )
    stored = await get_api(api, namespace, "iris")
    assert (
        stored["metadata"]["resourceVersion"]
        == (await read(kube, namespace, "iris")).resource_version
    )
    assert (stored["status"]["phase"], stored["status"]["desiredReplicas"]) == ("Ready", 2)


async def test_a_newer_generation_is_not_written_from_a_read_of_an_older_one(
    api: ApiClient, namespace: str, crd: None
) -> None:
    await create(api, namespace, realtime_api("iris"))
    kube = Kube(api)
    writer = StatusWriter(kube)
    older = await read(kube, namespace, "iris")
    await patch_api(api, namespace, "iris", {"spec": {"predictor": {"port": 9000}}})
    computed: list[int] = []

    def compute(now: StoredAPI) -> dict[str, Any]:
        computed.append(now.ref.generation)
        return {"observedGeneration": now.ref.generation, "phase": "Pending"}

    assert await writer.write_reconciled(older, compute) is None
    assert computed == [1]
    assert "status" not in await get_api(api, namespace, "iris")


async def test_a_status_write_to_an_api_that_is_gone_writes_nothing_and_raises_nothing(
    api: ApiClient, namespace: str, crd: None
) -> None:
    await create(api, namespace, realtime_api("iris"))
    kube = Kube(api)
    writer = StatusWriter(kube)
    gone = await read(kube, namespace, "iris")
    await client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "iris"
    )
    # No operator runs here to release its finalizer, which the admission policy added.
    await patch_api(api, namespace, "iris", {"metadata": {"finalizers": None}})

    async def deleted() -> bool:
        return await kube.get(api_path(namespace, "iris")) is None

    await eventually(deleted, timeout=30, what="the API deleted")
    assert await writer.write_reconciled(gone, lambda _: {"phase": "Pending"}) is None
    assert await writer.current(gone) is None
    assert await writer.write_scaled(gone, {"desiredReplicas": 1}) == {}
