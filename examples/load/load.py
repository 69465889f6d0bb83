"""Send a load profile at a RealtimeAPI and watch it scale, one line per second.

    python examples/load/load.py --api echo-load --profile 2:10,20:30,2:30

The profile is stages of RATE:SECONDS (requests per second, for that long; rate 0 sends
nothing and only watches). Requests leave on schedule whether or not earlier ones have been
answered (an open loop, as independent clients behave), so a slow API meets growing demand, not
a politely waiting client. Each second prints the rate offered, what was sent and answered, the
latency of the answers, and the API's replicas, desired replicas and in-flight demand from its
status, which is where the autoscaler's decisions show.

Requests reach the API at its Service's ClusterIP, as clients in the cluster send them (the local
environment routes its Service addresses to this machine; ferry_local.cluster_ip), or with
--via gateway through the cluster's Gateway at the URL in the API's status.endpoint (Envoy,
which picks a ready replica per request), or through --url (a port-forward, an ingress) in any
other cluster. --connections chooses kept-alive
connections (the default, what clients in a cluster do: kube-proxy picks a pod per connection,
so each stays on the pods it first reached) or one connection per request. The status comes
from the API server of the kubeconfig (KUBECONFIG or --kubeconfig).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio.config import ConfigException

from ferry.adapters.kube import Kube, KubeError
from ferry.spec.schema import GROUP, PLURAL, VERSION
from ferry_local.cluster_ip import (
    CONNECTIONS,
    ClusterIPClient,
    Connections,
    NoClusterIPError,
    ServiceNotFoundError,
)

DEFAULT_PROFILE = "2:10,20:30,2:30"
MAX_RATE = 10_000
MAX_STAGE_SECONDS = 86_400
HEADERS = {"Content-Type": "application/json"}
# Each API server read of the status may take this long before that second shows none.
STATUS_TIMEOUT = 2.0

Send = Callable[[bytes], Awaitable[int]]


@dataclass(frozen=True)
class Stage:
    rate: float
    seconds: float


def parse_profile(text: str) -> list[Stage]:
    """`2:10,20:30,2:30` -> stages; an argparse type, so a bad profile is a usage error."""
    stages = []
    for part in text.split(","):
        rate, _, seconds = part.strip().partition(":")
        try:
            stage = Stage(float(rate), float(seconds))
        except ValueError:
            stage = Stage(-1, -1)
        if not (0 <= stage.rate <= MAX_RATE and 0 < stage.seconds <= MAX_STAGE_SECONDS):
            raise argparse.ArgumentTypeError(
                f"{part!r}: each stage is RATE:SECONDS, rate 0 to {MAX_RATE} per second, "
                f"seconds above 0 and at most {MAX_STAGE_SECONDS}"
            )
        stages.append(stage)
    return stages


def rate_at(stages: list[Stage], elapsed: float) -> float:
    """The rate the profile asks for `elapsed` seconds into the run (0 once it is over)."""
    for stage in stages:
        if elapsed < stage.seconds:
            return stage.rate
        elapsed -= stage.seconds
    return 0.0


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None when nothing was measured."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


@dataclass
class Tally:
    """What happened in one stretch of time: the second just gone, or the whole run."""

    sent: int = 0
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.sent += other.sent
        self.ok += other.ok
        self.failures.update(other.failures)
        self.latencies += other.latencies

    def report(self) -> dict[str, Any]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 1)

        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": sum(self.failures.values()),
            "failures": dict(self.failures),
            "p50Ms": ms(percentile(self.latencies, 0.50)),
            "p99Ms": ms(percentile(self.latencies, 0.99)),
        }


class Run:
    """The open loop: sends on schedule, counts every outcome into the current second."""

    def __init__(self, send: Send, body: bytes, timeout: float, max_outstanding: int) -> None:
        self.send, self.body, self.timeout = send, body, timeout
        self.max_outstanding = max_outstanding
        self.second, self.total = Tally(), Tally()
        self.outstanding: set[asyncio.Task[None]] = set()

    def fire(self) -> None:
        self.second.sent += 1
        if len(self.outstanding) >= self.max_outstanding:
            # The client's own bound: counted, so an overwhelmed API cannot look healthy.
            self.second.failures["not sent: too many outstanding"] += 1
            return
        task = asyncio.create_task(self._one())
        self.outstanding.add(task)
        task.add_done_callback(self.outstanding.discard)

    async def _one(self) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                status = await self.send(self.body)
        except TimeoutError:
            self.second.failures["timeout"] += 1
            return
        except Exception as error:  # noqa: BLE001 - every failure is counted, none is lost
            self.second.failures[type(error).__name__] += 1
            return
        if 200 <= status < 300:  # noqa: PLR2004
            self.second.ok += 1
            self.second.latencies.append(time.monotonic() - started)
        else:
            self.second.failures[str(status)] += 1

    async def stage(self, stage: Stage, clock: Callable[[], float]) -> None:
        """Send rate x seconds requests, evenly spaced over the stage."""
        start = clock()
        for index in range(round(stage.rate * stage.seconds)):
            await asyncio.sleep(max(0.0, start + index / stage.rate - clock()))
            self.fire()
        await asyncio.sleep(max(0.0, start + stage.seconds - clock()))

    def roll(self) -> Tally:
        """The second just gone; the next one starts empty."""
        done, self.second = self.second, Tally()
        self.total.add(done)
        return done

    async def finish(self) -> None:
        """Wait for the answers still on their way (each is bounded by the timeout)."""
        if self.outstanding:
            await asyncio.wait(set(self.outstanding))


class StatusReader:
    """The RealtimeAPI's status, read once a second alongside the load."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        self.last: dict[str, Any] = {}
        self.error: str | None = None

    async def read(self) -> None:
        try:
            async with asyncio.timeout(STATUS_TIMEOUT):
                found = await self.kube.get(self.path)
        except (KubeError, TimeoutError) as error:
            self.error = str(error) or type(error).__name__
            return
        self.error = None if found is not None else f"{self.path} not found"
        self.last = (found or {}).get("status") or {}

    def fields(self) -> dict[str, Any]:
        return {
            "replicas": self.last.get("replicas"),
            "readyReplicas": self.last.get("readyReplicas"),
            "desiredReplicas": self.last.get("desiredReplicas"),
            "inFlight": self.last.get("inFlight"),
        }


