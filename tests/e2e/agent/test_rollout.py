"""A Deployment's rolling update over the agent's pods serves every request sent during it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from ferry.adapters.kube import Kube
from ferry_local.loopback_service import LoopbackServiceClient
from ferry_local.wait import eventually
from tests.e2e.agent.support import AgentProcess, create_service, local_spec, server_container

REPLICAS = 2
WORKERS = 4
MAX_REQUESTS = 20_000


def deployment(version: str) -> dict[str, Any]:
    labels = {"app": "api"}
    server = server_container(
        env=[{"name": "VERSION", "value": version}],
        # Time for the Service's clients to see the pod leave before it stops listening.
        lifecycle={"preStop": {"exec": {"command": ["sleep", "2"]}}},
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": local_spec([server], terminationGracePeriodSeconds=15),
            },
        },
    }


async def test_a_rolling_update_serves_every_request(
    agent: AgentProcess, kube: Kube, namespace: str
) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    await kube.request("POST", path, body=deployment("1"))
    await create_service(kube, namespace, "api", {"app": "api"})
    outcomes: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    done = asyncio.Event()

    async with LoopbackServiceClient(kube, namespace, "api") as client:
        await client.wait_for_endpoints(REPLICAS)

        async def load() -> None:
            while not done.is_set() and sum(outcomes.values()) < MAX_REQUESTS:
                try:
                    reply = await client.get("/", timeout=10)
                except Exception as error:  # noqa: BLE001 - every failure is counted
                    outcomes[f"error: {error!r}"] += 1
                    continue
                outcomes[str(reply.status)] += 1
                versions[reply.json()["version"]] += 1

        async def answered(version: str, count: int) -> bool:
            return versions[version] >= count

        workers = [asyncio.create_task(load()) for _ in range(WORKERS)]
        await eventually(lambda: answered("1", 50), timeout=30, what="traffic before the update")
        update = deployment("2")["spec"]["template"]
        patched = await kube.request(
            "PATCH",
            f"{path}/api",
            body={"spec": {"template": update}},
            content_type="application/merge-patch+json",
        )
        generation = patched["metadata"]["generation"]

        async def rolled_out() -> bool:
            status = (await kube.get(f"{path}/api") or {}).get("status", {})
            complete = (
                status.get("observedGeneration", 0) >= generation
                and status.get("updatedReplicas") == REPLICAS
                and status.get("replicas") == REPLICAS
                and status.get("availableReplicas") == REPLICAS
            )
            return complete and len(client.endpoints()) == REPLICAS

        await eventually(rolled_out, timeout=120, what="the rollout to complete")
        after = versions["2"]
        await eventually(
            lambda: answered("2", after + 50), timeout=30, what="traffic after the update"
        )
        done.set()
        await asyncio.gather(*workers)

    assert set(outcomes) == {"200"}, outcomes
    assert versions["1"] >= 50
    assert versions["2"] >= 50
