"""Rollout wall time of a 3-replica RealtimeAPI beside the Deployment controller's alone, and the
requests that fail during either, on real pods.

One local environment (control plane, node agent, moto's S3, the operator). The RealtimeAPI
`iris` serves the iris model (3 replicas, maxSurge 1, maxUnavailable 0); `bare-iris` is a plain
Deployment with the very pod template the operator rendered, under labels of its own, and a
Service in front of it. Each round rolls a new model version out through both, one after the
other: for Ferry from the patch of the API's model version to Ready=True for the new generation;
for the bare Deployment from the patch of its template (the same change: the template the
operator rendered for that version) to the rollout complete as `kubectl rollout status` sees it
(updated, available, no old replica left). Both are observed the same way, a read every 50 ms
from this process, with steady load through their Service during each rollout. The ratio of the
medians is the operator's overhead on a rollout; pods starting on a busy machine blur it, so the
operator's own share is measured too: from the patch until the Deployment has the new template,
plus from the Deployment rolled out until Ready.

    PYTHONPATH=. .venv/bin/python bench/rollout/run.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ferry.adapters.kube import Kube, path_of
from ferry.services.status import deployment_path
from ferry.services.status_writer import api_path
from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.cluster_ip import CONNECTIONS, Connections
from ferry_local.layout import ClusterLayout
from ferry_local.wait import eventually
from tests.e2e.rollout.support import api_manifest, apply, load, push_iris, wait_ready

REPLICAS = 3
API, BARE = "iris", "bare-iris"
BARE_LABELS = {"bench.ferry.dev/deployment": BARE}
POLL = 0.05
ROLLOUT_TIMEOUT = 300.0


def iris(uri: str, version: str) -> dict[str, Any]:
    return api_manifest(
        API,
        uri,
        version,
        autoscaling={"minReplicas": REPLICAS, "maxReplicas": REPLICAS},
        rollout={"maxSurge": 1, "maxUnavailable": 0},
    )


def bare_deployment(operators: dict[str, Any]) -> dict[str, Any]:
    """The operator's Deployment as a plain one: same pods, labels nobody else selects."""
    template = copy.deepcopy(operators["spec"]["template"])
    template["metadata"]["labels"] = dict(BARE_LABELS)
    spec = operators["spec"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": BARE, "namespace": "default", "labels": dict(BARE_LABELS)},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": dict(BARE_LABELS)},
            "strategy": spec["strategy"],
            "progressDeadlineSeconds": spec["progressDeadlineSeconds"],
            "revisionHistoryLimit": spec["revisionHistoryLimit"],
            "template": template,
        },
    }


def bare_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": BARE, "namespace": "default"},
        "spec": {
            "selector": dict(BARE_LABELS),
            "ports": [{"name": "http", "port": 80, "targetPort": "proxy"}],
        },
    }


def api_ready(api: dict[str, Any] | None, generation: int) -> bool:
    for found in (api or {}).get("status", {}).get("conditions", []):
        if found["type"] == "Ready":
            return bool(found["status"] == "True" and found["observedGeneration"] == generation)
    return False


def deployment_rolled_out(deployment: dict[str, Any] | None) -> bool:
    if deployment is None:
        return False
    status, want = deployment.get("status") or {}, deployment["spec"]["replicas"]
    return bool(
        status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
        and status.get("updatedReplicas") == want
        and status.get("replicas") == want
        and status.get("availableReplicas") == want
    )


async def timed(
    info: ClusterInfo,
    service: str,
    change: Callable[[], Awaitable[Any]],
    done: Callable[[Any], Awaitable[bool]],
    connections: Connections,
) -> tuple[float, float, Counter[str]]:
    """(start, seconds) from `change` until `done`, with steady load through `service`'s
    ClusterIP meanwhile, and the outcomes of that load."""
    stop = asyncio.Event()
    traffic = asyncio.create_task(
        load(info, service, stop, replicas=REPLICAS, connections=connections)
    )
    await asyncio.sleep(1)  # the load under way before the rollout starts
    started = time.monotonic()
    changed = await change()

    async def finished() -> bool:
        return await done(changed)

    await eventually(finished, timeout=ROLLOUT_TIMEOUT, what=f"{service} rolled out", interval=POLL)
    elapsed = time.monotonic() - started
    stop.set()
    return started, elapsed, await traffic


