"""How an exit becomes a container state, and which exits are restarted."""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ferry_local import processes
from ferry_local.agent.runner import exit_state, should_restart, stop_process, wait_exit
from ferry_local.wait import eventually

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


def test_exit_codes_and_signals_become_terminated_states() -> None:
    assert (exit_state(0, T0).exit_code, exit_state(0, T0).reason) == (0, "Completed")
    assert (exit_state(3, T0).exit_code, exit_state(3, T0).reason) == (3, "Error")
    killed = exit_state(-signal.SIGKILL, T0)
    assert (killed.exit_code, killed.reason, killed.signal) == (137, "Error", 9)


@pytest.mark.parametrize(
    ("policy", "code", "init", "restart"),
    [
        ("Always", 0, False, True),
        ("Always", 1, False, True),
        ("OnFailure", 0, False, False),
        ("OnFailure", 1, False, True),
        ("Never", 1, False, False),
        ("Always", 0, True, False),
        ("Always", 1, True, True),
        ("Never", 1, True, False),
    ],
)
def test_which_exits_restart(policy: str, code: int, init: bool, restart: bool) -> None:
    assert should_restart(policy, code, init) is restart


def spawn(script: str, log: Path) -> subprocess.Popen[bytes]:
    return processes.spawn([sys.executable, "-c", script], log)


async def test_an_exit_is_awaited_without_polling(tmp_path: Path) -> None:
    assert await wait_exit(spawn("raise SystemExit(4)", tmp_path / "log")) == 4


async def test_a_process_that_ignores_sigterm_is_killed_with_its_whole_group(
    tmp_path: Path,
) -> None:
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "log"
    process = spawn(script, log)

    async def child_started() -> str:
        return log.read_text().strip()

    child = int(await eventually(child_started, timeout=10, what="the child's pid"))
    assert await stop_process(process, grace=0.3) == -signal.SIGKILL

    async def child_gone() -> bool:
        return not processes.alive(child)

    await eventually(child_gone, timeout=5, what="the child to be gone")
