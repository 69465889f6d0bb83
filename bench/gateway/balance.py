"""Request-level balancing through the cluster's Gateway against kube-proxy's per-connection
balancing at the ClusterIP, for kept-alive clients, side by side in one local environment.

Two measurements, the candidates taking turns round by round:

1. The load example's step-up (examples/load: the echo predictor at 200 ms a request, two at a
   time per replica; 2 requests a second for 10 s, 20 for 30 s, 2 for 30 s) sent by
   examples/load/load.py over kept-alive connections, through the ClusterIP (`--via
   cluster-ip`) and through the Gateway (`--via gateway`, Envoy Gateway's Envoy at the URL in
   the API's status). Each run gets a fresh API in a namespace of its own, starting at one
   replica. Besides load.py's figures (latency, the API's inFlight each second), each replica's
   proxy is read every second (its /stats servedTotal, at the pod's address), which gives:
   - share: of the requests served in the last 10 s of the step, the smallest and largest share
     a replica served, against the fair 1/N (N the replicas then ready);
   - new-replica lag: for each replica that turned ready during the step, the seconds from the
     first reading that saw it ready to the first that saw it serve (readings 1 s apart: 1
     means within the autoscaler's tick).
2. The Gateway's added latency: one replica of the echo example (no delay), requests one after
   another on one kept-alive connection, in blocks of 100 alternating between the ClusterIP and
   the Gateway; p50 and p99 of each.

Traffic goes only to the cluster's own addresses (Service and pod blocks and the node's address,
routed into its network namespace) and the API server on loopback.

    PYTHONPATH=. .venv/bin/python bench/gateway/balance.py [--rounds 3] [--latency-blocks 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from ferry import names
from ferry.adapters.kube import Kube, path_of
from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.layout import ClusterLayout

REPO = Path(__file__).resolve().parents[2]
LOAD = REPO / "examples" / "load"
ECHO = REPO / "examples" / "custom-container" / "realtimeapi.yaml"
PROFILE = "2:10,20:30,2:30"
STEP = (10, 40)
"""The seconds of the step, from the load's start."""
SHARE_WINDOW = 10
VIAS = ("cluster-ip", "gateway")
SAMPLE_TIMEOUT = 0.8
READ_GAP = 1.5
"""Seconds within which a reading counts as the replica's count at a window's edge."""


@dataclass
class Readings:
    """Each replica's proxy, read once a second: when it was first seen ready, and its
    servedTotal at each reading."""

    start: float = field(default_factory=time.monotonic)
    ready_at: dict[str, float] = field(default_factory=dict)
    served: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    initial: set[str] = field(default_factory=set)


def kubectl(cluster: ClusterInfo, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def deploy(cluster: ClusterInfo, namespace: str, api: dict[str, Any]) -> None:
    kubectl(cluster, "create", "namespace", namespace)
    kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(api))
    name = api["metadata"]["name"]
    kubectl(
        cluster, "wait", "-n", namespace, "--for=condition=Ready", f"rtapi/{name}", "--timeout=180s"
    )


async def read_proxy(
    session: aiohttp.ClientSession,
    pod: dict[str, Any],
    at: float,
    readings: Readings,
    *,
    first: bool,
) -> None:
    name, address = pod["metadata"]["name"], pod["status"].get("podIP")
    ready = any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod["status"].get("conditions") or ()
    )
    if not ready or not address:
        return
    readings.ready_at.setdefault(name, at)
    if first:
        readings.initial.add(name)
    try:
        async with session.get(f"http://{address}:{names.PROXY_ADMIN_PORT}/stats") as reply:
            stats = await reply.json()
    except (aiohttp.ClientError, TimeoutError):
        return
    readings.served.setdefault(name, []).append((at, int(stats.get("servedTotal", 0))))


async def read_proxies(
    kube: Kube, namespace: str, api: str, readings: Readings, stop: asyncio.Event
) -> None:
    timeout = aiohttp.ClientTimeout(total=SAMPLE_TIMEOUT)
    first = True
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.is_set():
            tick = time.monotonic()
            pods = await kube.list(path_of("v1", "Pod", namespace), f"{names.API_LABEL}={api}")
            at = tick - readings.start
            await asyncio.gather(*(read_proxy(session, p, at, readings, first=first) for p in pods))
            first = False
            await asyncio.sleep(max(0.0, tick + 1.0 - time.monotonic()))


