"""Containers' memory limits, enforced as on a kubelet's node: over its limit a container is
killed, reported `OOMKilled` (exit code 137), and restarted per its pod's restartPolicy.

Two ways, chosen once at agent start (`--memory-limits`, default auto):
- the kernel: a memory cgroup per container run (cgroups.py), v1 or v2, whichever this machine
  lets the agent make. The limit covers everything the container's processes charge (resident
  memory and the page cache they fill), and the kernel's OOM killer acts the moment it is hit.
- a watchdog, where no memory cgroup can be made (a v2 cgroup shared with other processes, a
  read-only /sys/fs/cgroup, no permission): every `interval` seconds it sums the resident
  memory of each limited container's processes (its session: what its leader started, unless
  they called setsid) and SIGKILLs the session of one over its limit. It is weaker than the
  kernel: it counts resident memory only, and a process can overshoot for up to one interval.
The Node says which (condition KernelMemoryLimits), and with the watchdog the agent logs a
warning and posts a Warning Event on the Node at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ferry.capacity.quantity import QuantityError, whole
from ferry_local.agent.cgroups import CgroupError, CgroupRoot, ContainerCgroup, discover
from ferry_local.agent.startable import CreateContainerError

log = logging.getLogger("ferry_local.agent")

AUTO, CGROUP, WATCHDOG = "auto", "cgroup", "watchdog"
MODES = (AUTO, CGROUP, WATCHDOG)
CONDITION = "KernelMemoryLimits"
_PAGE = os.sysconf("SC_PAGE_SIZE")
_STAT_FIELDS = 22


def memory_limit(container: Mapping[str, Any]) -> int | None:
    """resources.limits.memory in bytes; None when the container sets none."""
    raw = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if raw is None:
        return None
    try:
        limit = whole(raw)
    except QuantityError as error:
        raise CreateContainerError(f"memory limit: {error}") from None
    if limit <= 0:
        raise CreateContainerError(f"memory limit {raw!r} leaves the container no memory")
    return limit


class Guard(Protocol):
    """One run of one container under its memory limit."""

    def enter(self) -> None:
        """In the child between fork and exec (no allocation, no lock)."""

    def started(self, pid: int) -> None: ...

    def oom_killed(self) -> bool:
        """Whether the run was killed for its memory: asked once it ended, before close."""

    def how(self) -> str:
        """Who killed it, for the Event: "the kernel (memory cgroup v1)", ..."""

    async def close(self) -> None: ...


class Enforcement(Protocol):
    kernel: bool
    reason: str
    message: str

    def guard(self, name: str, limit: int | None) -> Guard | None: ...

    async def run(self) -> None:
        """What has to run alongside the agent (the watchdog's rounds); returns when none."""

    def close(self) -> None: ...


@dataclass
class CgroupGuard:
    cgroup: ContainerCgroup
    version: str

    def enter(self) -> None:
        self.cgroup.enter()

    def started(self, pid: int) -> None:
        pass

    def oom_killed(self) -> bool:
        return self.cgroup.oom_killed()

    def how(self) -> str:
        return f"the kernel (memory cgroup {self.version})"

    async def close(self) -> None:
        await self.cgroup.close()


class KernelLimits:
    """Every container in a cgroup of its own (so it can be killed whole), with its limit."""

    kernel = True

    def __init__(self, root: CgroupRoot, state_dir: Path) -> None:
        self.root = root
        self.state_dir = state_dir
        self.reason = f"Cgroup{root.version.upper()}"
        self.message = f"container memory limits are enforced by the kernel: {root.description}"

    def guard(self, name: str, limit: int | None) -> Guard:
        return CgroupGuard(self.root.container(name, limit), self.root.version)

    async def run(self) -> None:
        return

    def close(self) -> None:
        self.root.close(self.state_dir)


@dataclass
class Watched:
    watchdog: Watchdog
    limit: int
    session: int = 0
    killed_at: int = 0
    """Resident bytes when the watchdog killed it; 0 while it has not."""

    def enter(self) -> None:
        pass

    def started(self, pid: int) -> None:
        # A container's leader starts a session of its own (processes.spawn): its id is the pid.
        self.session = pid
        self.watchdog.watched[pid] = self

    def oom_killed(self) -> bool:
        return self.killed_at > 0

    def how(self) -> str:
        return f"the node agent's watchdog (resident memory {self.killed_at / 2**20:.0f}Mi)"

    async def close(self) -> None:
        self.watchdog.watched.pop(self.session, None)


def session_usage(proc: Path, sessions: set[int]) -> dict[int, tuple[int, list[int]]]:
    """Resident bytes and pids of each of `sessions`, from /proc/<pid>/stat."""
    usage: dict[int, tuple[int, list[int]]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) < _STAT_FIELDS:
            continue
        # After the command: state, ppid, pgrp, session, ...; rss (pages) is the 22nd.
        session, rss = int(fields[3]), int(fields[21])
        if session in sessions:
            total, pids = usage.get(session, (0, []))
            usage[session] = (total + rss * _PAGE, [*pids, int(entry.name)])
    return usage


class Watchdog:
    """Kills a container whose processes' resident memory passes its limit."""

    kernel = False
    reason = "Watchdog"

    def __init__(self, why: str, interval: float, proc: Path = Path("/proc")) -> None:
        self.interval = interval
        self.proc = proc
        self.watched: dict[int, Watched] = {}
        self.message = (
            f"no memory cgroup can be made ({why}): a watchdog kills a container whose "
            f"processes' resident memory passes its limit, checked every {interval:g} s"
        )

    def guard(self, name: str, limit: int | None) -> Guard | None:
        return None if limit is None else Watched(self, limit)

    def check(self) -> None:
        usage = session_usage(self.proc, set(self.watched))
        for session, (resident, pids) in usage.items():
            watched = self.watched.get(session)
            if watched is None or resident <= watched.limit or watched.killed_at:
                continue
            watched.killed_at = resident
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.watched:
                continue
            try:
                self.check()
            except Exception:
                # A round that fails must not end the rounds: limits would go unwatched.
                log.exception("memory watchdog round failed")

    def close(self) -> None:
        self.watched.clear()


def choose(mode: str, node_name: str, state_dir: Path, interval: float) -> Enforcement:
    """The kernel's limits where a memory cgroup can be made (always, with `cgroup`: CgroupError
    otherwise), else the watchdog; logged either way."""
    if mode == WATCHDOG:
        chosen: Enforcement = Watchdog("the agent was told to use its watchdog", interval)
    else:
        try:
            chosen = KernelLimits(discover(node_name, state_dir), state_dir)
        except CgroupError as error:
            if mode == CGROUP:
                raise
            chosen = Watchdog(str(error), interval)
    if chosen.kernel:
        log.info("%s", chosen.message)
    else:
        log.warning("memory limits: %s", chosen.message)
    return chosen
