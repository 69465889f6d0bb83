"""The autoscaler end to end: real operator, real API server, real proxies on the pods' addresses.

Demand is real: requests held by the upstream behind a pod's proxy are in flight or queued
there, and the operator learns of them only by scraping /stats, as it would in a cluster.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry import names
from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually
from tests.e2e.autoscaling.conftest import API, PodProxies, ScalingOperator
from tests.e2e.conftest import Upstream, get_json
from tests.support.ferry_operator import kubectl

GROUP, VERSION, PLURAL = "ferry.dev", "v1alpha1", "realtimeapis"
# Short windows so that a step up and back down takes seconds; targetInFlight 2 per replica.
FAST = {
    "minReplicas": 1,
    "maxReplicas": 6,
    "targetInFlight": 2,
    "window": "4s",
    "panicWindow": "2s",
    "downscaleStabilization": "4s",
}


async def create_api(
    api: ApiClient, namespace: str, autoscaling: dict[str, Any], **spec: Any
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RealtimeAPI",
        "metadata": {"name": API},
        "spec": {
            "predictor": {"image": "example.com/iris:1", "resources": {"cpu": "50m"}},
            "serving": {"maxConcurrency": 2, "maxQueueLength": 50},
            "autoscaling": autoscaling,
            **spec,
        },
    }
    await client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )


async def status(api: ApiClient, namespace: str) -> dict[str, Any]:
    obj = await client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, API
    )
    result: dict[str, Any] = obj.get("status") or {}
    return result


async def replicas(api: ApiClient, namespace: str, deployment: str = API) -> int:
    found = await client.AppsV1Api(api).read_namespaced_deployment(deployment, namespace)
    return int(found.spec.replicas)


async def wait_replicas(
    api: ApiClient, namespace: str, count: int, timeout: float = 60, deployment: str = API
) -> None:
    async def reached() -> bool:
        return await replicas(api, namespace, deployment) == count

    await eventually(reached, timeout=timeout, what=f"{deployment} at {count} replicas")


async def event_reasons(api: ApiClient, namespace: str) -> dict[str, list[str]]:
    events = await client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={API}"
    )
    reasons: dict[str, list[str]] = {}
    for event in events.items:
        reasons.setdefault(event.reason, []).append(event.message)
    return reasons


async def posted(api: ApiClient, namespace: str, reason: str, saying: str = "") -> None:
    """Wait for an Event of `reason` whose message holds `saying`: kopf posts Events from a
    queue of its own, a moment after the status that tells of the same action."""

    async def found() -> bool:
        messages = (await event_reasons(api, namespace)).get(reason, [])
        return any(saying in message for message in messages)

    await eventually(found, timeout=30, what=f"a {reason} Event saying {saying!r}")


async def decisions(
    session: aiohttp.ClientSession, operator: ScalingOperator, reason: str
) -> float:
    async with session.get(operator.metrics_url()) as response:
        text = await response.text()
    found = re.search(rf'^ferry_autoscaler_decisions_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


class Load:
    """`count` requests held at one pod's proxy until released; bounded by `count`."""

    def __init__(self, session: aiohttp.ClientSession, upstream: Upstream) -> None:
        self.session, self.upstream = session, upstream
        self.tasks: list[asyncio.Task[int]] = []

    def start(self, ip: str, count: int) -> None:
        async def one() -> int:
            url = f"http://{ip}:{names.PROXY_PORT}/hold"
            async with self.session.get(url) as response:
                return response.status

        self.tasks += [asyncio.create_task(one()) for _ in range(count)]

    async def release(self) -> None:
        async def answered() -> bool:
            # Each release frees the requests the upstream holds; queued ones take their place.
            await asyncio.to_thread(self.upstream.release)
            return all(task.done() for task in self.tasks)

        await eventually(answered, timeout=30, what="every held request answered", interval=0.2)
        assert {task.result() for task in self.tasks} == {200}


async def first_pod(session: aiohttp.ClientSession, proxies: PodProxies) -> tuple[str, str]:
    async def serving() -> tuple[str, str] | None:
        for pod in list(proxies.running):
            await get_json(session, f"http://{proxies.ip(pod)}:{names.PROXY_ADMIN_PORT}/stats")
            return pod, proxies.ip(pod)
        return None

    return await eventually(serving, timeout=60, what="a pod with its proxy answering")


async def proxies_answering(
    session: aiohttp.ClientSession, proxies: PodProxies, count: int
) -> None:
    async def answering() -> bool:
        if len(proxies.running) != count:
            return False
        for pod in list(proxies.running):
            url = f"http://{proxies.ip(pod)}:{names.PROXY_ADMIN_PORT}/stats"
            await get_json(session, url)
        return True

    await eventually(answering, timeout=60, what=f"{count} proxies answering /stats")


