"""A canary through the local Gateway (Envoy Gateway and Envoy): the share of the requests its
weight asks for, and an abort and a promotion under steady load that fail no request.

The echo example names the pod that answered, so each answer says which Deployment it came from:
the canary's pods are `echo-canary-…`, the stable version's `echo-<hash>-…`.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from ferry_local.cluster import ClusterInfo
from ferry_local.network import ClusterNetwork
from ferry_local.wait import eventually
from tests.e2e.network.conftest import apply, get
from tests.e2e.network.test_gateway import echo, events
from tests.support.ferry_operator import REPO, kubectl

CANDIDATE = "ghcr.io/ferry-dev/examples-echo:0.2.0"
LOAD_WORKERS = 4
# Bounds of the load, never reached: it stops when the change is done.
MAX_REQUESTS = 200_000
MAX_SECONDS = 240.0


@pytest.fixture
def ns(net_cluster: ClusterInfo) -> Iterator[str]:
    name = f"c-{uuid.uuid4().hex[:8]}"
    kubectl(net_cluster, "create", "namespace", name)
    yield name
    kubectl(net_cluster, "delete", "namespace", name, "--wait=false")


def with_canary(percent: int) -> dict[str, Any]:
    api = echo(replicas=2)
    api["spec"]["canary"] = {"trafficPercent": percent, "image": CANDIDATE}
    return api


def wait_ready(cluster: ClusterInfo, ns: str) -> None:
    kubectl(cluster, "wait", "-n", ns, "--for=condition=Ready", "rtapi/echo", "--timeout=180s")


def is_canary(pod: str) -> bool:
    return pod.startswith("echo-canary-")


@dataclass
class Load:
    """Steady requests through the Gateway until stopped, each answer's pod kept in order."""

    url: str
    answered: list[str] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=LOAD_WORKERS)
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            loop = asyncio.get_running_loop()
            until = loop.time() + MAX_SECONDS

            async def worker() -> None:
                while not self.stop.is_set() and loop.time() < until and self.sent < MAX_REQUESTS:
                    await self.send(session)

            await asyncio.gather(*(worker() for _ in range(LOAD_WORKERS)))

    @property
    def sent(self) -> int:
        return len(self.answered) + sum(self.failed.values())

    async def send(self, session: aiohttp.ClientSession) -> None:
        try:
            async with session.post(self.url, json={"n": self.sent}) as response:
                body = await response.read()
                if response.status != 200:
                    self.failed[f"{response.status} {body[:80]!r}"] += 1
                    return
                self.answered.append(str((await response.json())["pod"]))
        except (aiohttp.ClientError, TimeoutError) as error:
            self.failed[repr(error)] += 1


