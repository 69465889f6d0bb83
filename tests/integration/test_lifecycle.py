"""`ferry local up/env/down` from the command line, side by side with the session's cluster, and
nothing left running afterwards — also when whoever started the cluster is killed outright."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry_local.agent.cgroups import RECORD, clear_recorded
from ferry_local.cluster import ClusterInfo, read_state
from ferry_local.layout import ClusterLayout
from ferry_local.processes import processes_mentioning
from ferry_local.wait import wait_until

RESTARTS_SEEN = 4
# What the supervisor waits before each restart of a component that keeps crashing.
SUPERVISOR_BACKOFF = [0.0, 1.0, 2.0, 4.0]


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "state"
    yield root
    # Whatever a failed test left behind must not outlive it.
    for pid in processes_mentioning(f"{root}/"):
        os.kill(pid, signal.SIGKILL)
    for cluster_root in root.glob("*"):
        clear_recorded(ClusterLayout(cluster_root).agent_state)


def ferry(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FERRY_STATE_DIR": str(state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "ferry.cli.main", "local", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def no_process_left(root: Path) -> None:
    wait_until(
        lambda: not processes_mentioning(f"{root}/"),
        timeout=30,
        what=f"every process of {root} to exit",
    )


def test_up_env_down_beside_another_cluster(cluster: ClusterInfo, state_dir: Path) -> None:
    up = ferry(state_dir, "up", "--name", "second", "--nodes", "2")
    assert up.returncode == 0, up.stderr
    layout = ClusterLayout(state_dir / "second")
    state = read_state(layout)
    assert state is not None
    assert state["apiserver"] != cluster.apiserver  # two runs, two sets of ports

    env = ferry(state_dir, "env", "--name", "second")
    assert env.returncode == 0, env.stderr
    nodes = subprocess.run(
        ["bash", "-c", f"{env.stdout}\nkubectl get nodes -o name"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    # Two simulated nodes, and the node agent's, which runs pods for real.
    assert nodes == ["node/ferry-local", "node/kwok-node-0", "node/kwok-node-1"]

    down = ferry(state_dir, "down", "--name", "second")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stderr
    assert not processes_mentioning(f"{layout.root}/")
    assert ferry(state_dir, "env", "--name", "second").returncode == 1


def test_a_killed_supervisor_takes_its_components_with_it(state_dir: Path) -> None:
    assert ferry(state_dir, "up", "--name", "orphan", "--nodes", "0").returncode == 0
    layout = ClusterLayout(state_dir / "orphan")
    state = read_state(layout)
    assert state is not None
    assert len(processes_mentioning(f"{layout.root}/")) >= 6  # supervisor + five components

    os.kill(int(state["supervisor"]), signal.SIGKILL)
    no_process_left(layout.root)
    # The node agent died too: `down` clears what it could not (its containers' cgroups).
    assert ferry(state_dir, "down", "--name", "orphan").returncode == 0
    assert not (layout.agent_state / RECORD).exists()


def test_a_killed_test_run_leaves_no_cluster_behind(state_dir: Path) -> None:
    # Stands in for pytest dying mid-session: the owner of a tied cluster is killed outright.
    root = state_dir / "crash"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from ferry_local.cluster import up
        from ferry_local.layout import ClusterLayout
        up(ClusterLayout(Path({str(root)!r})), nodes=1, tie_to_parent=True)
        print("ready", flush=True)
        time.sleep(600)
    """)
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as owner:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "ready"
        assert processes_mentioning(f"{root}/")
        owner.kill()
    no_process_left(root)


def test_a_component_that_keeps_crashing_is_restarted_ever_more_slowly_until_down(
    state_dir: Path,
) -> None:
    up = ferry(state_dir, "up", "--name", "crashy", "--nodes", "0", "--no-operator")
    assert up.returncode == 0, up.stderr
    layout = ClusterLayout(state_dir / "crashy")

    def scheduler() -> dict[str, Any]:
        state = read_state(layout) or {}
        found: dict[str, Any] = state["components"]["kube-scheduler"]
        return found

    # Each kill, and how long until a new scheduler process was there.
    waited = []
    for _ in range(RESTARTS_SEEN):
        pid = scheduler()["pid"]
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda pid=pid: scheduler()["pid"] != pid and scheduler()["state"] == "running",
            timeout=60,
            what="the scheduler to be started again",
            interval=0.02,
        )
        waited.append(time.monotonic() - killed)
    # The supervisor's back-off: at once, then 1 s doubling. Never sooner, so not a tight loop;
    # a loaded machine only makes the waits longer.
    for seconds, least in zip(waited, SUPERVISOR_BACKOFF, strict=False):
        assert seconds >= least, (waited, SUPERVISOR_BACKOFF)
    shown = ferry(state_dir, "status", "--name", "crashy", "--json")
    report = json.loads(shown.stdout)["components"]["kube-scheduler"]
    assert report["restarts"] == RESTARTS_SEEN
    assert report["lastExit"]["signal"] == "SIGKILL"
    components = json.loads(shown.stdout)["components"]
    others = [c["restarts"] for n, c in components.items() if n != "kube-scheduler"]
    assert others == [0] * len(others)

    # Killed once more, it waits its longest pause yet; `down` does not wait for it.
    os.kill(scheduler()["pid"], signal.SIGKILL)
    wait_until(
        lambda: scheduler()["state"] == "backing-off",
        timeout=30,
        what="the scheduler's back-off",
    )
    down = ferry(state_dir, "down", "--name", "crashy")
    assert down.returncode == 0, down.stderr
    assert not processes_mentioning(f"{layout.root}/")
    assert read_state(layout) is None