async def test_a_load_step_scales_up_and_back_down_with_status_and_events(
    api: ApiClient,
    namespace: str,
    operator: ScalingOperator,
    pod_proxies: PodProxies,
    session: aiohttp.ClientSession,
    upstream: Upstream,
) -> None:
    await create_api(api, namespace, FAST)
    _, ip = await first_pod(session, pod_proxies)
    await wait_replicas(api, namespace, 1)

    load = Load(session, upstream)
    load.start(ip, 8)  # 2 in flight + 6 queued at one replica; at 2 per replica: 4 replicas
    await wait_replicas(api, namespace, 4)

    async def counted() -> dict[str, Any] | None:
        seen = await status(api, namespace)
        return seen if seen.get("desiredReplicas") == 4 and seen.get("inFlight", 0) > 0 else None

    scaled_up = await eventually(counted, timeout=30, what="status to show the scale-up")
    assert scaled_up["lastScaleReason"] in ("Panic", "ScaleUp")
    assert scaled_up["lastScaleTime"].endswith("Z")
    assert 0 < scaled_up["inFlight"] <= 8
    await posted(api, namespace, "ScaledUp", "-> 4")

    await load.release()
    await wait_replicas(api, namespace, 1)

    async def settled() -> dict[str, Any] | None:
        seen = await status(api, namespace)
        return seen if seen.get("desiredReplicas") == 1 else None

    scaled_down = await eventually(settled, timeout=30, what="status to show the scale-down")
    assert scaled_down["lastScaleReason"] in ("ScaleDown", "Stabilizing")
    assert scaled_down["inFlight"] < 1
    await posted(api, namespace, "ScaledDown")
    table = kubectl(operator.cluster, "get", "rtapi", API, "-n", namespace).stdout
    assert "IN-FLIGHT" in table


async def test_a_pod_that_stops_answering_is_not_counted_as_zero(
    api: ApiClient,
    namespace: str,
    operator: ScalingOperator,
    pod_proxies: PodProxies,
    session: aiohttp.ClientSession,
    upstream: Upstream,
) -> None:
    await create_api(api, namespace, FAST)
    loaded, ip = await first_pod(session, pod_proxies)
    load = Load(session, upstream)
    load.start(ip, 6)
    await wait_replicas(api, namespace, 3)
    await proxies_answering(session, pod_proxies, 3)

    silent = next(pod for pod in pod_proxies.running if pod != loaded)
    await pod_proxies.silence(silent)
    await load.release()
    # Enough ticks on partial data to cover the window and the downscale stabilization twice
    # over: every one of them would have scaled down had the silent pod counted as zero.
    before = await decisions(session, operator, "PartialData")

    async def held() -> bool:
        return await decisions(session, operator, "PartialData") >= before + 16

    await eventually(held, timeout=60, what="16 ticks held back by partial data")
    assert await replicas(api, namespace) == 3

    pod_proxies.speak(silent)
    await wait_replicas(api, namespace, 1)


async def test_with_autoscaling_off_kubectl_scale_sets_a_fixed_count(
    api: ApiClient, namespace: str, operator: ScalingOperator, cluster: ClusterInfo
) -> None:
    await create_api(api, namespace, {**FAST, "enabled": False})
    await wait_replicas(api, namespace, 1)

    kubectl(cluster, "scale", f"rtapi/{API}", "--replicas=3", "-n", namespace)
    await wait_replicas(api, namespace, 3)

    async def fixed() -> dict[str, Any] | None:
        seen = await status(api, namespace)
        return seen if seen.get("desiredReplicas") == 3 else None

    shown = await eventually(fixed, timeout=30, what="status to show the fixed count")
    assert shown["lastScaleReason"] == "FixedReplicas"
    assert "inFlight" not in shown
    await posted(api, namespace, "ScaledUp", "spec.replicas asks for 3")
    # Nothing scrapes or decides while autoscaling is off: the count stays put.
    assert await replicas(api, namespace) == 3


async def test_a_canary_is_scaled_on_its_own_demand(
    api: ApiClient,
    namespace: str,
    operator: ScalingOperator,
    pod_proxies: PodProxies,
    canary_proxies: PodProxies,
    session: aiohttp.ClientSession,
    upstream: Upstream,
) -> None:
    # This cluster serves no Gateway API: the canary gets no route, but it runs and is scaled.
    canary = {"trafficPercent": 50, "image": "example.com/iris:2"}
    await create_api(api, namespace, FAST, route={"gateway": {"name": "public"}}, canary=canary)
    await first_pod(session, pod_proxies)
    _, ip = await first_pod(session, canary_proxies)

    load = Load(session, upstream)
    load.start(ip, 8)  # at 2 per replica: 4 canary replicas
    await wait_replicas(api, namespace, 4, deployment="iris-canary")
    await posted(api, namespace, "ScaledUp", "canary: ")
    # The stable version has no demand of its own: the canary's never reaches it.
    assert await replicas(api, namespace) == 1
    assert (await status(api, namespace)).get("desiredReplicas") == 1

    await load.release()
    await wait_replicas(api, namespace, 1, deployment="iris-canary")
    await posted(api, namespace, "ScaledDown", "canary: ")
