"""Events the agent posts about its pods and its Node, as a kubelet does.

A repeat of the same Event (same object, reason and message: a container that fails to start at
every retry) bumps the first one's count and lastTimestamp instead of adding another, like the
kubelet's event correlator. Posting is fire-and-forget: an Event that cannot be written is
logged, never a reason for a pod or the agent to stop.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from typing import Any

from ferry.adapters.kube import Kube, KubeError
from ferry_local.agent.status import timestamp

log = logging.getLogger("ferry_local.agent")

SOURCE = "ferry-node-agent"
NORMAL, WARNING = "Normal", "Warning"
# The API server refuses longer messages.
_MAX_MESSAGE = 1024
# Repeats are remembered for this many distinct Events, oldest forgotten first.
_REMEMBERED = 512


def involved_pod(pod: Mapping[str, Any], field_path: str | None = None) -> dict[str, Any]:
    meta = pod["metadata"]
    involved = {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
    }
    if field_path is not None:
        involved["fieldPath"] = field_path
    return involved


def involved_node(name: str, uid: str) -> dict[str, Any]:
    # A Node's Events go to "default", as the kubelet's do.
    return {"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid, "namespace": "default"}


class EventRecorder:
    def __init__(self, kube: Kube, node_name: str) -> None:
        self.kube = kube
        self.node_name = node_name
        self._posted: dict[tuple[str, ...], tuple[str, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, involved: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        """Post the Event in the background."""
        task = asyncio.create_task(self.post(involved, kind, reason, message[:_MAX_MESSAGE]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def post(self, involved: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        namespace = involved["namespace"]
        key = (str(involved.get("uid")), str(involved.get("fieldPath")), kind, reason, message)
        stamp = timestamp(datetime.datetime.now(datetime.UTC))
        try:
            if (seen := self._posted.get(key)) is not None:
                name, count = seen
                await self.kube.request(
                    "PATCH",
                    f"/api/v1/namespaces/{namespace}/events/{name}",
                    body={"count": count + 1, "lastTimestamp": stamp},
                    content_type="application/merge-patch+json",
                )
                self._remember(key, name, count + 1)
                return
            created = await self.kube.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/events",
                body={
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
                    "involvedObject": dict(involved),
                    "type": kind,
                    "reason": reason,
                    "message": message,
                    "source": {"component": SOURCE, "host": self.node_name},
                    "firstTimestamp": stamp,
                    "lastTimestamp": stamp,
                    "count": 1,
                },
            )
            self._remember(key, created["metadata"]["name"], 1)
        except KubeError as error:
            # A bumped Event may have expired meanwhile: the next repeat posts a new one.
            self._posted.pop(key, None)
            log.warning("event %s on %s not posted: %s", reason, involved.get("name"), error)

    def _remember(self, key: tuple[str, ...], name: str, count: int) -> None:
        self._posted.pop(key, None)
        self._posted[key] = (name, count)
        while len(self._posted) > _REMEMBERED:
            del self._posted[next(iter(self._posted))]
