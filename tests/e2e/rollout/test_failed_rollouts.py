"""A version that never becomes ready, rolled out by the CI script under load: the operator rolls
it back at its deadline, the old replicas serve every request throughout, and the job fails with
the reason. Fixing the version then rolls out and the job passes.

Real pods on the node agent, which has no image under the bad name: the new pod waits with
ErrImagePull and ImagePullBackOff in turn, as on a kubelet that cannot pull.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from kubernetes_asyncio import client, config, watch

from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually, wait_until
from tests.e2e.rollout.support import (
    IRIS_IMAGE,
    MISSING_IMAGE,
    api_manifest,
    apply,
    ci_rollout,
    get_api,
    load,
    push_iris,
    wait_ready,
)
from tests.support.chaos import Case
from tests.support.ferry_operator import kubectl

NAME = "iris-fails"
REPLICAS = 2
# Long enough for a real pod to fetch its model and start on a busy 2-core machine (10 s is
# not): the deadline is the longest a healthy new pod may take to become ready.
DEADLINE = 30


async def lowest_ready(info: ClusterInfo, stop: asyncio.Event) -> int:
    """The fewest ready replicas the API's Deployment reported until `stop`, from a watch."""
    lowest = REPLICAS
    api_client = await config.new_client_from_config(config_file=str(info.kubeconfig))
    async with api_client:
        apps = client.AppsV1Api(api_client)

        async def follow() -> None:
            nonlocal lowest
            async for event in watch.Watch().stream(
                apps.list_namespaced_deployment,
                "default",
                field_selector=f"metadata.name={NAME}",
                timeout_seconds=600,
            ):
                ready = (event["raw_object"].get("status") or {}).get("readyReplicas", 0)
                lowest = min(lowest, int(ready))

        following = asyncio.create_task(follow())
        await stop.wait()
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    return lowest


def outcomes(api: dict[str, Any]) -> list[tuple[int, str, int | None]]:
    return [(r["revision"], r["outcome"], r.get("rollbackOf")) for r in api["status"]["revisions"]]


@pytest.mark.chaos("misbehaving predictors")
async def test_a_version_that_never_runs_is_rolled_back_while_every_request_is_served(
    full_cluster: ClusterInfo, chaos: Case
) -> None:
    uri = await push_iris(full_cluster, "failures", ("1", "2"))
    apply(
        full_cluster,
        api_manifest(
            NAME,
            uri,
            "1",
            autoscaling={"minReplicas": REPLICAS, "maxReplicas": REPLICAS},
            rollout={"maxSurge": 1, "maxUnavailable": 0, "progressDeadlineSeconds": DEADLINE},
        ),
    )
    wait_ready(full_cluster, NAME)

    stop = asyncio.Event()
    load_task = asyncio.create_task(load(full_cluster, NAME, stop, replicas=REPLICAS))
    ready_task = asyncio.create_task(lowest_ready(full_cluster, stop))
    bad = await ci_rollout(full_cluster, "--name", NAME, f"--image={MISSING_IMAGE}")
    print(bad.stdout, bad.stderr, sep="")  # what a pipeline's log shows (pytest -s)

    assert bad.returncode == 1, bad.stdout + bad.stderr
    reason = bad.stderr.strip().splitlines()[-1]
    assert reason.startswith("FAILED: RolledBack: generation 2 failed to roll out"), reason
    # The pod's own words at the deadline: the agent, like a kubelet, shows ErrImagePull and
    # then ImagePullBackOff in turn, and both carry why the pull failed.
    assert f'image "{MISSING_IMAGE}" has no local command' in reason, reason

    def restored_and_complete(api: dict[str, Any]) -> bool:
        return outcomes(api) == [(1, "Complete", None), (2, "RolledBack", None), (3, "Complete", 2)]

    async def restored() -> dict[str, Any] | None:
        api = await asyncio.to_thread(get_api, full_cluster, NAME)
        return api if restored_and_complete(api) else None

    undone = await eventually(restored, timeout=60, what="the last good revision back in place")
    assert undone["status"]["revisions"][2]["image"] == IRIS_IMAGE
    ready = next(c for c in undone["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RolledBack")

    def rolled_back_event() -> bool:
        messages = kubectl(
            full_cluster,
            "get",
            "events",
            "--field-selector",
            f"involvedObject.kind=RealtimeAPI,involvedObject.name={NAME},reason=RolledBack",
            "-o",
            "jsonpath={.items[*].message}",
        ).stdout
        return "rolled back to revision 3" in messages

    await asyncio.to_thread(
        wait_until, rolled_back_event, timeout=30, what="a RolledBack Event", interval=0.5
    )

    # The image fixed: the template of revision 3 again, so nothing rolls; then a new version.
    fixed = await ci_rollout(full_cluster, "--name", NAME, f"--image={IRIS_IMAGE}")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    bumped = await ci_rollout(full_cluster, "--name", NAME, "--model-version=2")
    assert bumped.returncode == 0, bumped.stdout + bumped.stderr
    assert "rolled out: 2/2 replicas available" in bumped.stdout

    stop.set()
    served, lowest = await load_task, await ready_task
    assert set(served) == {"200"}, served
    assert served["200"] > 50, served
    assert lowest == REPLICAS, "maxUnavailable 0: never below the ready count"
    final = get_api(full_cluster, NAME)
    assert outcomes(final)[-1] == (4, "Complete", None)
    assert final["status"]["revisions"][-1]["modelVersion"] == "2"
    kubectl(full_cluster, "delete", "rtapi", NAME, "--wait=false")
    chaos.handled()
