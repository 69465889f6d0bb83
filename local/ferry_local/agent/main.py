"""`python -m ferry_local.agent`: run a node agent until SIGTERM or SIGINT.

    python -m ferry_local.agent --kubeconfig FILE --node-name NAME --state-dir DIR \
        [--healthz-port PORT] [--images TABLE ...] [--backoff-base SECONDS] ...

Ready when GET http://127.0.0.1:<healthz-port>/healthz answers 200: the Node is registered and
Ready, and the pods bound to it are being watched. At SIGTERM it stops every container (within
--stop-grace seconds), marks the Node NotReady and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from ferry.adapters.kube import Kube
from ferry_local.agent.agent import Agent
from ferry_local.agent.backoff import BackOffPolicy
from ferry_local.agent.cgroups import CgroupError
from ferry_local.agent.memory import AUTO, MODES
from ferry_local.agent.network import DEFAULT_POD_CIDR, HOST_IP
from ferry_local.agent.settings import NODE_GROUP, AgentSettings
from ferry_local.network import ClusterNetwork

log = logging.getLogger("ferry_local.agent")


def command(
    kubeconfig: Path, node_name: str, state_dir: Path, healthz_port: int, *extra: str
) -> list[str]:
    """The argv a supervisor starts an agent with (`extra`: more flags)."""
    return [
        sys.executable,
        "-m",
        "ferry_local.agent",
        f"--kubeconfig={kubeconfig}",
        f"--node-name={node_name}",
        f"--state-dir={state_dir}",
        f"--healthz-port={healthz_port}",
        *extra,
    ]


def parse(argv: Sequence[str] | None = None) -> AgentSettings:
    defaults = BackOffPolicy()
    parser = argparse.ArgumentParser(prog="python -m ferry_local.agent", description=__doc__)
    add = parser.add_argument
    add("--kubeconfig", help="kubeconfig of the API server (default: KUBECONFIG, ~/.kube/config)")
    add("--node-name", required=True, help="name of the Node this agent registers")
    add("--state-dir", type=Path, required=True, help="pod folders: volumes and container logs")
    add("--cpu", default="4", help="the Node's cpu capacity")
    add("--memory", default="8Gi", help="the Node's memory capacity")
    add("--pods", type=int, default=110, help="the Node's pod capacity")
    add("--node-group", default=NODE_GROUP, help="ferry.dev/node-group label and taint value")
    add("--pod-cidr", default=DEFAULT_POD_CIDR, help="block of 127.0.0.0/8 for pod addresses")
    add(
        "--network",
        type=Path,
        help="the cluster network's record (network.json): each pod gets a network namespace "
        "and an address from the node's pod CIDR, instead of a loopback address",
    )
    add(
        "--images",
        type=Path,
        action="append",
        default=[],
        help="an image table tried before the built-in one (repeatable; also FERRY_AGENT_IMAGES)",
    )
    add("--backoff-base", type=float, default=defaults.base, help="restart back-off start (s)")
    add("--backoff-max", type=float, default=defaults.cap, help="restart back-off cap (s)")
    add(
        "--backoff-reset",
        type=float,
        default=defaults.reset_after,
        help="a container that ran this long (s) restarts without delay",
    )
    add(
        "--pass-env",
        action="append",
        default=[],
        help="a variable of the agent's environment every container gets too (repeatable)",
    )
    add("--stop-grace", type=float, default=10.0, help="most grace per pod when the agent stops")
    add(
        "--memory-limits",
        choices=MODES,
        default=AUTO,
        help="enforce containers' memory limits with a cgroup each (the kernel), a watchdog, "
        "or the first that works (default %(default)s)",
    )
    add("--healthz-port", type=int, help="port of /healthz on 127.0.0.1")
    args = parser.parse_args(argv)
    return AgentSettings(
        node_name=args.node_name,
        state_dir=args.state_dir.resolve(),
        kubeconfig=args.kubeconfig,
        cpu=args.cpu,
        memory=args.memory,
        pods=args.pods,
        node_group=args.node_group,
        pod_cidr=args.pod_cidr,
        network=ClusterNetwork.from_json(args.network.read_text()) if args.network else None,
        image_tables=tuple(path.resolve() for path in args.images),
        backoff=BackOffPolicy(args.backoff_base, args.backoff_max, args.backoff_reset),
        pass_env=tuple(args.pass_env),
        stop_grace=args.stop_grace,
        memory_limits=args.memory_limits,
        healthz_port=args.healthz_port,
    )


async def _healthz(agent: Agent, port: int) -> web.AppRunner:
    async def healthz(_request: web.Request) -> web.Response:
        ok = agent.ready.is_set()
        return web.Response(status=200 if ok else 503, text="ok" if ok else "starting")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST_IP, port).start()
    return runner


async def serve(settings: AgentSettings) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kube = await Kube.connect(settings.kubeconfig)
    try:
        async with aiohttp.ClientSession() as session:
            try:
                agent = Agent(kube, settings, session)
            except CgroupError as error:
                # The reason is the whole story; a traceback would only bury it.
                log.error("memory limits cannot be enforced by the kernel: %s", error)  # noqa: TRY400
                return 1
            health = await _healthz(agent, settings.healthz_port) if settings.healthz_port else None
            running = asyncio.create_task(agent.run())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            code = 0
            if running.done():
                # Registration failed or the watch gave up: stop what runs and report it.
                log.error("the agent stopped on its own: %r", running.exception())
                code = 1
            running.cancel()
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            log.info("stopping node %s", settings.node_name)
            await agent.stop()
            if health is not None:
                await health.cleanup()
            return code
    finally:
        await kube.close()


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(serve(settings))
