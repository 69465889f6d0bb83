"""The process that owns a running local cluster.

`ferry local up` starts it detached; the test fixtures start it tied to pytest (if pytest dies,
the kernel kills the supervisor, and the supervisor's children with it). It starts the
components in order, each once the previous one is healthy, records what it started in the state
file, then watches them. A component that fails to start fails `up`; one that exits later is
started again with the same command line and ports, after a back-off (RESTART_BACKOFF), while
everything else keeps running: the restarts, the last exit code and its time are in the state
file, for `ferry local status`. Only SIGTERM or SIGINT (`ferry local down`) stops everything, in
reverse order, a back-off under way included.
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
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from ferry.spec.schema import ADMISSION_FILE, CRD_FILE
from ferry_local import components, crds, dns, gateway, netns, network, processes
from ferry_local.agent.backoff import BackOff, BackOffPolicy
from ferry_local.health import client_tls, healthy, loopback_tls
from ferry_local.kubeconfig import kubeconfig, write_kubeconfig
from ferry_local.layout import ClusterLayout
from ferry_local.nodes import NODE_KIND_LABEL, kwok_nodes
from ferry_local.pki import CLIENTS, ensure_credentials
from ferry_local.toolchain import locate
from ferry_local.wait import wait_until

START_TIMEOUT = 90.0
STOP_GRACE = 10.0
# The restart back-off of a component that exits: at once, then 1 s doubling to 30 s, back to
# "at once" after a minute up. kubelet's shape (immediate, then exponential with a cap, reset by
# a long enough run), so a crash loop costs little, but on a scale that suits one machine's dev
# cluster: kubelet's 10 s to 5 min would keep a crashed operator away for minutes, and
# systemd's default (100 ms, then giving up after 5 starts in 10 s) would either spin or leave it
# down for good, with nothing else to start it.
RESTART_BACKOFF = BackOffPolicy(base=1.0, cap=30.0, reset_after=60.0)
WATCH_INTERVAL = 0.1
RUNNING, BACKING_OFF = "running", "backing-off"


class Stopped(Exception):  # noqa: N818 - a request, not a failure
    """A stop signal arrived."""


class ComponentFailedError(RuntimeError):
    pass


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def exit_record(code: int, at: str) -> dict[str, Any]:
    """A Popen return code as the state file shows it: a shell's exit code (128 + n for signal n)
    and the signal's name."""
    if code < 0:
        return {"exitCode": 128 - code, "signal": signal.Signals(-code).name, "at": at}
    return {"exitCode": code, "signal": None, "at": at}


