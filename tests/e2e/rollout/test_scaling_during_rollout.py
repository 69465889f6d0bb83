"""Scaling in the middle of a rollout: the rollout keeps its guarantees (no request fails, never
fewer ready replicas than asked for), finishes on the new count, and the count stays: the
reconciler, which applies the Deployment for every generation, never writes replicas.

`kubectl scale` on the API (autoscaling off, so spec.replicas is the count) is carried to the
Deployment's scale subresource by the operator's autoscaler, as a demand-driven change would be.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually
from tests.e2e.rollout.support import api_manifest, apply, get_api, load, push_iris, wait_ready
from tests.support.ferry_operator import kubectl

NAME = "iris-scales"


def iris(uri: str, version: str) -> dict[str, Any]:
    return api_manifest(
        NAME,
        uri,
        version,
        replicas=2,
        autoscaling={"enabled": False, "minReplicas": 1, "maxReplicas": 4},
        rollout={"maxSurge": 1, "maxUnavailable": 0},
    )


def deployment(info: ClusterInfo) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        kubectl(info, "get", "deployment", NAME, "-o", "json").stdout
    )
    return found


async def test_scaling_during_a_rollout_keeps_its_guarantees_and_its_count(
    full_cluster: ClusterInfo,
) -> None:
    uri = await push_iris(full_cluster, "scaling", ("1", "2"))
    apply(full_cluster, iris(uri, "1"))
    wait_ready(full_cluster, NAME)
    stop = asyncio.Event()
    load_task = asyncio.create_task(load(full_cluster, NAME, stop, replicas=2))

    apply(full_cluster, iris(uri, "2"))

    async def rolling() -> dict[str, Any] | None:
        found = await asyncio.to_thread(deployment, full_cluster)
        status = found.get("status", {})
        new_template = (
            found["spec"]["template"]["metadata"]["annotations"]["ferry.dev/model-version"] == "2"
        )
        observed = status.get("observedGeneration") == found["metadata"]["generation"]
        updated = status.get("updatedReplicas", 0)
        return found if new_template and observed and updated < 2 else None

    await eventually(rolling, timeout=60, what="the rollout of version 2 under way", interval=0.05)
    scaled_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    kubectl(full_cluster, "scale", "rtapi", NAME, "--replicas=4")

    async def rolled_out_on_four() -> dict[str, Any] | None:
        api = await asyncio.to_thread(get_api, full_cluster, NAME)
        ready = next(c for c in api["status"]["conditions"] if c["type"] == "Ready")
        current = ready["observedGeneration"] == api["metadata"]["generation"]
        return api if current and ready["status"] == "True" else None

    api = await eventually(rolled_out_on_four, timeout=180, what="Ready on 4 replicas")
    stop.set()
    served = await load_task

    assert set(served) == {"200"}, served
    assert api["status"]["replicaCounts"] == "4/4"
    assert deployment(full_cluster)["spec"]["replicas"] == 4
    revisions = api["status"]["revisions"]
    assert [(r["modelVersion"], r["outcome"]) for r in revisions] == [
        ("1", "Complete"),
        ("2", "Complete"),
    ], "scaling is no new revision, and does not restart the rollout"
    finished = datetime.datetime.fromisoformat(revisions[1]["finished"])
    assert finished >= scaled_at, "the scale landed while version 2 was rolling out"
    # A later generation that changes no pod leaves the count alone too.
    kubectl(
        full_cluster,
        "patch",
        "rtapi",
        NAME,
        "--type=merge",
        "-p",
        '{"spec": {"serving": {"timeoutSeconds": 10}, "logging": {"retentionDays": 30}}}',
    )
    await eventually(rolled_out_on_four, timeout=60, what="Ready for the new generation")
    assert deployment(full_cluster)["spec"]["replicas"] == 4
    kubectl(full_cluster, "delete", "rtapi", NAME, "--wait=false")
