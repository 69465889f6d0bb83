"""Bringing a local cluster up and down, and what a client needs to reach it."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry_local import network, processes
from ferry_local.agent.cgroups import clear_recorded
from ferry_local.layout import ClusterLayout
from ferry_local.netns import NetworkUnavailableError
from ferry_local.toolchain import Progress, ensure_built
from ferry_local.wait import WaitTimeoutError, wait_until

UP_TIMEOUT = 240.0
DOWN_TIMEOUT = 60.0


class LocalClusterError(RuntimeError):
    """The cluster did not come up or go down; the message says where the logs are."""


@dataclass(frozen=True)
class ClusterInfo:
    layout: ClusterLayout
    state: dict[str, Any]

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def bin_dir(self) -> Path:
        return Path(self.state["bin"])

    @property
    def apiserver(self) -> str:
        return str(self.state["apiserver"])

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def env(self) -> dict[str, str]:
        """KUBECONFIG, the binaries, and AWS at the local moto server when one runs."""
        aws: dict[str, str] = self.state.get("aws") or {}
        return {"KUBECONFIG": str(self.kubeconfig), "FERRY_BIN": str(self.bin_dir), **aws}

    def exports(self) -> str:
        lines = [f"export {name}={shlex.quote(value)}" for name, value in self.env().items()]
        lines.append(f'export PATH={shlex.quote(str(self.bin_dir))}:"$PATH"')
        return "\n".join(lines)


def read_state(layout: ClusterLayout) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(layout.state_file.read_text())
    except (OSError, ValueError):
        return None
    return state


def running(layout: ClusterLayout) -> ClusterInfo | None:
    state = read_state(layout)
    if state and state.get("ready") and processes.alive(int(state["supervisor"])):
        return ClusterInfo(layout, state)
    return None


def _marker(layout: ClusterLayout) -> str:
    # Every process of a cluster names a file under its folder; the slash keeps "ferry" from
    # matching "ferry2".
    return f"{layout.root}/"


def up(
    layout: ClusterLayout,
    *,
    nodes: int = 3,
    operator: bool = False,
    tie_to_parent: bool = False,
    progress: Progress | None = None,
    timeout: float = UP_TIMEOUT,
) -> ClusterInfo:
    """Start the cluster (building the binaries first if needed) and wait until it is ready.

    With `operator`, also moto's server for AWS, the CRD and Ferry's operator. With
    `tie_to_parent` the cluster dies with the calling process, as test fixtures want.
    """
    if (info := running(layout)) is not None:
        return info
    if operator:
        try:
            network.check_supported()
        except NetworkUnavailableError as error:
            raise LocalClusterError(str(error)) from None
    ensure_built(progress)
    _stop_strays(layout)
    shutil.rmtree(layout.run, ignore_errors=True)
    layout.logs.mkdir(parents=True)
    argv = [
        sys.executable,
        "-m",
        "ferry_local.supervisor",
        str(layout.state_file),
        f"--nodes={nodes}",
        *(["--operator"] if operator else []),
    ]
    supervisor = processes.spawn(argv, layout.supervisor_log, tie_to_parent=tie_to_parent)

    def outcome() -> dict[str, Any] | None:
        state = read_state(layout)
        if state and (state.get("ready") or state.get("error")):
            return state
        if supervisor.poll() is not None:
            return {"error": f"the supervisor exited with code {supervisor.returncode}"}
        return None

    try:
        state = wait_until(
            outcome, timeout=timeout, what=f"local cluster {layout.name}", interval=0.1
        )
    except WaitTimeoutError as error:
        down(layout)
        raise LocalClusterError(f"{error}; logs are in {layout.logs}") from None
    if state.get("error"):
        down(layout)
        raise LocalClusterError(
            f"local cluster {layout.name} did not start: {state['error']}\n"
            f"logs are in {layout.logs}"
        )
    return ClusterInfo(layout, state)


def down(layout: ClusterLayout, timeout: float = DOWN_TIMEOUT) -> bool:
    """Stop everything of the cluster; True if something was running. Logs stay for reading."""
    state = read_state(layout)
    was_running = False
    if state and processes.alive(int(state["supervisor"])):
        was_running = True
        pid = int(state["supervisor"])
        processes.kill_all([pid], grace=timeout)
    was_running = _stop_strays(layout) or was_running
    layout.state_file.unlink(missing_ok=True)
    return was_running


def _stop_strays(layout: ClusterLayout) -> bool:
    strays = processes.processes_mentioning(_marker(layout))
    processes.kill_all(strays, grace=10.0)
    # A node agent killed outright leaves its containers' cgroups (and whatever a container
    # started that is still in one).
    clear_recorded(layout.agent_state)
    # Network namespaces, the link, its routes and the host's nftables table outlive every
    # process; the record in run/ names them.
    if failed := network.remove(layout.run):
        raise LocalClusterError(
            f"local cluster {layout.name}: not all of its network was removed:\n"
            + "\n".join(failed)
        )
    return bool(strays)


def status(layout: ClusterLayout) -> dict[str, Any]:
    """The cluster's state with each component's liveness, resident memory and restarts."""
    state = read_state(layout) or {}
    report: dict[str, Any] = {
        "name": layout.name,
        "running": running(layout) is not None,
        "kubeconfig": str(layout.kubeconfig),
        "logs": str(layout.logs),
        "error": state.get("error"),
        "components": {},
    }
    for name, component in state.get("components", {}).items():
        pid = int(component["pid"])
        report["components"][name] = {
            "pid": pid,
            "alive": processes.alive(pid),
            "rss_bytes": processes.rss_bytes(pid),
            "log": component["log"],
            "state": component.get("state"),
            "restarts": component.get("restarts", 0),
            "lastExit": component.get("lastExit"),
        }
    return report


@contextmanager
def local_cluster(
    layout: ClusterLayout, *, nodes: int = 3, operator: bool = False
) -> Iterator[ClusterInfo]:
    """A cluster for the length of a `with` block, tied to this process."""
    info = up(layout, nodes=nodes, operator=operator, tie_to_parent=True)
    try:
        yield info
    finally:
        down(layout)
