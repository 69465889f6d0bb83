"""`ferry local`: the local environment's control plane.

ferry-local contributes the command to `ferry` through the entry-point group `ferry.commands`
(local/pyproject.toml), so the product's CLI reaches it without importing it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from ferry.cli.progress import ProgressBar
from ferry_local import cluster, demo
from ferry_local.layout import DEFAULT_CLUSTER, ClusterLayout
from ferry_local.toolchain import ToolchainError, ensure_built


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = subparsers.add_parser("local", help="run Ferry's local environment")
    commands = local.add_subparsers(dest="local_command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument(
            "--name", default=DEFAULT_CLUSTER, help="cluster name (default: %(default)s)"
        )
        return parser

    build = commands.add_parser("build", help="build the control-plane binaries (once per version)")
    build.set_defaults(run=_build)
    up = command("up", "build (first time) and start the local control plane")
    up.add_argument(
        "--nodes", type=int, default=3, help="simulated kwok nodes (default: %(default)s)"
    )
    up.add_argument(
        "--no-operator",
        dest="operator",
        action="store_false",
        help="only the control plane: no moto server, CRD or operator",
    )
    up.set_defaults(run=_up)
    command(
        "demo", "bring the local environment up and serve the iris example for real"
    ).set_defaults(run=_demo)
    command("down", "stop the local control plane and everything it started").set_defaults(
        run=_down
    )
    command("env", 'print shell exports: eval "$(ferry local env)"').set_defaults(run=_env)
    status = command("status", "show the components, their memory and logs")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_status)


def _build(_args: argparse.Namespace) -> int:
    try:
        toolchain = ensure_built(ProgressBar("building control plane"))
    except ToolchainError as error:
        print(f"ferry local build: {error}", file=sys.stderr)
        return 1
    pins = ", ".join(f"{name} {version}" for name, version in toolchain.versions.items())
    print(f"binaries ready in {toolchain.bin_dir} ({pins})", file=sys.stderr)
    return 0


def _up(args: argparse.Namespace) -> int:
    layout = ClusterLayout.named(args.name)
    try:
        info = cluster.up(
            layout,
            nodes=args.nodes,
            operator=args.operator,
            progress=ProgressBar("building control plane"),
        )
    except (cluster.LocalClusterError, ToolchainError) as error:
        print(f"ferry local up: {error}", file=sys.stderr)
        return 1
    seconds = info.state.get("ready_seconds")
    print(
        f"local cluster {layout.name!r} is up at {info.apiserver}"
        + (f" (ready in {seconds}s)" if seconds else " (already running)"),
        file=sys.stderr,
    )
    print(f'use it with: eval "$(ferry local env --name {layout.name})"', file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    layout = ClusterLayout.named(args.name)

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        info = cluster.up(layout, operator=True, progress=ProgressBar("building control plane"))
        say(f"local cluster {layout.name!r} is up at {info.apiserver}")
        demo.publish_model(info, say)
        demo.deploy(info, say)
        predictions = asyncio.run(demo.predict(info, say))
    except (cluster.LocalClusterError, ToolchainError, demo.DemoError) as error:
        print(f"ferry local demo: {error}", file=sys.stderr)
        return 1
    for sample, prediction in zip(demo.SAMPLES, predictions, strict=True):
        say(f"  {sample} -> {prediction['class']:<10} {prediction['probabilities']}")
    say(
        f'the cluster keeps running: eval "$(ferry local env --name {layout.name})", '
        f"then kubectl get rtapi; stop it with ferry local down --name {layout.name}"
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    layout = ClusterLayout.named(args.name)
    stopped = cluster.down(layout)
    print(
        f"local cluster {layout.name!r} " + ("stopped" if stopped else "was not running"),
        file=sys.stderr,
    )
    return 0


def _env(args: argparse.Namespace) -> int:
    info = cluster.running(ClusterLayout.named(args.name))
    if info is None:
        print(
            f"ferry local env: cluster {args.name!r} is not running; start it with "
            f"`ferry local up --name {args.name}`",
            file=sys.stderr,
        )
        return 1
    print(info.exports())
    return 0


def _status(args: argparse.Namespace) -> int:
    report = cluster.status(ClusterLayout.named(args.name))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if report["running"] else 1
    print(f"cluster {report['name']}: {'running' if report['running'] else 'not running'}")
    if report["error"]:
        print(f"error: {report['error']}")
    total = 0
    for name, component in report["components"].items():
        total += component["rss_bytes"]
        state = "up" if component["alive"] else "down"
        if component["state"] == "backing-off":
            state = "back-off"
        print(
            f"  {name:<24} {state:<8} pid {component['pid']:<8} "
            f"{component['rss_bytes'] / 2**20:7.1f} MiB  {_restarts(component):<40} "
            f"{component['log']}"
        )
    if report["components"]:
        print(f"  {'total':<24} {'':<8} {'':<12} {total / 2**20:7.1f} MiB")
    return 0 if report["running"] else 1


def _restarts(component: dict[str, object]) -> str:
    """ "restarts 2, last exit 137 (SIGKILL) at 12:03:04", or "no restarts"."""
    last = component.get("lastExit")
    if not isinstance(last, dict):
        return f"restarts {component['restarts']}" if component.get("restarts") else "no restarts"
    how = f"{last['exitCode']}" + (f" ({last['signal']})" if last.get("signal") else "")
    at = str(last["at"]).split("T")[-1].split("+")[0]
    return f"restarts {component['restarts']}, last exit {how} at {at}"
