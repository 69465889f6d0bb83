"""Child processes that cannot outlive their owner.

Each component runs in a process group of its own, so a stop reaches everything it started, and
is tied to its parent with PR_SET_PDEATHSIG, so a supervisor killed outright takes its children
with it. What still escapes (a parent gone before the tie was made) is found by its command line,
which always names the cluster's folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when the thread that forked it ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def spawn(
    argv: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    tie_to_parent: bool = True,
    before_exec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` logging to `log`; `before_exec` runs in the child between fork and exec (it
    must not allocate or take a lock: the parent may have threads)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    parent = os.getpid()

    def setup() -> None:
        if tie_to_parent:
            die_with_parent()
            if os.getppid() != parent:  # the parent died before the tie was made
                os._exit(1)
        if before_exec is not None:
            before_exec()

    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            # The death signal can only be set between fork and exec. Callers spawn from their
            # main thread, which is also the thread the signal is tied to.
            preexec_fn=setup,  # noqa: PLW1509
        )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def signal_group(pgid: int, sig: int) -> None:
    """Signal a process group, if anything is left of it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(process: subprocess.Popen[bytes], grace: float) -> int | None:
    """SIGTERM the process's group, SIGKILL it after `grace` seconds; return the exit code."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            return process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return process.poll()


def processes_mentioning(marker: str) -> list[int]:
    """Pids of live processes whose command line contains `marker` (never this process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_all(pids: Sequence[int], grace: float, now: Callable[[], float] = time.monotonic) -> None:
    """SIGTERM, then SIGKILL what is left after `grace` seconds."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = now() + grace
    while now() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
