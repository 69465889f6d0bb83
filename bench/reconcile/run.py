"""Reconcile latency of ferry-operator beside the kube-controller-manager's, on one API server.

For N = 1, 10 and 100 RealtimeAPIs created at once (100 / N times over, so that each p99 is of
a hundred samples), measures from each create to (a) its Deployment existing and (b) its Ready
condition; for N plain Deployments of the same pods, from each create to (a) its ReplicaSet
existing and (b) the Deployment available.
Both are observed the same way (watch streams, client-side clock), so the ratio is the
operator's overhead over a Go controller on the same API server.

    PYTHONPATH=. .venv/bin/python bench/reconcile/run.py [--sizes 1,10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client import ApiClient

from ferry.render.children import render_deployment
from ferry.settings import Settings
from ferry.spec.model import parse_spec
from ferry.spec.resource import ApiRef
from ferry.spec.schema import with_defaults
from ferry_local.cluster import local_cluster
from ferry_local.layout import ClusterLayout
from tests.support.ferry_operator import Operator, install_crds

POD = {"cpu": "50m", "memory": "64Mi"}
WATCH_TIMEOUT = 300.0
# A p99 needs a hundred samples (of twenty, it is the maximum): N objects at once are created
# 100 / N times over.
SAMPLES = 100


def api_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "RealtimeAPI",
        "metadata": {"name": name},
        "spec": {"predictor": {"image": "example.com/m:1", "resources": POD}},
    }


def plain_deployment(name: str, namespace: str) -> dict[str, Any]:
    """The Deployment Ferry renders for the same API (sidecar, probes, security context and
    all), as a plain one of one replica: no owner, and none of the labels Ferry's handlers
    watch for, so only the controller-manager acts on it."""
    spec = parse_spec(with_defaults(api_body(name)["spec"]))
    rendered = render_deployment(
        ApiRef(name, namespace, "", 1), spec, Settings(), model_version=None, replicas=1
    )
    labels = {"app": name}
    meta = rendered["metadata"]
    del meta["ownerReferences"]
    meta["labels"] = labels
    rendered["spec"]["selector"] = {"matchLabels": labels}
    rendered["spec"]["template"]["metadata"]["labels"] = labels
    return rendered


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def watch_until(
    list_fn: Callable[..., Awaitable[Any]],
    namespace: str,
    expected: int,
    seen: Callable[[dict[str, Any]], str | None],
    started: dict[str, float],
    *,
    timeout: float,
) -> dict[str, float]:
    """Latency per object: from `started[key]` to the first event where `seen` returns key."""
    latencies: dict[str, float] = {}
    stream = watch.Watch()
    async with asyncio.timeout(timeout):
        async for event in stream.stream(list_fn, namespace, _request_timeout=timeout):
            obj = event["raw_object"]
            key = seen(obj)
            if key and key not in latencies and key in started:
                latencies[key] = time.monotonic() - started[key]
                if len(latencies) == expected:
                    stream.stop()
    return latencies


def ready_api(obj: dict[str, Any]) -> str | None:
    for c in obj.get("status", {}).get("conditions", []):
        if (
            c["type"] == "Ready"
            and c["status"] == "True"
            and (c.get("observedGeneration") == obj["metadata"]["generation"])
        ):
            return str(obj["metadata"]["name"])
    return None


def available_deployment(obj: dict[str, Any]) -> str | None:
    status = obj.get("status", {})
    want = obj["spec"]["replicas"]
    done = status.get("availableReplicas") == want and status.get("updatedReplicas") == want
    return str(obj["metadata"]["name"]) if done else None


def owner_name(obj: dict[str, Any]) -> str | None:
    refs = obj["metadata"].get("ownerReferences") or [{}]
    name = refs[0].get("name")
    return str(name) if name else None


async def run_ferry(
    api: ApiClient, namespace: str, n: int
) -> tuple[dict[str, float], dict[str, float]]:
    objects, apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
    started: dict[str, float] = {}

    async def list_apis(ns: str, **kw: Any) -> Any:
        return await objects.list_namespaced_custom_object(
            "ferry.dev", "v1alpha1", ns, "realtimeapis", **kw
        )

    created_watch = asyncio.create_task(
        watch_until(
            apps.list_namespaced_deployment,
            namespace,
            n,
            lambda o: o["metadata"]["name"],
            started,
            timeout=WATCH_TIMEOUT,
        )
    )
    ready_watch = asyncio.create_task(
        watch_until(list_apis, namespace, n, ready_api, started, timeout=WATCH_TIMEOUT)
    )
    await asyncio.sleep(0.5)  # let both watches open before the first create
    for i in range(n):
        name = f"api-{i}"
        body = api_body(name)
        started[name] = time.monotonic()
        await objects.create_namespaced_custom_object(
            "ferry.dev", "v1alpha1", namespace, "realtimeapis", body
        )
    return await created_watch, await ready_watch


async def run_kcm(
    api: ApiClient, namespace: str, n: int
) -> tuple[dict[str, float], dict[str, float]]:
    apps = client.AppsV1Api(api)
    started: dict[str, float] = {}
    rs_watch = asyncio.create_task(
        watch_until(
            apps.list_namespaced_replica_set,
            namespace,
            n,
            owner_name,
            started,
            timeout=WATCH_TIMEOUT,
        )
    )
    ready_watch = asyncio.create_task(
        watch_until(
            apps.list_namespaced_deployment,
            namespace,
            n,
            available_deployment,
            started,
            timeout=WATCH_TIMEOUT,
        )
    )
    await asyncio.sleep(0.5)
    for i in range(n):
        name = f"dep-{i}"
        body = plain_deployment(name, namespace)
        started[name] = time.monotonic()
        await apps.create_namespaced_deployment(namespace, body)  # type: ignore[arg-type]
    return await rs_watch, await ready_watch


async def delete_apis(api: ApiClient, namespace: str) -> None:
    await client.CustomObjectsApi(api).delete_collection_namespaced_custom_object(
        "ferry.dev", "v1alpha1", namespace, "realtimeapis"
    )


async def delete_deployments(api: ApiClient, namespace: str) -> None:
    await client.AppsV1Api(api).delete_collection_namespaced_deployment(
        namespace, propagation_policy="Background"
    )


async def cleared(api: ApiClient, namespace: str) -> None:
    """Wait until a sample's objects and their pods are gone, so that no sample shares the
    machine with the clean-up of the one before it."""
    objects, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)
    async with asyncio.timeout(WATCH_TIMEOUT):
        while True:
            apis, deployments, sets, pods = await asyncio.gather(
                objects.list_namespaced_custom_object(
                    "ferry.dev", "v1alpha1", namespace, "realtimeapis"
                ),
                apps.list_namespaced_deployment(namespace),
                apps.list_namespaced_replica_set(namespace),
                core.list_namespaced_pod(namespace),
            )
            if not (apis["items"] or deployments.items or sets.items or pods.items):
                return
            await asyncio.sleep(0.2)


def summary(latencies: dict[str, float]) -> str:
    values = [v * 1000 for v in latencies.values()]
    return (
        f"p50 {statistics.median(values):7.1f} ms  p99 {percentile(values, 0.99):7.1f} ms  "
        f"max {max(values):7.1f} ms"
    )


async def bench(kubeconfig: Path, sizes: list[int]) -> None:
    api = await config.new_client_from_config(config_file=str(kubeconfig))
    core = client.CoreV1Api(api)
    async with api:
        print(f"{'N':>4}  {'what':<38} latency")
        # The first object of a kind pays for watches opening and caches filling, in both
        # controllers alike; one unmeasured round keeps that out of the N=1 figures.
        warming = True
        runners = {"ferry": (run_ferry, delete_apis), "kcm": (run_kcm, delete_deployments)}
        # One namespace per controller: deleting a namespace takes the namespace controller a
        # sweep of every resource type, far more churn than deleting the sample's objects.
        namespaces = {label: f"bench-{label}-{uuid.uuid4().hex[:6]}" for label in runners}
        for ns in namespaces.values():
            await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        for n in [1, *sizes]:
            # The two controllers take turns, so that a busy moment of the machine falls on both.
            results: dict[str, tuple[dict[str, float], dict[str, float]]] = {
                label: ({}, {}) for label in runners
            }
            for sample in range(1 if warming else math.ceil(SAMPLES / n)):
                for label, (runner, delete) in runners.items():
                    ns = namespaces[label]
                    got_created, got_ready = await runner(api, ns, n)
                    created_at, ready_at = results[label]
                    created_at |= {f"{sample}/{k}": v for k, v in got_created.items()}
                    ready_at |= {f"{sample}/{k}": v for k, v in got_ready.items()}
                    await delete(api, ns)
                    await cleared(api, ns)
            if warming:
                warming = False
                continue
            (f_created, f_ready), (k_created, k_ready) = results["ferry"], results["kcm"]
            print(f"{n:>4}  {'ferry: apply -> Deployment created':<38} {summary(f_created)}")
            print(f"{n:>4}  {'kcm:   Deployment -> ReplicaSet created':<38} {summary(k_created)}")
            print(f"{n:>4}  {'ferry: apply -> Ready':<38} {summary(f_ready)}")
            print(f"{n:>4}  {'kcm:   Deployment -> available':<38} {summary(k_ready)}")
            created = percentile(list(f_created.values()), 0.99) / percentile(
                list(k_created.values()), 0.99
            )
            ready = percentile(list(f_ready.values()), 0.99) / percentile(
                list(k_ready.values()), 0.99
            )
            print(f"{n:>4}  p99 ferry created / kcm created: {created:.2f}x (goal <= 2x)")
            print(f"{n:>4}  p99 ferry ready / kcm available: {ready:.2f}x (ferry's includes kcm's)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_cluster(ClusterLayout(Path(tmp) / "bench-reconcile"), nodes=4) as cluster,
    ):
        install_crds(cluster)
        operator = Operator(cluster, "", Path(tmp) / "operator.log")
        operator.start()
        try:
            asyncio.run(bench(cluster.kubeconfig, sizes))
        finally:
            operator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
