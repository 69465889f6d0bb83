"""Memory cgroups for containers, under the agent's own cgroup: the kernel enforces the limits.

At start the agent finds its own memory cgroup (/proc/self/cgroup, mapped to a folder through
/proc/self/mountinfo) and makes a folder for its containers in it, named for its node and its
state folder (so an agent run again on the same node finds its predecessor's, and two clusters
side by side never share one). Whatever an earlier agent of that folder left there is killed and
removed first: a container's own children outlive an agent killed outright, its cgroup does not
let them hide. Then one cgroup per container run, with the limit, which the child process joins
between fork and exec (it writes 0, "myself", into cgroup.procs), so nothing it starts escapes;
on exit, what is left in it is killed and the cgroup removed.

- cgroup v1 (a `memory` hierarchy): memory.limit_in_bytes (and memory.memsw.limit_in_bytes where
  swap is accounted, so swap is no way around the limit); an OOM kill shows in
  memory.oom_control's `oom_kill` counter.
- cgroup v2 (unified): memory.max, memory.swap.max 0 and memory.oom.group 1 (the kubelet's
  setting: an OOM kill takes the whole container); OOM kills show in memory.events `oom_kill`.
  A v2 cgroup that holds processes cannot hand controllers to child cgroups, so the agent needs a
  cgroup of its own: if it is alone in its cgroup it moves itself into a leaf `agent` and
  enables the memory controller for its containers; if other processes share it, no cgroup can
  be made (`systemd-run --scope -p Delegate=yes` gives the agent a cgroup of its own).

Where no cgroup can be made, `discover` says why and the agent falls back to its watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

V1, V2 = "v1", "v2"
# In the agent's state folder: where its containers' cgroups are, for whoever cleans up after an
# agent that could not (`ferry local down` and `up`).
RECORD = "memory-cgroup"
# Larger limits are no limit: the kernel's own "unlimited" is written instead.
_UNLIMITED_FROM = 2**62
_PROBE_LIMIT = 64 * 2**20
_CLOSE_ATTEMPTS = 100
_CLOSE_PAUSE = 0.05


class CgroupError(OSError):
    """No memory cgroup can be made for containers; the message says why."""


@dataclass(frozen=True)
class Mount:
    root: PurePosixPath
    """The part of the hierarchy this mount shows (/ unless the mount is of a sub-tree)."""
    point: Path


def mounts(mountinfo: str) -> dict[str, Mount]:
    """The cgroup mounts of /proc/self/mountinfo: "memory" for a v1 memory hierarchy, "unified"
    for cgroup v2."""
    found: dict[str, Mount] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        fstype, options = fields[dash + 1], fields[dash + 3] if len(fields) > dash + 3 else ""
        mount = Mount(PurePosixPath(fields[3]), Path(_unescape(fields[4])))
        if fstype == "cgroup2":
            found.setdefault("unified", mount)
        elif fstype == "cgroup" and "memory" in options.split(","):
            found.setdefault("memory", mount)
    return found


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes.
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, char)
    return field


def own_cgroups(proc_cgroup: str) -> dict[str, PurePosixPath]:
    """This process's cgroup paths from /proc/self/cgroup: "memory" (v1) and "unified" (v2)."""
    found: dict[str, PurePosixPath] = {}
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            found["unified"] = PurePosixPath(path)
        elif "memory" in controllers.split(","):
            found["memory"] = PurePosixPath(path)
    return found


def folder(mount: Mount, path: PurePosixPath) -> Path:
    """Where the cgroup at `path` is in the mounted file system."""
    try:
        relative = path.relative_to(mount.root)
    except ValueError:
        raise CgroupError(f"cgroup {path} is not under the mount of {mount.root}") from None
    return mount.point / relative


def base_name(node_name: str, state_dir: Path) -> str:
    return f"ferry-agent-{node_name}-{zlib.crc32(str(state_dir).encode()):08x}"


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as error:
        raise CgroupError(f"cannot write {value!r} to {path}: {error.strerror or error}") from None


