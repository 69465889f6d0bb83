"""A canary through the cluster's Gateway: the share of the requests it gets against its weight,
and the requests that fail while it is aborted or promoted under load, in one local environment.

1. Split: the echo example at 2 replicas with a canary (the same server under another tag) at
   each weight of --weights, in a namespace of its own, Ready (the canary rolled out and its
   weight on the route the Gateway accepted); then --requests requests through the Gateway, on
   --connections kept-alive connections at once; the share the canary's pods answered (each
   answer names the pod) against the weight.
2. Abort and promote under load: a canary at 50 %, Ready; 4 clients send requests through the
   Gateway, one after another on kept-alive connections, while the canary is taken out of the
   spec (abort) or its image moved into the predictor's (promote), until its Deployment and
   Service are deleted and the API is Ready again; then 500 requests more. --runs runs of each,
   taking turns.

Traffic goes only to the node's address, routed into the cluster's network namespace, and the
API server on loopback.

    PYTHONPATH=. .venv/bin/python bench/gateway/canary.py [--requests 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yaml

from bench.gateway.balance import ECHO, cluster_for_bench, deploy, kubectl
from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually

CANDIDATE = "ghcr.io/ferry-dev/examples-echo:0.2.0"
WORKERS = 4
AFTER = 500
"""Requests answered after the change is done, before the load stops."""
MAX_SECONDS = 300.0


def echo(percent: int | None) -> dict[str, Any]:
    api: dict[str, Any] = yaml.safe_load(ECHO.read_text())
    api["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 2}
    if percent is not None:
        api["spec"]["canary"] = {"trafficPercent": percent, "image": CANDIDATE}
    return api


def endpoint(cluster: ClusterInfo, namespace: str) -> str:
    api = json.loads(kubectl(cluster, "get", "-n", namespace, "rtapi", "echo", "-o", "json"))
    return f"{api['status']['endpoint']}predict"


@dataclass
class Tally:
    canary: int = 0
    stable: int = 0
    failed: Counter[str] = field(default_factory=Counter)

    @property
    def answered(self) -> int:
        return self.canary + self.stable

    async def send(self, session: aiohttp.ClientSession, url: str) -> None:
        try:
            async with session.post(url, json={"n": self.answered}) as response:
                body = await response.read()
                if response.status != 200:  # noqa: PLR2004
                    self.failed[f"{response.status} {body[:60]!r}"] += 1
                elif json.loads(body)["pod"].startswith("echo-canary-"):
                    self.canary += 1
                else:
                    self.stable += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            self.failed[repr(error)] += 1


def session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=15),
    )


async def split(cluster: ClusterInfo, percent: int, requests: int, connections: int) -> Tally:
    namespace = f"split-{percent}"
    await asyncio.to_thread(deploy, cluster, namespace, echo(percent))
    url = endpoint(cluster, namespace)
    tally = Tally()
    async with session(connections) as client:

        async def worker(count: int) -> None:
            for _ in range(count):
                await tally.send(client, url)

        share, rest = divmod(requests, connections)
        await asyncio.gather(*(worker(share + (i < rest)) for i in range(connections)))
    kubectl(cluster, "delete", "namespace", namespace, "--wait=false")
    return tally


def canary_gone(cluster: ClusterInfo, namespace: str) -> bool:
    listed = kubectl(
        cluster,
        "get",
        "-n",
        namespace,
        "deployments,services",
        "-l",
        "app.kubernetes.io/component=canary",
        "-o",
        "name",
    )
    return not listed.strip()


async def change(cluster: ClusterInfo, what: str, run: int) -> tuple[Tally, float]:
    """The canary aborted or promoted under load; the tally and the seconds it took."""
    namespace = f"{what}-{run}"
    await asyncio.to_thread(deploy, cluster, namespace, echo(50))
    url = endpoint(cluster, namespace)
    tally = Tally()
    stop = asyncio.Event()
    async with session(WORKERS) as client:
        until = time.monotonic() + MAX_SECONDS

        async def worker() -> None:
            while not stop.is_set() and time.monotonic() < until:
                await tally.send(client, url)

        workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]

        async def canary_answers() -> bool:
            return tally.canary > 0

        await eventually(canary_answers, timeout=60, what="the canary to answer")
        changed = echo(None)
        if what == "promote":
            changed["spec"]["predictor"]["image"] = CANDIDATE
        started = time.monotonic()
        manifest = json.dumps(changed)
        await asyncio.to_thread(
            kubectl, cluster, "apply", "-n", namespace, "-f", "-", stdin=manifest
        )

        async def gone() -> bool:
            return await asyncio.to_thread(canary_gone, cluster, namespace)

        await eventually(gone, timeout=180, what="the canary deleted", interval=0.5)
        await asyncio.to_thread(
            kubectl,
            cluster,
            "wait",
            "-n",
            namespace,
            "--for=condition=Ready",
            "rtapi/echo",
            "--timeout=180s",
        )
        took = time.monotonic() - started
        target = tally.answered + AFTER

        async def answered() -> bool:
            return tally.answered >= target

        await eventually(answered, timeout=60, what=f"{AFTER} answers more")
        stop.set()
        await asyncio.gather(*workers)
    kubectl(cluster, "delete", "namespace", namespace, "--wait=false")
    return tally, took


async def main_async(args: argparse.Namespace) -> None:
    with cluster_for_bench() as cluster:
        print(f"split over {args.requests} requests on {args.connections} kept-alive connections")
        print("| weight | canary answered | share | off by (points) | failed |")
        print("| --- | --- | --- | --- | --- |")
        for percent in args.weights:
            tally = await split(cluster, percent, args.requests, args.connections)
            share = 100 * tally.canary / max(1, tally.answered)
            print(
                f"| {percent} % | {tally.canary} of {tally.answered} | {share:.2f} % "
                f"| {share - percent:+.2f} | {sum(tally.failed.values())} |",
                flush=True,
            )
        print(f"\nabort and promote of a canary at 50 % under load ({WORKERS} clients)")
        print("| change | run | requests | failed | apply -> canary deleted, Ready (s) |")
        print("| --- | --- | --- | --- | --- |")
        failed: Counter[str] = Counter()
        for run in range(args.runs):
            order = ("abort", "promote") if run % 2 == 0 else ("promote", "abort")
            for what in order:
                tally, took = await change(cluster, what, run)
                lost = sum(tally.failed.values())
                failed[what] += lost
                total = tally.answered + lost
                print(f"| {what} | {run + 1} | {total} | {lost} | {took:.1f} |", flush=True)
                for reason, count in tally.failed.items():
                    print(f"  {what} {run + 1}: {count} x {reason}")
        print(f"failed in all: abort {failed['abort']}, promote {failed['promote']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="per weight (default 10000)")
    parser.add_argument(
        "--connections", type=int, default=4, help="kept-alive connections at once (default 4)"
    )
    parser.add_argument(
        "--weights", type=int, nargs="+", default=[1, 10, 50], help="canary weights (percent)"
    )
    parser.add_argument("--runs", type=int, default=3, help="aborts and promotions (default 3)")
    args = parser.parse_args()
    if args.requests < 1 or args.connections < 1 or args.runs < 0:
        parser.error("--requests and --connections must be at least 1, --runs at least 0")
    if not all(0 < weight <= 100 for weight in args.weights):  # noqa: PLR2004
        parser.error("--weights must be from 1 to 100")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