def served_between(series: list[tuple[float, int]], start: float, end: float) -> int | None:
    """Requests served from the last reading at or before `start` to the last at or before
    `end`; None unless the replica was read both within a reading of `start` and of `end` (a
    read that timed out would otherwise count as nothing served)."""
    before = [(at, count) for at, count in series if start - READ_GAP <= at <= start]
    upto = [(at, count) for at, count in series if end - READ_GAP <= at <= end]
    if not before or not upto:
        return None
    return upto[-1][1] - before[-1][1]


def served_in_window(readings: Readings, offset: float) -> dict[str, int]:
    """Requests each replica ready by then served in the step's last SHARE_WINDOW seconds."""
    end = offset + STEP[1]
    start = end - SHARE_WINDOW
    ready = [pod for pod, at in readings.ready_at.items() if at <= start]
    counts = {pod: served_between(readings.served.get(pod, []), start, end) for pod in ready}
    return {pod: count for pod, count in counts.items() if count is not None}


def shares(counts: dict[str, int]) -> tuple[float, float]:
    """The smallest and largest share of `counts`, times their number (1.0: exactly fair)."""
    total = sum(counts.values())
    if not total:
        return 0.0, 0.0
    fractions = [count / total * len(counts) for count in counts.values()]
    return min(fractions), max(fractions)


def new_replica_lags(readings: Readings, offset: float) -> list[float]:
    lags = []
    for pod, ready in readings.ready_at.items():
        if pod in readings.initial or ready > offset + STEP[1]:
            continue
        series = readings.served.get(pod, [])
        baseline = series[0][1] if series else 0
        serving = next((at for at, count in series if count > baseline), None)
        if serving is not None:
            lags.append(round(serving - ready, 1))
    return lags


def drain_seconds(seconds: list[dict[str, Any]]) -> int | None:
    """From the drop to the first second whose p99 is under 300 ms."""
    for line in seconds:
        if line["t"] > STEP[1] and line["p99Ms"] is not None and line["p99Ms"] < 300:  # noqa: PLR2004
            return int(line["t"] - STEP[1] - 1)
    return None


async def step_up(cluster: ClusterInfo, kube: Kube, namespace: str, via: str) -> dict[str, Any]:
    api = yaml.safe_load((LOAD / "realtimeapi.yaml").read_text())
    deploy(cluster, namespace, api)
    readings = Readings()
    stop = asyncio.Event()
    reader = asyncio.create_task(read_proxies(kube, namespace, "echo-load", readings, stop))
    started = time.monotonic() - readings.start
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(LOAD / "load.py"),
        "--api=echo-load",
        f"--namespace={namespace}",
        f"--kubeconfig={cluster.kubeconfig}",
        f"--via={via}",
        f"--profile={PROFILE}",
        "--json",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    stop.set()
    await reader
    kubectl(cluster, "delete", "namespace", namespace, "--wait=false")
    *seconds, last = [json.loads(line) for line in out.decode().splitlines()]
    summary = last["summary"]
    counts = served_in_window(readings, started)
    low, high = shares(counts)
    in_flight = [s["inFlight"] for s in seconds if isinstance(s["inFlight"], int | float)]
    return {
        "via": via,
        "sent": summary["sent"],
        "failed": summary["failed"],
        "p50Ms": summary["p50Ms"],
        "p99Ms": summary["p99Ms"],
        "peakInFlight": max(in_flight, default=None),
        "slowSeconds": sum(1 for s in seconds if (s["p50Ms"] or 0) > 1000),  # noqa: PLR2004
        "drainSeconds": drain_seconds(seconds),
        "servedInWindow": sorted(counts.values()),
        "shareMin": round(low, 2),
        "shareMax": round(high, 2),
        "newReplicaLags": new_replica_lags(readings, started),
    }


