"""How long kube-proxy keeps sending new connections to a pod after it turned terminating, or not
ready: what a terminating replica's drain delay must cover.

One local environment with its pod network (a real kube-proxy in nftables mode serving the
Service's ClusterIP, as in a cluster). Two pods of the e2e tests' server (tests/e2e/agent/
server.py, whose answer names its pod) stand behind a Service; one more, the decoy, behind a
Service of its own. New connections, each fresh (one request, then closed), go to the first
Service's ClusterIP at a steady rate throughout a round. In each round, one of its two pods:

- terminating: is deleted. Its preStop hook sleeps longer than the round, so it keeps answering
  whatever still reaches it (a Ferry pod's proxy does the same through its drain delay). The
  moment is the DELETE request's, taken just before it is sent.
- not ready: is told to fail its readiness probe (`POST /control/ready?ready=0` to the pod). The
  moment is the node agent's write of the pod's Ready=False, as this process' watch delivers
  it. The pod is turned back ready at the end of the round.
- terminating after another change: is deleted as soon as the decoy's EndpointSlice shows the
  decoy not ready (turned so just before). kube-proxy syncs its rules at once for the decoy,
  then waits out its minimum sync period (1 s by default) before it syncs again: as in a
  rollout, where the Deployment controller deletes an old pod right after a new one turned
  ready. The moment is the DELETE request's.

From that moment the benchmark times (a) the pod's endpoint shown not ready in the Service's
EndpointSlice (a watch delivers it), and (b) the start of the last new connection that still
reached that pod through the ClusterIP. A round ends 3 s after both the slice and the last such
connection, and at most 20 s after the moment. Connections that fail are counted. The cases
take turns, round by round. At the default 150 connections per second each pod is reached about
every 13 ms, so (b) is read to within that.

Traffic goes only to the cluster's own addresses (its Service and pod blocks, routed into its
network namespace) and the API server on loopback.

    PYTHONPATH=. .venv/bin/python bench/network/endpoint_lag.py [--rounds 5] [--rate 150]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ferry.adapters.kube import Kube, path_of
from ferry.settings import Settings
from ferry_local.agent import watch
from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.layout import ClusterLayout
from ferry_local.wait import eventually
from tests.e2e.network.conftest import TEST_IMAGES, server_deployment, service

NAMESPACE = "endpoint-lag"
APP = "lag"
REPLICAS = 2
PORT = 80
DECOY = "decoy"
TERMINATING, NOT_READY = "terminating", "not ready"
TERMINATING_AFTER_CHANGE = "terminating after another change"
CASES = (TERMINATING, NOT_READY, TERMINATING_AFTER_CHANGE)
QUIET = 3.0
"""Seconds a round goes on after the slice showed the change and the pod was last reached."""
WINDOW = 20.0
"""Seconds a round lasts at most after the change."""
CONNECT_TIMEOUT = 5.0
IN_FLIGHT = 64
"""Probe connections open at once at most; a tick finding them all open is skipped and counted."""
SETTLE_TIMEOUT = 120.0
SLICES = f"kubernetes.io/service-name in ({APP},{DECOY})"


@dataclass
class Probes:
    """Fresh connections to the ClusterIP: when each started, and which pod answered."""

    reached: list[tuple[float, str]] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    """When each failed connection started, and the error's type."""
    skipped: int = 0

    def last_reaching(self, pod: str) -> float | None:
        return max((at for at, name in self.reached if name == pod), default=None)


async def answering_pod(address: str) -> str:
    """One request on a fresh connection; the pod that answered."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(address, PORT), CONNECT_TIMEOUT)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: lag\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), CONNECT_TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if status.split(b" ")[1:2] != [b"200"]:
        raise ValueError(status.decode(errors="replace"))
    return str(json.loads(body)["pod"])


async def probe(address: str, rate: float, stop: asyncio.Event, probes: Probes) -> None:
    """New connections at `rate` per second until `stop`, each recorded in `probes`."""
    slots = asyncio.Semaphore(IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        started = time.monotonic()
        try:
            probes.reached.append((started, await answering_pod(address)))
        except (OSError, TimeoutError, ValueError) as error:
            probes.failed.append((started, type(error).__name__))
        finally:
            slots.release()

    begun, tick = time.monotonic(), 0
    while not stop.is_set():
        await asyncio.sleep(max(0.0, begun + tick / rate - time.monotonic()))
        tick += 1
        if slots.locked():
            probes.skipped += 1
            continue
        await slots.acquire()
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


def shown_not_ready(slices: dict[str, dict[str, Any]], address: str) -> bool:
    """The pod's endpoint is in a slice, and not ready there (terminating pods are not ready)."""
    for item in slices.values():
        for endpoint in item.get("endpoints") or ():
            if address in endpoint.get("addresses", ()):
                return (endpoint.get("conditions") or {}).get("ready") is False
    return False