HEADER = (
    f"{'t':>4} {'rate':>6} {'sent':>5} {'ok':>5} {'fail':>5} {'p50ms':>7} {'p99ms':>7} "
    f"{'ready/replicas':>14} {'desired':>7} {'inFlight':>8}"
)


def text_line(line: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    replicas = f"{show(line['readyReplicas'])}/{show(line['replicas'])}"
    return (
        f"{line['t']:>4} {show(line['rate']):>6} {line['sent']:>5} {line['ok']:>5} "
        f"{line['failed']:>5} {show(line['p50Ms']):>7} {show(line['p99Ms']):>7} "
        f"{replicas:>14} {show(line['desiredReplicas']):>7} {show(line['inFlight']):>8}"
        + (f"  {line['failures']}" if line["failures"] else "")
    )


async def drive(
    run: Run,
    status: StatusReader,
    stages: list[Stage],
    emit: Callable[[dict[str, Any]], None],
    connections: Connections = "keep-alive",
) -> dict[str, Any]:
    """Run the profile, emit a line per second, and return the summary."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    replicas_seen: list[int] = []
    desired_seen: list[int] = []

    async def report() -> None:
        second = 0
        while True:
            second += 1
            await asyncio.sleep(max(0.0, start + second - loop.time()))
            await status.read()
            # Read mid-second, so a second shows the stage that covered most of it.
            rate = rate_at(stages, second - 0.5)
            line = {"t": second, "rate": rate, **run.roll().report(), **status.fields()}
            if status.error:
                line["statusError"] = status.error
            if isinstance(line["replicas"], int):
                replicas_seen.append(line["replicas"])
            if isinstance(line["desiredReplicas"], int):
                desired_seen.append(line["desiredReplicas"])
            emit(line)

    reporter = asyncio.create_task(report())
    try:
        for stage in stages:
            await run.stage(stage, loop.time)
        await run.finish()
    finally:
        reporter.cancel()
    run.roll()
    return {
        "summary": {
            **run.total.report(),
            "connections": connections,
            "seconds": round(loop.time() - start, 1),
            "replicasFirst": replicas_seen[0] if replicas_seen else None,
            "replicasMax": max(replicas_seen) if replicas_seen else None,
            "replicasLast": replicas_seen[-1] if replicas_seen else None,
            "desiredMax": max(desired_seen) if desired_seen else None,
        }
    }


def summary_text(summary: dict[str, Any]) -> str:
    failures = ", ".join(f"{n} {why}" for why, n in summary["failures"].items()) or "none"
    return (
        f"sent {summary['sent']} in {summary['seconds']}s over {summary['connections']} "
        f"connections: {summary['ok']} ok, "
        f"{summary['failed']} failed ({failures}); latency p50 {summary['p50Ms']} ms, "
        f"p99 {summary['p99Ms']} ms; replicas {summary['replicasFirst']} -> "
        f"max {summary['replicasMax']} -> {summary['replicasLast']}"
    )


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--api", required=True, help="the RealtimeAPI's name")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument(
        "--profile",
        type=parse_profile,
        default=parse_profile(DEFAULT_PROFILE),
        help=f"stages RATE:SECONDS, comma-separated (default {DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--payload", default="{}", help="the JSON body of every request (default %(default)s)"
    )
    parser.add_argument("--path", default="/", help="request path (default %(default)s)")
    parser.add_argument(
        "--url", help="send to this base URL instead of through the local environment"
    )
    parser.add_argument(
        "--via",
        choices=("cluster-ip", "gateway"),
        default="cluster-ip",
        help="the Service's ClusterIP, or the Gateway at status.endpoint (default %(default)s)",
    )
    parser.add_argument(
        "--connections",
        choices=CONNECTIONS,
        default="keep-alive",
        help="kept-alive connections, or a new one for each request (default %(default)s)",
    )
    parser.add_argument("--kubeconfig", help="default: KUBECONFIG")
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds per request (default %(default)s)"
    )
    parser.add_argument(
        "--max-outstanding",
        type=int,
        default=2000,
        help="requests awaiting answers before more are counted as not sent (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.max_outstanding < 1:
        parser.error("--timeout must be above 0 and --max-outstanding at least 1")
    try:
        json.loads(args.payload)
    except ValueError as error:
        parser.error(f"--payload is not JSON: {error}")
    return args


async def main_async(args: argparse.Namespace) -> int:
    def emit(line: dict[str, Any]) -> None:
        print(json.dumps(line) if args.json else text_line(line), flush=True)

    try:
        kube = await Kube.connect(args.kubeconfig)
    except ConfigException as error:
        print(f"load: no cluster to talk to (KUBECONFIG or --kubeconfig): {error}", file=sys.stderr)
        return 1
    status = StatusReader(kube, args.namespace, args.api)
    try:
        base = args.url
        if base is None and args.via == "gateway":
            base = await gateway_url(kube, args.namespace, args.api)
            if base is None:
                print(
                    f"load: rtapi/{args.api} has no URL through a Gateway in status.endpoint "
                    "(is a Gateway configured, and the API Ready?)",
                    file=sys.stderr,
                )
                return 1
        if base:
            url = base.rstrip("/") + args.path
            # No bound of the session's own: --max-outstanding is the bound.
            connector = aiohttp.TCPConnector(limit=0, force_close=args.connections == "per-request")
            async with aiohttp.ClientSession(connector=connector) as session:

                async def post(body: bytes) -> int:
                    async with session.post(url, data=body, headers=HEADERS) as response:
                        await response.read()
                        return response.status

                return await _load(args, status, post, emit)
        async with contextlib.AsyncExitStack() as stack:
            try:
                service = await stack.enter_async_context(
                    ClusterIPClient(kube, args.namespace, args.api, connections=args.connections)
                )
                await service.wait_until_serving(1, timeout=60)
            except (ServiceNotFoundError, TimeoutError) as error:
                print(
                    f"load: {error}: apply the RealtimeAPI and wait for it to be Ready "
                    f"(kubectl wait --for=condition=Ready rtapi/{args.api})",
                    file=sys.stderr,
                )
                return 1
            except NoClusterIPError as error:
                print(f"load: {error}; send through --url instead", file=sys.stderr)
                return 1

            async def to_cluster_ip(body: bytes) -> int:
                reply = await service.request(
                    "POST", args.path, body=body, headers=HEADERS, timeout=args.timeout
                )
                return reply.status

            return await _load(args, status, to_cluster_ip, emit)
    finally:
        await kube.close()


async def gateway_url(kube: Kube, namespace: str, name: str) -> str | None:
    """The API's URL through its Gateway, from its status; None when it has none (its endpoint
    is then its Service's in-cluster name)."""
    status = StatusReader(kube, namespace, name)
    await status.read()
    endpoint = status.last.get("endpoint")
    if not isinstance(endpoint, str) or ".svc:" in endpoint:
        return None
    return endpoint


async def _load(
    args: argparse.Namespace,
    status: StatusReader,
    send: Send,
    emit: Callable[[dict[str, Any]], None],
) -> int:
    if not args.json:
        print(HEADER, flush=True)
    run = Run(send, args.payload.encode(), args.timeout, args.max_outstanding)
    summary = await drive(run, status, args.profile, emit, args.connections)
    print(json.dumps(summary) if args.json else summary_text(summary["summary"]), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    try:
        return asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
