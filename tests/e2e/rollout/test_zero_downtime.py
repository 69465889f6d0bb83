"""Two consecutive rollouts of a 3-replica API under steady load fail no request.

Real pods on the node agent: the model fetched from S3 by the init container, Ferry's proxy in
front of ferry-runtime serving the iris model; the load goes to the Service's ClusterIP over
kept-alive connections, through kube-proxy as a client in the cluster sends it, and every
response is counted.
"""

from __future__ import annotations

import asyncio

from ferry_local.cluster import ClusterInfo
from tests.e2e.rollout.support import api_manifest, apply, get_api, load, push_iris, wait_ready


def iris(uri: str, version: str) -> dict[str, object]:
    return api_manifest(
        "iris",
        uri,
        version,
        autoscaling={"minReplicas": 3, "maxReplicas": 3},
        rollout={"maxSurge": 1, "maxUnavailable": 0},
    )


async def test_two_rollouts_under_load_fail_no_request(full_cluster: ClusterInfo) -> None:
    uri = await push_iris(full_cluster, "rollouts", ("1", "2", "3"))
    apply(full_cluster, iris(uri, "1"))
    wait_ready(full_cluster, "iris")

    stop = asyncio.Event()
    load_task = asyncio.create_task(load(full_cluster, "iris", stop, replicas=3))
    for version in ("2", "3"):
        await asyncio.to_thread(apply, full_cluster, iris(uri, version))
        await asyncio.to_thread(wait_ready, full_cluster, "iris")
    stop.set()
    outcomes = await load_task

    assert set(outcomes) == {"200"}, outcomes
    assert outcomes["200"] > 100, outcomes
    status = get_api(full_cluster, "iris")["status"]
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