def instant(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def url_of(cluster_network: ClusterNetwork, ns: str) -> str:
    return f"http://{cluster_network.node_address}/{ns}/echo/predict"


def canary_gone(cluster: ClusterInfo, ns: str) -> bool:
    listed = get(cluster, ns, "deployments,services", "-l", "app.kubernetes.io/component=canary")
    api = get(cluster, ns, "rtapi", "echo")
    return not listed["items"] and "canary" not in api["status"]


async def answers_until(load: Load, what: Callable[[], bool], count: int, doing: str) -> None:
    """Let the load run until `what` is true (a failed request fails at once), then for
    `count` answers more."""

    async def done() -> bool:
        assert not load.failed, load.failed
        return await asyncio.to_thread(what)

    await eventually(done, timeout=180, what=doing, interval=0.5)
    target = len(load.answered) + count

    async def answered() -> bool:
        return len(load.answered) >= target

    await eventually(answered, timeout=60, what=f"{count} answers more after {doing}")


async def test_a_canary_at_half_takes_about_half_of_the_requests(
    net_cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str
) -> None:
    apply(net_cluster, ns, with_canary(50))
    await asyncio.to_thread(wait_ready, net_cluster, ns)
    api = get(net_cluster, ns, "rtapi", "echo")
    assert api["status"]["canary"]["trafficPercent"] == 50
    canary = next(c for c in api["status"]["conditions"] if c["type"] == "Canary")
    assert (canary["status"], canary["reason"]) == ("True", "TrafficSplit")
    assert ("Normal", "CanaryStarted") in events(net_cluster, ns)

    load = Load(url_of(cluster_network, ns))
    connector = aiohttp.TCPConnector(limit=1)  # one kept-alive connection
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(400):
            await load.send(session)
    assert not load.failed, load.failed
    shares = Counter("canary" if is_canary(pod) else "stable" for pod in load.answered)
    print(f"400 requests at 50%: {dict(shares)}")
    # Envoy Gateway makes each backend of the route a locality of one cluster, weighted, and
    # Envoy picks localities in weighted round robin: on one connection the split is exact
    # within a request or two, so 2.5 points either way is a margin, not a tolerance.
    assert 190 <= shares["canary"] <= 210, shares
    assert len({pod for pod in load.answered if is_canary(pod)}) == 2, "both canary replicas"


async def change_under_load(
    cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str, change: dict[str, Any]
) -> Load:
    """A canary at half, then `change` applied while requests flow through the Gateway, until
    the canary is gone and the API Ready; the load, stopped."""
    apply(cluster, ns, with_canary(50))
    await asyncio.to_thread(wait_ready, cluster, ns)
    load = Load(url_of(cluster_network, ns))
    running = asyncio.create_task(load.run())
    try:
        await answers_until(
            load, lambda: any(map(is_canary, load.answered)), 100, "the canary to answer"
        )
        await asyncio.to_thread(apply, cluster, ns, change)
        await answers_until(
            load, lambda: canary_gone(cluster, ns), 200, "the canary's objects deleted"
        )
        await asyncio.to_thread(wait_ready, cluster, ns)
        await answers_until(load, lambda: True, 200, "Ready")
    finally:
        load.stop.set()
        await running
    print(f"{len(load.answered)} answered, failed: {dict(load.failed)}")
    return load


async def test_an_abort_under_load_fails_no_request(
    net_cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str
) -> None:
    aborted = echo(replicas=2)
    load = await change_under_load(net_cluster, cluster_network, ns, aborted)
    assert not load.failed, load.failed
    assert sum(map(is_canary, load.answered)) > 50
    # The canary gets nothing once it is off the route: the last answers are the stable's.
    assert not any(map(is_canary, load.answered[-200:]))
    api = get(net_cluster, ns, "rtapi", "echo")
    assert [(r["image"], r["outcome"]) for r in api["status"]["revisions"] if r.get("canary")] == [
        (CANDIDATE, "Aborted")
    ]
    assert ("Normal", "CanaryAborted") in events(net_cluster, ns)
    # The order that keeps requests from failing on any Gateway: off the route first, deleted
    # a drain delay after (the route's last change by Ferry is the canary's removal from it).
    route = get(net_cluster, ns, "httproute", "echo", "--show-managed-fields")
    off_route = max(
        instant(entry["time"])
        for entry in route["metadata"]["managedFields"]
        if entry["manager"] == "ferry"
    )
    listed = get(net_cluster, ns, "events", "--field-selector", "reason=CanaryRemoved")
    (removed,) = [instant(e["eventTime"]) for e in listed["items"]]
    deployment = get(net_cluster, ns, "deployment", "echo")
    proxy = deployment["spec"]["template"]["spec"]["containers"][1]
    (drain,) = [int(a.split("=")[1]) for a in proxy["args"] if a.startswith("--drain-delay=")]
    # The route's time is in whole seconds, rounded down.
    assert (removed - off_route).total_seconds() >= drain, (off_route, removed, drain)


async def test_a_promotion_under_load_fails_no_request(
    net_cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str
) -> None:
    promoted = echo(replicas=2)
    promoted["spec"]["predictor"]["image"] = CANDIDATE
    load = await change_under_load(net_cluster, cluster_network, ns, promoted)
    assert not load.failed, load.failed
    assert not any(map(is_canary, load.answered[-200:]))
    stable = get(net_cluster, ns, "pods", "-l", "app.kubernetes.io/component=predictor")
    images = {
        pod["metadata"]["name"]: pod["spec"]["containers"][0]["image"]
        for pod in stable["items"]
        if "deletionTimestamp" not in pod["metadata"]
    }
    # The last answers come from the stable version, which now runs the canary's image.
    assert set(load.answered[-100:]) <= {
        name for name, image in images.items() if image == CANDIDATE
    }
    api = get(net_cluster, ns, "rtapi", "echo")
    revisions = [
        (r["image"], r["outcome"], r.get("canary", False)) for r in api["status"]["revisions"]
    ]
    assert revisions[-2:] == [(CANDIDATE, "Promoted", True), (CANDIDATE, "Complete", False)]
    assert ("Normal", "CanaryPromoted") in events(net_cluster, ns)


CI_SCRIPT = REPO / "examples" / "ci-rollout" / "rollout.py"
FAILING = "test.ferry.dev/failing:1"  # tests/e2e/agent/images.yaml: every prediction a 500


async def ci_canary(
    cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str, image: str
) -> tuple[subprocess.CompletedProcess[str], Load]:
    """The echo API serving, then the CI script's canary of `image` at 20 % while requests
    flow through the Gateway; the script's run and the load, stopped."""
    apply(cluster, ns, echo(replicas=2))
    await asyncio.to_thread(wait_ready, cluster, ns)
    load = Load(url_of(cluster_network, ns))
    running = asyncio.create_task(load.run())
    argv = [
        sys.executable,
        str(CI_SCRIPT),
        f"--kubectl={cluster.tool('kubectl')}",
        f"--namespace={ns}",
        "--name=echo",
        f"--image={image}",
        "--canary=20",
        "--observe=5",
        "--timeout=180",
    ]
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            argv,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        )

        async def gone() -> bool:
            return await asyncio.to_thread(canary_gone, cluster, ns)

        await eventually(gone, timeout=60, what="the canary's objects deleted", interval=0.5)
    finally:
        load.stop.set()
        await running
    print(done.stdout, done.stderr, f"{len(load.answered)} answered, failed: {dict(load.failed)}")
    return done, load