@contextlib.asynccontextmanager
async def following(
    kube: Kube, path: str, selector: str, seen: Callable[[dict[str, dict[str, Any]]], None]
) -> AsyncIterator[None]:
    """Watch the objects at `path` with the labels `selector`, calling `seen` with all of them
    after every event; once listed, until the block ends."""
    listed = asyncio.Event()

    async def follow() -> None:
        objects: dict[str, dict[str, Any]] = {}
        async for event in watch.watch(kube, path, {"labelSelector": selector}):
            if event.type == watch.LIST:
                objects = {o["metadata"]["name"]: o for o in event.object["items"]}
            elif event.type == "DELETED":
                objects.pop(event.object["metadata"]["name"], None)
            else:
                objects[event.object["metadata"]["name"]] = event.object
            seen(objects)
            listed.set()

    task = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(listed.wait(), SETTLE_TIMEOUT)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Round:
    case: str
    slice_lag: float | None
    last_reached: float | None
    """Seconds from the change to the start of the last new connection that reached the pod."""
    reached_after: int
    """New connections started after the change that still reached the pod."""
    failed: int
    connections: int
    """New connections started after the change, and of them, those that failed."""
    skipped: int
    """Ticks of the round with every probe slot taken."""


class Bench:
    def __init__(self, kube: Kube, address: str, rate: float) -> None:
        self.kube = kube
        self.address = address
        self.rate = rate
        self.pods_path = path_of("v1", "Pod", NAMESPACE)
        self.slices_path = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"

    async def serving(self) -> tuple[dict[str, str], str]:
        """Once REPLICAS pods of the Service and the decoy's are ready, listed ready in their
        slices, and new connections reach each of the Service's: their names and addresses,
        and the decoy's address."""

        async def settled() -> tuple[dict[str, str], str] | None:
            pods = await self.kube.list(self.pods_path, f"app in ({APP},{DECOY})")
            up = {
                p["metadata"]["name"]: p["status"]["podIP"]
                for p in pods
                if ready(p) and not p["metadata"].get("deletionTimestamp")
            }
            decoys = [
                p["metadata"]["name"] for p in pods if p["metadata"]["labels"]["app"] == DECOY
            ]
            decoy = up.pop(decoys[0]) if len(decoys) == 1 and decoys[0] in up else None
            slices = await self.kube.list(self.slices_path, SLICES)
            listed = {
                address
                for item in slices
                for endpoint in item.get("endpoints") or ()
                if (endpoint.get("conditions") or {}).get("ready")
                for address in endpoint["addresses"]
            }
            if decoy is None or len(up) != REPLICAS or listed != {decoy, *up.values()}:
                return None
            reached = {await answering_pod(self.address) for _ in range(30)}
            return (up, decoy) if reached == set(up) else None

        return await eventually(
            settled, timeout=SETTLE_TIMEOUT, what=f"{REPLICAS} pods serving", interval=0.5
        )

    async def turn(self, address: str, ready: bool) -> None:
        async with aiohttp.ClientSession() as session:
            url = f"http://{address}:8080/control/ready?ready={int(ready)}"
            async with session.post(url) as response:
                response.raise_for_status()

    async def round(self, case: str) -> Round:
        pods, decoy = await self.serving()
        target = sorted(pods)[0]
        address = pods[target]
        marks: dict[str, float] = {}

        def slices_seen(slices: dict[str, dict[str, Any]]) -> None:
            for mark, shown in (("slice", address), ("decoy", decoy)):
                if mark not in marks and shown_not_ready(slices, shown):
                    marks[mark] = time.monotonic()

        def pods_seen(objects: dict[str, dict[str, Any]]) -> None:
            pod = objects.get(target)
            if "not ready" not in marks and pod is not None and not ready(pod):
                marks["not ready"] = time.monotonic()

        def marked(mark: str) -> Callable[[], Awaitable[float | None]]:
            async def seen() -> float | None:
                return marks.get(mark)

            return seen

        probes, stop = Probes(), asyncio.Event()
        async with (
            following(self.kube, self.slices_path, SLICES, slices_seen),
            following(self.kube, self.pods_path, f"app={APP}", pods_seen),
        ):
            probing = asyncio.create_task(probe(self.address, self.rate, stop, probes))
            await asyncio.sleep(1.0)  # the probes under way, reaching both pods
            if case == NOT_READY:
                await self.turn(address, ready=False)
                changed = await eventually(marked("not ready"), timeout=30, what="not ready")
            else:
                if case == TERMINATING_AFTER_CHANGE:
                    # Another endpoint change just before: kube-proxy syncs for it, then waits
                    # out its minimum sync period before it syncs the deletion.
                    await self.turn(decoy, ready=False)
                    await eventually(marked("decoy"), timeout=30, what="the decoy not ready")
                changed = time.monotonic()
                await self.kube.request("DELETE", path_of("v1", "Pod", NAMESPACE, target))

            async def quiet() -> bool:
                now = time.monotonic()
                if now - changed >= WINDOW:
                    return True
                last = max(marks.get("slice", now), probes.last_reaching(target) or changed)
                return "slice" in marks and now - last >= QUIET

            await eventually(quiet, timeout=WINDOW + 5, what="the round's end", interval=0.05)
            stop.set()
            await probing
        if case == NOT_READY:
            await self.turn(address, ready=True)
        if case == TERMINATING_AFTER_CHANGE:
            await self.turn(decoy, ready=True)
        last = probes.last_reaching(target)
        return Round(
            case=case,
            slice_lag=marks["slice"] - changed if "slice" in marks else None,
            last_reached=None if last is None else last - changed,
            reached_after=sum(1 for at, pod in probes.reached if pod == target and at > changed),
            failed=sum(1 for at, _ in probes.failed if at > changed),
            connections=sum(1 for at, _ in [*probes.reached, *probes.failed] if at > changed),
            skipped=probes.skipped,
        )