class Supervised:
    """One component: its process while it runs, its restarts and back-off when it does not."""

    def __init__(self, component: components.Component, log: Path) -> None:
        self.component = component
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.restarts = 0
        self.restart_at = 0.0
        self.backoff = BackOff(RESTART_BACKOFF)

    def spawn(self) -> subprocess.Popen[bytes]:
        env = dict(self.component.env) if self.component.env is not None else None
        namespace = netns.opened(self.component.netns) if self.component.netns else None
        try:
            self.process = processes.spawn(
                self.component.argv,
                self.log,
                env=env,
                before_exec=netns.entering(namespace) if namespace is not None else None,
            )
        finally:
            if namespace is not None:
                os.close(namespace)
        self.started = time.monotonic()
        return self.process


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
        self.supervised: list[Supervised] = []
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
        ports = components.Ports.free()
        cluster_network = None
        if self.with_operator:
            # The node agent's pods get namespaces on it; recorded in run/ for `down`.
            cluster_network = network.create(
                self.layout.root, self.layout.run, (ports.apiserver, ports.moto)
            )
            self.write_state(network=asdict(cluster_network))
        serving = [cluster_network.host_address] if cluster_network is not None else []
        creds = ensure_credentials(self.layout.pki, serving)
        plan = components.Plan(
            self.layout, toolchain, creds, ports, self.with_operator, cluster_network
        )
        for client in CLIENTS:
            path = self.layout.kubeconfig if client == "admin" else plan.kubeconfig_for(client)
            server = plan.apiserver_url_for(client)
            write_kubeconfig(path, kubeconfig(server, self.layout.name, creds, client))
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
        started = [components.node_agent(plan)]
        if plan.network is not None:
            started.append(components.kube_proxy(plan, plan.network))
            started.append(self._cluster_dns(plan, plan.network))
            started.append(self._gateway(plan, plan.network))
        started.append(components.operator(plan))
        for component in started:
            self._start(component, lambda c=component: healthy(c.health_url))

    def _cluster_dns(
        self, plan: components.Plan, cluster_network: network.ClusterNetwork
    ) -> components.Component:
        """CoreDNS's Corefile, its RBAC and the kube-dns Service; CoreDNS itself to start."""
        kubeconfig_file = plan.kubeconfig_for("coredns")
        components.corefile(plan).write_text(dns.corefile(cluster_network, kubeconfig_file))
        manifest = yaml.safe_dump_all(dns.manifests(cluster_network))
        self._kubectl(
            plan, "apply", "--server-side", "--field-manager=ferry-local", "-f", "-", stdin=manifest
        )
        return components.coredns(plan, cluster_network)

    def _gateway(
        self, plan: components.Plan, cluster_network: network.ClusterNetwork
    ) -> components.Component:
        """Gateway API's CRDs and Envoy Gateway's, its RBAC, the GatewayClass and Gateway, its
        certificates and configuration; Envoy Gateway itself to start."""
        crds.install_crds(functools.partial(self._kubectl, plan), plan.toolchain.gateway_crds)
        manifest = yaml.safe_dump_all(gateway.manifests(cluster_network))
        self._kubectl(
            plan, "apply", "--server-side", "--field-manager=ferry-local", "-f", "-", stdin=manifest
        )
        folders = components.gateway_folders(plan)
        gateway.prepare(folders, plan.toolchain.binary("envoy-gateway"))
        folders.config_file.write_text(yaml.safe_dump(gateway.config(folders)))
        return components.envoy_gateway(plan, cluster_network)

    def _start(self, component: components.Component, check: Any) -> None:
        log = self.layout.logs / f"{component.name}.log"
        slot = Supervised(component, log)
        self.supervised.append(slot)
        process = slot.spawn()
        self.state["components"][component.name] = {
            "pid": process.pid,
            "log": str(log),
            "health": component.health_url,
            "state": RUNNING,
            "restarts": 0,
            "lastExit": None,
        }
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
        """Restart what exits, after its back-off, until a stop signal."""
        while True:
            for slot in self.supervised:
                if slot.process is not None and slot.process.poll() is not None:
                    self._exited(slot, slot.process.returncode)
                elif slot.process is None and time.monotonic() >= slot.restart_at:
                    self._restart(slot)
            time.sleep(WATCH_INTERVAL)

    def _exited(self, slot: Supervised, code: int) -> None:
        ran = time.monotonic() - slot.started
        delay = slot.backoff.next_delay(ran)
        if slot.process is not None:
            # What the component started in its group goes with it, as at a stop.
            processes.signal_group(slot.process.pid, signal.SIGKILL)
        slot.process = None
        slot.restart_at = time.monotonic() + delay
        last = exit_record(code, _utc_now())
        name = slot.component.name
        self.state["components"][name].update(state=BACKING_OFF, lastExit=last)
        self.write_state()
        print(
            f"{name} exited with code {last['exitCode']}"
            + (f" ({last['signal']})" if last["signal"] else "")
            + f" after {ran:.1f}s; starting it again in {delay:g}s; see {slot.log}",
            flush=True,
        )

    def _restart(self, slot: Supervised) -> None:
        process = slot.spawn()
        slot.restarts += 1
        self.state["components"][slot.component.name].update(
            pid=process.pid, state=RUNNING, restarts=slot.restarts
        )
        self.write_state()

    def stop(self) -> None:
        for slot in reversed(self.supervised):
            if slot.process is not None:
                processes.stop_group(slot.process, STOP_GRACE)


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferry_local.supervisor")
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