async def bench(info: ClusterInfo, rounds: int, connections: Connections) -> None:
    uri = await push_iris(info, "bench-rollout", tuple(str(v) for v in range(1, rounds + 2)))
    apply(info, iris(uri, "1"))
    await asyncio.to_thread(wait_ready, info, API)
    kube = await Kube.connect(str(info.kubeconfig))
    try:
        operators = await kube.get(deployment_path("default", API))
        assert operators is not None
        await kube.apply(bare_service(), "bench")
        await kube.apply(bare_deployment(operators), "bench")
        bare_path = path_of("apps/v1", "Deployment", "default", BARE)

        async def bare_done(_: object = None) -> bool:
            return deployment_rolled_out(await kube.get(bare_path))

        await eventually(bare_done, timeout=ROLLOUT_TIMEOUT, what="the bare Deployment up")

        ferry_times: list[float] = []
        own_times: list[float] = []
        bare_times: list[float] = []
        ferry_load: Counter[str] = Counter()
        bare_load: Counter[str] = Counter()
        for version in range(2, rounds + 2):
            # When the operator had updated the Deployment, and when that had rolled out.
            marks: dict[str, float] = {}

            async def bump_api(v: int = version) -> int:
                patch = {"spec": {"model": {"version": str(v)}}}
                got = await kube.patch_merge(api_path("default", API), patch, "bench")
                return int(got["metadata"]["generation"])

            async def api_done(
                generation: int, v: int = version, seen: dict[str, float] = marks
            ) -> bool:
                now = time.monotonic()
                ours = await kube.get(deployment_path("default", API))
                if "updated" not in seen and version_of(ours) == str(v):
                    seen["updated"] = now
                if "updated" in seen and "rolled" not in seen and deployment_rolled_out(ours):
                    seen["rolled"] = now
                return api_ready(await kube.get(api_path("default", API)), generation)

            started, seconds, outcomes = await timed(info, API, bump_api, api_done, connections)
            ferry_times.append(seconds)
            # The operator's own share: reacting to the change, and reporting the end.
            own_times.append((marks["updated"] - started) + (started + seconds - marks["rolled"]))
            ferry_load += outcomes

            # The same change to the same pods: the template the operator rendered for it.
            rendered = await kube.get(deployment_path("default", API))
            assert rendered is not None

            async def bump_bare(template: dict[str, Any] = rendered) -> None:
                await kube.apply(bare_deployment(template), "bench")

            _, seconds, outcomes = await timed(info, BARE, bump_bare, bare_done, connections)
            bare_times.append(seconds)
            bare_load += outcomes
            print(
                f"round {version - 1}: Ferry {ferry_times[-1]:5.1f} s "
                f"(the operator's own share {own_times[-1]:4.2f} s), "
                f"bare Deployment {bare_times[-1]:5.1f} s",
                flush=True,
            )
    finally:
        await kube.close()
    report(rounds, connections, (ferry_times, own_times, bare_times), ferry_load, bare_load)


def failed(outcomes: Counter[str]) -> int:
    return sum(count for outcome, count in outcomes.items() if outcome != "200")


def version_of(deployment: dict[str, Any] | None) -> str | None:
    annotations = (deployment or {}).get("spec", {}).get("template", {}).get("metadata", {})
    return (annotations.get("annotations") or {}).get("ferry.dev/model-version")


def report(
    rounds: int,
    connections: Connections,
    timings: tuple[list[float], list[float], list[float]],
    ferry_load: Counter[str],
    bare_load: Counter[str],
) -> None:
    ferry_times, own_times, bare_times = timings
    print(
        f"\nrollout of {REPLICAS} replicas (maxSurge 1, maxUnavailable 0), real pods on the "
        f"node agent, {rounds} rounds; load through the ClusterIP, {connections} connections"
    )
    print(f"{'':26}{'median':>8}{'min':>8}{'max':>8}")
    for label, series in (("RealtimeAPI (Ferry)", ferry_times), ("bare Deployment", bare_times)):
        low, middle, high = min(series), statistics.median(series), max(series)
        print(f"{label:26}{middle:7.1f}s{low:7.1f}s{high:7.1f}s")
    ratio = statistics.median(ferry_times) / statistics.median(bare_times)
    print(f"overhead ratio (median Ferry / median bare): {ratio:.2f}x")
    print(
        f"the operator's own share of a rollout (apply -> Deployment updated, plus Deployment "
        f"rolled out -> Ready): median {statistics.median(own_times):.2f}s, "
        f"max {max(own_times):.2f}s"
    )
    for label, outcomes in (("Ferry", ferry_load), ("bare Deployment", bare_load)):
        total = sum(outcomes.values())
        print(
            f"requests during {label}'s rollouts: {total:,}, failed {failed(outcomes)}"
            + (f" {dict(outcomes)}" if failed(outcomes) else "")
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--connections",
        choices=CONNECTIONS,
        default="keep-alive",
        help="the load's clients: kept-alive connections, or a new one per request",
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_cluster(ClusterLayout(Path(tmp) / "bench-rollout"), nodes=1, operator=True) as info,
    ):
        asyncio.run(bench(info, args.rounds, args.connections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