def in_namespace(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "namespace": NAMESPACE}}


def terminating_server() -> dict[str, Any]:
    """The test server's Deployment, its pods answering through the whole of a round after
    their deletion."""
    deployment = in_namespace(server_deployment(APP, REPLICAS))
    pod = deployment["spec"]["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = int(WINDOW) + 15
    (container,) = pod["containers"]
    container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(int(WINDOW) + 5)]}}}
    return deployment


async def bench(info: ClusterInfo, rounds: int, rate: float) -> list[Round]:
    kube = await Kube.connect(str(info.kubeconfig))
    try:
        await kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": NAMESPACE}})

        async def account() -> dict[str, Any] | None:
            return await kube.get(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default")

        await eventually(account, timeout=30, what="the namespace's default ServiceAccount")
        for obj in (
            terminating_server(),
            in_namespace(service(APP)),
            in_namespace(server_deployment(DECOY, 1)),
            in_namespace(service(DECOY)),
        ):
            await kube.apply(obj, "bench")
        found = await kube.get(path_of("v1", "Service", NAMESPACE, APP))
        assert found is not None
        runner = Bench(kube, str(found["spec"]["clusterIP"]), rate)
        results = []
        for number in range(1, rounds + 1):
            for case in CASES:
                result = await runner.round(case)
                results.append(result)
                print(
                    f"round {number}, {case}: slice {seconds(result.slice_lag)}, last new "
                    f"connection reaching the pod {seconds(result.last_reached)} "
                    f"({result.reached_after} after the change, {result.connections} in all, "
                    f"{result.failed} failed, {result.skipped} ticks skipped)",
                    flush=True,
                )
        return results
    finally:
        await kube.close()


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:6.3f}s"


def spread(values: list[float | None]) -> str:
    """Median and max of what was seen, and how many rounds never saw it."""
    known = [v for v in values if v is not None]
    text = f"{statistics.median(known):8.3f}{max(known):8.3f}" if known else f"{'-':>8}{'-':>8}"
    missing = len(values) - len(known)
    return text + (f" ({missing} never)" if missing else "")


def report(results: list[Round], rate: float) -> None:
    rounds = len(results) // len(CASES)
    print(
        f"\nnew connections to a ClusterIP ({REPLICAS} pods, kube-proxy nftables, {rate:g}/s), "
        f"{rounds} rounds; seconds from the change"
    )
    print(f"{'':34}{'EndpointSlice':>16}  {'last connection':>16}  connections after the change")
    print(f"{'':34}{'median':>8}{'max':>8}  {'median':>8}{'max':>8}  reaching it, failed, all")
    worst = 0.0
    for case in CASES:
        mine = [r for r in results if r.case == case]
        print(
            f"{case:34}{spread([r.slice_lag for r in mine])}  "
            f"{spread([r.last_reached for r in mine])}  "
            f"{sum(r.reached_after for r in mine)}, {sum(r.failed for r in mine)}, "
            f"{sum(r.connections for r in mine)}"
        )
        worst = max([worst, *(r.last_reached or 0.0 for r in mine)])
    drain = Settings().drain_delay
    print(
        f"the default drain delay, {drain} s, is {drain / worst:.1f}x the longest lag"
        if worst > 0
        else f"no connection reached a pod after its change; the default drain delay is {drain} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=150.0)
    args = parser.parse_args()
    # The supervisor hands its environment to the node agent, which finds the test server here.
    os.environ["FERRY_AGENT_IMAGES"] = str(TEST_IMAGES)
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_cluster(ClusterLayout(Path(tmp) / "bench-lag"), nodes=0, operator=True) as info,
    ):
        results = asyncio.run(bench(info, args.rounds, args.rate))
    report(results, args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