async def test_the_ci_script_promotes_a_healthy_canary_and_no_request_fails(
    net_cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str
) -> None:
    done, load = await ci_canary(net_cluster, cluster_network, ns, CANDIDATE)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "applied realtimeapi/echo: generation 2, canary at 20%"
    assert lines[2].startswith("canary: ") and ", 0.00% 5xx, p99 <= " in lines[2], lines[2]
    assert lines[3] == "promoting the canary: generation 3"
    assert lines[-1].startswith("promoted; rolled out: ")
    assert not load.failed, load.failed
    deployment = get(net_cluster, ns, "deployment", "echo")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == CANDIDATE


async def test_the_ci_script_aborts_a_failing_canary_and_fails_the_job(
    net_cluster: ClusterInfo, cluster_network: ClusterNetwork, ns: str
) -> None:
    done, load = await ci_canary(net_cluster, cluster_network, ns, FAILING)
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip().splitlines()[-1] == (
        "FAILED: canary aborted: its 5xx rate is 100.00%, above --max-error-rate 1.00%"
    )
    assert "Aborted (canary)" in done.stdout
    # What failed is the canary's own answers while it was watched; the stable's never did.
    assert set(load.failed) == {'500 b\'{"error": "this predictor fails"}\''}, load.failed
    deployment = get(net_cluster, ns, "deployment", "echo")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == echo()["spec"]["predictor"]["image"]