async def latency(cluster: ClusterInfo, kube: Kube, blocks: int) -> dict[str, list[float]]:
    api = yaml.safe_load(ECHO.read_text())
    api["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 1}
    deploy(cluster, "latency", api)
    service = await kube.get(path_of("v1", "Service", "latency", "echo"))
    status = (
        await kube.get(path_of("ferry.dev/v1alpha1", "RealtimeAPI", "latency", "echo")) or {}
    )["status"]
    urls = {
        "cluster-ip": f"http://{(service or {})['spec']['clusterIP']}:{names.SERVICE_PORT}/",
        "gateway": str(status["endpoint"]),
    }
    found: dict[str, list[float]] = {via: [] for via in VIAS}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for via in VIAS:  # warm both paths up: connections made, Envoy's endpoints known
            for _ in range(20):
                async with session.post(urls[via], data=b"{}") as reply:
                    await reply.read()
        for block in range(blocks * len(VIAS)):
            via = VIAS[block % len(VIAS)]
            for _ in range(100):
                began = time.perf_counter()
                async with session.post(urls[via], data=b"{}") as reply:
                    await reply.read()
                    if reply.status != 200:  # noqa: PLR2004
                        raise RuntimeError(f"{via}: {reply.status}")
                found[via].append((time.perf_counter() - began) * 1000)
    kubectl(cluster, "delete", "namespace", "latency", "--wait=false")
    return found


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _median(runs: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in runs if r[key] is not None]
    return f"{statistics.median(values):g}" if values else "-"


def print_step_ups(runs: list[dict[str, Any]]) -> None:
    print()
    print(
        "| via | failed | p50 ms (median; runs) | p99 ms | peak inFlight | seconds p50 > 1 s "
        "| drain s | share min / max (x fair) | new replica: s ready -> serving |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for via in VIAS:
        mine = [r for r in runs if r["via"] == via]
        p50s = ", ".join(f"{r['p50Ms']:g}" for r in mine)
        p99s = ", ".join(f"{r['p99Ms']:g}" for r in mine)
        lags = sorted(lag for r in mine for lag in r["newReplicaLags"])
        lagged = (
            f"median {statistics.median(lags):g}, max {max(lags):g} ({len(lags)})" if lags else "-"
        )
        print(
            f"| {via} | {sum(r['failed'] for r in mine)}/{sum(r['sent'] for r in mine)} "
            f"| {_median(mine, 'p50Ms')} ({p50s}) | {_median(mine, 'p99Ms')} ({p99s}) "
            f"| {_median(mine, 'peakInFlight')} | {_median(mine, 'slowSeconds')} "
            f"| {_median(mine, 'drainSeconds')} "
            f"| {_median(mine, 'shareMin')} / {_median(mine, 'shareMax')} | {lagged} |"
        )


def print_latency(found: dict[str, list[float]]) -> None:
    print()
    print("| via | requests | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- |")
    for via in VIAS:
        values = found[via]
        p50, p99 = quantile(values, 0.5), quantile(values, 0.99)
        print(f"| {via} | {len(values)} | {p50:.3f} | {p99:.3f} |")
    added50 = quantile(found["gateway"], 0.5) - quantile(found["cluster-ip"], 0.5)
    added99 = quantile(found["gateway"], 0.99) - quantile(found["cluster-ip"], 0.99)
    print(f"the Gateway adds {added50:.3f} ms at p50 and {added99:.3f} ms at p99")


@contextmanager
def cluster_for_bench() -> Iterator[ClusterInfo]:
    with (
        tempfile.TemporaryDirectory(prefix="ferry-bench-") as root,
        local_cluster(
            ClusterLayout(Path(root) / "ferry-gateway-bench"), nodes=0, operator=True
        ) as info,
    ):
        yield info


async def main_async(args: argparse.Namespace) -> None:
    with cluster_for_bench() as cluster:
        kube = await Kube.connect(str(cluster.kubeconfig))
        try:
            runs: list[dict[str, Any]] = []
            for round_ in range(args.rounds):
                order = VIAS if round_ % 2 == 0 else tuple(reversed(VIAS))
                for via in order:
                    run = await step_up(cluster, kube, f"step-{round_}-{via}", via)
                    print(json.dumps(run), flush=True)
                    runs.append(run)
            print_step_ups(runs)
            if args.latency_blocks:
                print_latency(await latency(cluster, kube, args.latency_blocks))
        finally:
            await kube.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="step-up runs of each (default %(default)s)"
    )
    parser.add_argument(
        "--latency-blocks", type=int, default=20, help="blocks of 100 requests each (0: skip)"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.latency_blocks < 0:
        parser.error("--rounds must be at least 1 and --latency-blocks at least 0")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
