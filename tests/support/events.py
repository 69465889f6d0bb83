"""Waiting for a RealtimeAPI's Events: kopf posts them from a queue of its own, a moment after
the status that told of them, so a test reads them until they are there, never once."""

from __future__ import annotations

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry_local.wait import eventually


async def event(api: ApiClient, namespace: str, reason: str, saying: str) -> str:
    """The message of the API's Event with this reason that says this, once posted."""
    core = client.CoreV1Api(api)

    async def posted() -> str | None:
        events = await core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.kind=RealtimeAPI,reason={reason}"
        )
        return next((str(e.message) for e in events.items if saying in str(e.message)), None)

    return await eventually(posted, timeout=30, what=f"a {reason} Event saying {saying!r}")
