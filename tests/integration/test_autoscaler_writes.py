"""An autoscaler tick writes its status fields once, even when the API it is handed is stale.

kopf hands each tick the API as its watch last delivered it. A busy operator (a thousand APIs)
receives its own status writes late; a tick that judged by that copy alone would write the same
fields again at every tick, and the backlog of writes would make the operator busier still. The
API server's own request counter shows how many writes arrived.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ferry.adapters.kube import Kube
from ferry.adapters.stats import StatsScraper
from ferry.services import autoscale
from ferry.services.status_writer import StatusWriter, api_path
from ferry.spec.resource import parse_api
from ferry_local.cluster import ClusterInfo
from tests.support.ferry_operator import kubectl

STATUS_PATCHES = re.compile(
    r'^apiserver_request_total\{[^}]*resource="realtimeapis"[^}]*subresource="status"'
    r'[^}]*verb="PATCH"[^}]*\} (\d+)$',
    re.M,
)


def status_patches(cluster: ClusterInfo) -> int:
    text = kubectl(cluster, "get", "--raw", "/metrics").stdout
    return sum(int(count) for count in STATUS_PATCHES.findall(text))


def ignore(kind: str, reason: str, message: str) -> None:
    pass


@pytest.fixture
async def kube(cluster: ClusterInfo) -> AsyncIterator[Kube]:
    connected = await Kube.connect(str(cluster.kubeconfig))
    yield connected
    await connected.close()


async def test_a_tick_does_not_write_again_what_it_wrote(
    cluster: ClusterInfo, crd: None, namespace: str, kube: Kube
) -> None:
    manifest = {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "RealtimeAPI",
        "metadata": {"name": "stale", "namespace": namespace},
        "spec": {"predictor": {"image": "example.com/model:1"}},
    }
    kubectl(cluster, "create", "-f", "-", stdin=json.dumps(manifest))
    read: dict[str, Any] | None = await kube.get(api_path(namespace, "stale"))
    assert read is not None and "status" not in read
    stale = parse_api(read)
    writer = StatusWriter(kube)
    scraper = StatsScraper(concurrency=4, timeout=0.5)
    try:

        async def tick(memory: autoscale.Memory | None) -> autoscale.Memory | None:
            return await autoscale.tick(
                kube, writer, scraper, stale, memory, record=ignore, replicas=1, pods=()
            )

        before = status_patches(cluster)
        memory = await tick(None)
        assert status_patches(cluster) == before + 1
        written = await kube.get(api_path(namespace, "stale"))
        assert written is not None and written["status"]["desiredReplicas"] == 1

        # The same stale copy again: nothing new to say, so nothing is sent.
        memory = await tick(memory)
        assert status_patches(cluster) == before + 1
        assert memory is not None and memory.published["desiredReplicas"] == 1

        # Without the memory of the write, the stale copy would have it written again.
        await tick(None)
        assert status_patches(cluster) == before + 2
    finally:
        await scraper.close()
