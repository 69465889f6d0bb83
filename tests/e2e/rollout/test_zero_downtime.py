"""Two consecutive rollouts of a 3-replica API under steady load fail no request.

Real pods on the node agent: the model fetched from S3 by the init container, Ferry's proxy in
front of ferry-runtime serving the iris model; the load goes over kept-alive connections to the
Service's ClusterIP, through kube-proxy as a client in the cluster sends it, or through the
cluster's Gateway (Envoy, balancing each request), and every response is counted.
"""

from __future__ import annotations

import asyncio

import pytest

from ferry_local.cluster import ClusterInfo
from tests.e2e.rollout.support import api_manifest, apply, get_api, load, push_iris, wait_ready


def iris(uri: str, version: str, name: str = "iris") -> dict[str, object]:
    return api_manifest(
        name,
        uri,
        version,
        autoscaling={"minReplicas": 3, "maxReplicas": 3},
        rollout={"maxSurge": 1, "maxUnavailable": 0},
    )


@pytest.mark.parametrize("via", ["cluster-ip", "gateway"])
async def test_two_rollouts_under_load_fail_no_request(full_cluster: ClusterInfo, via: str) -> None:
    name = f"iris-{via}"
    uri = await push_iris(full_cluster, f"rollouts-{via}", ("1", "2", "3"))
    apply(full_cluster, iris(uri, "1", name))
    wait_ready(full_cluster, name)

    stop = asyncio.Event()
    load_task = asyncio.create_task(load(full_cluster, name, stop, replicas=3, via=via))
    for version in ("2", "3"):
        await asyncio.to_thread(apply, full_cluster, iris(uri, version, name))
        await asyncio.to_thread(wait_ready, full_cluster, name)
    stop.set()
    outcomes = await load_task

    assert set(outcomes) == {"200"}, outcomes
    assert outcomes["200"] > 100, outcomes
    status = get_api(full_cluster, name)["status"]
    assert (status["modelVersion"], status["updatedReplicas"], status["readyReplicas"]) == (
        "3",
        3,
        3,
    )
    assert [(r["modelVersion"], r["outcome"]) for r in status["revisions"]] == [
        ("1", "Complete"),
        ("2", "Complete"),
        ("3", "Complete"),
    ]