def _pids(group: Path) -> list[int]:
    try:
        return [int(line) for line in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _kill_all(group: Path) -> None:
    kill = group / "cgroup.kill"
    if kill.exists():
        with contextlib.suppress(OSError):
            kill.write_text("1")
            return
    for pid in _pids(group):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _removed(group: Path) -> bool:
    """One attempt: kill what is in the cgroup, then remove it; True once it is gone."""
    _kill_all(group)
    try:
        group.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False  # busy until the killed processes have exited
    return True


def remove_now(group: Path) -> bool:
    """Kill what is in the cgroup and remove it, waiting briefly; False if it is still there."""
    for _ in range(_CLOSE_ATTEMPTS):
        if _removed(group):
            return True
        time.sleep(_CLOSE_PAUSE)
    return False


@dataclass(frozen=True)
class CgroupRoot:
    """The folder the containers' cgroups are made in, and which cgroup version it is."""

    version: str
    base: Path

    @property
    def description(self) -> str:
        return f"a memory cgroup ({self.version}) per container under {self.base}"

    def clear_stale(self) -> None:
        """Kill and remove what an earlier agent of this node left behind."""
        for child in self.base.iterdir():
            if child.is_dir():
                remove_now(child)

    def container(self, name: str, limit: int | None) -> ContainerCgroup:
        return ContainerCgroup(self.version, self.base / name, limit)

    def close(self, state_dir: Path) -> None:
        with contextlib.suppress(OSError):
            self.base.rmdir()
            (state_dir / RECORD).unlink(missing_ok=True)


def clear_recorded(state_dir: Path) -> None:
    """Kill and remove the cgroups an agent of `state_dir` left (it was killed outright)."""
    try:
        base = Path((state_dir / RECORD).read_text().strip())
    except OSError:
        return
    with contextlib.suppress(OSError):
        if base.is_dir():
            CgroupRoot(V1, base).clear_stale()
            base.rmdir()
        (state_dir / RECORD).unlink()


class ContainerCgroup:
    """One run of one container: made with its limit; the child joins it before exec."""

    def __init__(self, version: str, path: Path, limit: int | None) -> None:
        self.version = version
        self.path = path
        if path.exists():
            remove_now(path)
        try:
            path.mkdir()
        except OSError as error:
            raise CgroupError(f"cannot make {path}: {error.strerror or error}") from None
        if limit is not None:
            self._limit(limit)
        self.oom_kills_before = self.oom_kills()
        try:
            self._procs = os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        except OSError as error:
            raise CgroupError(f"cannot open {path}/cgroup.procs: {error.strerror}") from None

    def _limit(self, limit: int) -> None:
        if self.version == V1:
            value = str(limit) if limit < _UNLIMITED_FROM else "-1"
            _write(self.path / "memory.limit_in_bytes", value)
            if (swap := self.path / "memory.memsw.limit_in_bytes").exists():
                _write(swap, value)
        else:
            _write(self.path / "memory.max", str(limit) if limit < _UNLIMITED_FROM else "max")
            if (swap := self.path / "memory.swap.max").exists():
                _write(swap, "0")
            if (group := self.path / "memory.oom.group").exists():
                _write(group, "1")

    def enter(self) -> None:
        """In the child, between fork and exec: join the cgroup (one write, no allocation)."""
        os.write(self._procs, b"0")

    def started(self, _pid: int) -> None:
        # The child has exec'd (Popen returns after exec): nothing else joins through this fd.
        self.release()

    def release(self) -> None:
        """Close the file the child joins through (once it has, or when it never will)."""
        if self._procs >= 0:
            os.close(self._procs)
            self._procs = -1

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == V1 else "memory.events"
        try:
            lines = (self.path / name).read_text().splitlines()
        except OSError:
            return 0
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def oom_killed(self) -> bool:
        return self.oom_kills() > self.oom_kills_before

    async def close(self) -> None:
        """Kill whatever is left in the cgroup and remove it."""
        self.release()
        for _ in range(_CLOSE_ATTEMPTS):
            if _removed(self.path):
                return
            await asyncio.sleep(_CLOSE_PAUSE)


def _probe(root: CgroupRoot) -> None:
    """Make a cgroup with a limit and read the limit back, as a container's would be made."""
    probe = root.container("probe", _PROBE_LIMIT)
    try:
        name = "memory.limit_in_bytes" if root.version == V1 else "memory.max"
        if int((probe.path / name).read_text()) != _PROBE_LIMIT:
            raise CgroupError(f"{probe.path / name} does not hold the limit written to it")
    finally:
        probe.release()
        remove_now(probe.path)


def _v2_delegate(own: Path, alone: bool, is_root: bool) -> None:
    """Let the agent's cgroup hand the memory controller to child cgroups."""
    if "memory" not in (own / "cgroup.controllers").read_text().split():
        raise CgroupError(f"cgroup v2: the memory controller is not available in {own}")
    if "memory" in (own / "cgroup.subtree_control").read_text().split():
        return
    if not is_root:
        if not alone:
            raise CgroupError(
                f"cgroup v2: the agent's cgroup {own} holds other processes, and a cgroup that "
                "holds processes cannot hand the memory controller to child cgroups; run the "
                "agent in a cgroup of its own (systemd-run --scope -p Delegate=yes ...)"
            )
        leaf = own / "agent"
        try:
            leaf.mkdir(exist_ok=True)
        except OSError as error:
            raise CgroupError(f"cannot make {leaf}: {error.strerror or error}") from None
        _write(leaf / "cgroup.procs", str(os.getpid()))
    _write(own / "cgroup.subtree_control", "+memory")


def discover(node_name: str, state_dir: Path, proc: Path = Path("/proc")) -> CgroupRoot:
    """The cgroup folder for this agent's containers, ready and cleared; CgroupError saying why
    there can be none."""
    try:
        found = mounts((proc / "self" / "mountinfo").read_text())
        own = own_cgroups((proc / "self" / "cgroup").read_text())
    except OSError as error:
        raise CgroupError(f"cannot read this process's cgroups: {error}") from None
    try:
        root = _root(found, own, base_name(node_name, state_dir))
    except CgroupError:
        raise
    except OSError as error:
        raise CgroupError(f"cannot make a memory cgroup: {error}") from None
    root.clear_stale()
    _probe(root)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / RECORD).write_text(f"{root.base}\n")
    return root


def _root(found: dict[str, Mount], own: dict[str, PurePosixPath], name: str) -> CgroupRoot:
    if "memory" in found and "memory" in own:
        root = CgroupRoot(V1, folder(found["memory"], own["memory"]) / name)
        root.base.mkdir(exist_ok=True)
        return root
    if "unified" in found and "unified" in own:
        mount = found["unified"]
        own_dir = folder(mount, own["unified"])
        others = [pid for pid in _pids(own_dir) if pid != os.getpid()]
        _v2_delegate(own_dir, alone=not others, is_root=own["unified"] == mount.root)
        root = CgroupRoot(V2, own_dir / name)
        root.base.mkdir(exist_ok=True)
        if "memory" not in (root.base / "cgroup.subtree_control").read_text().split():
            _write(root.base / "cgroup.subtree_control", "+memory")
        return root
    raise CgroupError("no memory cgroup hierarchy is mounted")
