"""The process that owns a running local cluster.

`ferry local up` starts it detached; the test fixtures start it tied to pytest (if pytest dies,
the kernel kills the supervisor, and the supervisor's children with it). It starts the
components in order, each once the previous one is healthy, records what it started in the state
file, then watches them. SIGTERM or SIGINT stops everything in reverse order; a component that
dies on its own stops the cluster too, with the reason in the state file.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from ferry.local import components, crds, processes
from ferry.local.health import client_tls, healthy, loopback_tls
from ferry.local.kubeconfig import kubeconfig, write_kubeconfig
from ferry.local.layout import ClusterLayout
from ferry.local.nodes import NODE_KIND_LABEL, kwok_nodes
from ferry.local.pki import CLIENTS, ensure_credentials
from ferry.local.toolchain import locate
from ferry.local.wait import wait_until
from ferry.spec.schema import ADMISSION_FILE, CRD_FILE

START_TIMEOUT = 90.0
STOP_GRACE = 10.0


class Stopped(Exception):  # noqa: N818 - a request, not a failure
    """A stop signal arrived."""


class ComponentFailedError(RuntimeError):
    pass


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Supervisor:
    def __init__(self, layout: ClusterLayout, nodes: int, with_operator: bool) -> None:
        self.layout = layout
        self.nodes = nodes
        self.with_operator = with_operator
        self.started = time.monotonic()
        self.running: list[tuple[components.Component, subprocess.Popen[bytes]]] = []
        self.state: dict[str, Any] = {
            "supervisor": os.getpid(),
            "ready": False,
            "error": None,
            "started": datetime.datetime.now(datetime.UTC).isoformat(),
            "kubeconfig": str(layout.kubeconfig),
            "logs": str(layout.logs),
            "components": {},
        }

    def write_state(self, **changes: Any) -> None:
        self.state.update(changes)
        partial = self.layout.state_file.with_suffix(".tmp")
        partial.write_text(json.dumps(self.state, indent=2))
        partial.replace(self.layout.state_file)

    def start(self) -> None:
        toolchain = locate()
        creds = ensure_credentials(self.layout.pki)
        plan = components.Plan(
            self.layout, toolchain, creds, components.Ports.free(), self.with_operator
        )
        for client in CLIENTS:
            path = self.layout.kubeconfig if client == "admin" else plan.kubeconfig_for(client)
            write_kubeconfig(path, kubeconfig(plan.apiserver_url, self.layout.name, creds, client))
        self.write_state(
            apiserver=plan.apiserver_url, bin=str(toolchain.bin_dir), versions=toolchain.versions
        )
        for component in components.control_plane(plan):
            tls = client_tls(creds) if component.needs_client_cert else loopback_tls()
            self._start(component, lambda c=component, t=tls: healthy(c.health_url, t))
        self._create_nodes(plan)
        if plan.with_operator:
            self._start_operator(plan)
        self.write_state(ready=True, ready_seconds=round(time.monotonic() - self.started, 2))

    def _start_operator(self, plan: components.Plan) -> None:
        """moto for AWS, the CRD, the node agent, then the operator, cluster-wide."""
        moto = components.moto(plan)
        self._start(moto, lambda: healthy(moto.health_url))
        self.write_state(aws=components.aws_env(plan))
        spec = resources.files("ferry.spec")
        with (
            resources.as_file(spec.joinpath(CRD_FILE)) as crd,
            resources.as_file(spec.joinpath(ADMISSION_FILE)) as policy,
        ):
            crds.install(functools.partial(self._kubectl, plan), [crd, policy])
        for component in (components.node_agent(plan), components.operator(plan)):
            self._start(component, lambda c=component: healthy(c.health_url))

    def _start(self, component: components.Component, check: Any) -> None:
        log = self.layout.logs / f"{component.name}.log"
        env = dict(component.env) if component.env is not None else None
        process = processes.spawn(component.argv, log, env=env)
        self.running.append((component, process))
        self.state["components"][component.name] = {"pid": process.pid, "log": str(log)}
        self.write_state()

        def settled() -> bool:
            return process.poll() is not None or bool(check())

        try:
            wait_until(
                settled,
                timeout=START_TIMEOUT,
                what=f"{component.name} to be healthy",
                interval=0.05,
            )
        except TimeoutError as error:
            raise ComponentFailedError(f"{error}; see {log}:\n{_log_tail(log)}") from None
        if process.poll() is not None:
            raise ComponentFailedError(
                f"{component.name} exited with code {process.returncode} while starting; "
                f"its log {log} ends with:\n{_log_tail(log)}"
            )

    def _kubectl(self, plan: components.Plan, *args: str, stdin: str | None = None) -> str:
        command = [
            str(plan.toolchain.binary("kubectl")),
            f"--kubeconfig={self.layout.kubeconfig}",
            *args,
        ]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ComponentFailedError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _create_nodes(self, plan: components.Plan) -> None:
        if self.nodes == 0:
            return
        manifest = yaml.safe_dump_all(kwok_nodes(self.nodes))
        self._kubectl(
            plan, "apply", "--server-side", "--field-manager=ferry-local", "-f", "-", stdin=manifest
        )
        self._kubectl(
            plan,
            "wait",
            "--for=condition=Ready",
            "node",
            "-l",
            f"{NODE_KIND_LABEL}=kwok",
            f"--timeout={int(START_TIMEOUT)}s",
        )

    def watch(self) -> None:
        while True:
            for component, process in self.running:
                if process.poll() is not None:
                    log = self.state["components"][component.name]["log"]
                    raise ComponentFailedError(
                        f"{component.name} exited with code {process.returncode}; see {log}"
                    )
            time.sleep(0.5)

    def stop(self) -> None:
        for _component, process in reversed(self.running):
            processes.stop_group(process, STOP_GRACE)


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferry.local.supervisor")
    parser.add_argument("state_file", type=Path, help="the cluster's run/state.json")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--operator", action="store_true", help="also moto, the CRD, the operator")
    args = parser.parse_args(argv)
    layout = ClusterLayout(args.state_file.parent.parent)
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    supervisor = Supervisor(layout, args.nodes, args.operator)
    code = 0
    try:
        supervisor.write_state()
        supervisor.start()
        print(f"ready in {supervisor.state['ready_seconds']}s", flush=True)
        supervisor.watch()
    except Stopped as stop:
        print(f"stopping on {stop}", flush=True)
    except Exception as error:  # noqa: BLE001 - recorded for `up` and `status` to show
        supervisor.write_state(error=str(error))
        print(f"failed: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop()
        supervisor.write_state(ready=False, stopped=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
