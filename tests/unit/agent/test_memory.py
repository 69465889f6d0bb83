"""Memory limits: which cgroup the agent is in, what a limit is, and the watchdog's kill."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from ferry_local import processes
from ferry_local.agent.cgroups import (
    RECORD,
    CgroupError,
    Mount,
    clear_recorded,
    discover,
    folder,
    mounts,
    own_cgroups,
)
from ferry_local.agent.memory import Watchdog, memory_limit, session_usage
from ferry_local.agent.startable import CreateContainerError
from ferry_local.wait import wait_until

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
4:memory:/process_api/c0fd
1:cpu:/
0::/
"""


def test_a_v1_memory_hierarchy_is_found_beside_the_unified_one() -> None:
    found = mounts(HYBRID_MOUNTINFO)
    assert found["memory"] == Mount(PurePosixPath("/"), Path("/sys/fs/cgroup/memory"))
    assert found["unified"] == Mount(PurePosixPath("/"), Path("/sys/fs/cgroup/unified"))
    own = own_cgroups(HYBRID_CGROUP)
    assert own == {"memory": PurePosixPath("/process_api/c0fd"), "unified": PurePosixPath("/")}
    assert folder(found["memory"], own["memory"]) == Path("/sys/fs/cgroup/memory/process_api/c0fd")


def test_a_mount_of_a_sub_tree_maps_paths_below_its_root() -> None:
    # A cgroup namespace, or a mount of part of the hierarchy: its root is not /.
    line = "29 23 0:26 /user.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    mount = mounts(line)["unified"]
    assert folder(mount, PurePosixPath("/user.slice/session-1.scope")) == Path(
        "/sys/fs/cgroup/session-1.scope"
    )
    with pytest.raises(CgroupError, match="not under the mount"):
        folder(mount, PurePosixPath("/system.slice"))


def fake_proc(tmp_path: Path, mountinfo: str, cgroup: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(mountinfo)
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def test_a_v2_cgroup_shared_with_other_processes_cannot_hand_memory_down(tmp_path: Path) -> None:
    own = tmp_path / "cg" / "session.scope"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.subtree_control").write_text("\n")
    (own / "cgroup.procs").write_text(f"{os.getpid()}\n1\n")
    mountinfo = f"29 23 0:26 / {tmp_path / 'cg'} rw - cgroup2 cgroup2 rw\n"
    proc = fake_proc(tmp_path, mountinfo, "0::/session.scope\n")
    with pytest.raises(CgroupError, match="holds other processes"):
        discover("node", tmp_path / "state", proc)
    assert sorted(p.name for p in own.iterdir()) == [
        "cgroup.controllers",
        "cgroup.procs",
        "cgroup.subtree_control",
    ]


def test_a_v2_cgroup_without_the_memory_controller_says_so(tmp_path: Path) -> None:
    own = tmp_path / "cg"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpu pids\n")
    (own / "cgroup.procs").write_text(f"{os.getpid()}\n")
    proc = fake_proc(tmp_path, f"29 23 0:26 / {own} rw - cgroup2 cgroup2 rw\n", "0::/\n")
    with pytest.raises(CgroupError, match="memory controller is not available"):
        discover("node", tmp_path / "state", proc)


def test_no_cgroup_hierarchy_at_all_says_so(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "22 1 0:21 / /proc rw - proc proc rw\n", "")
    with pytest.raises(CgroupError, match="no memory cgroup hierarchy is mounted"):
        discover("node", tmp_path / "state", proc)


@pytest.mark.parametrize(
    ("resources", "limit"),
    [
        ({}, None),
        ({"requests": {"memory": "1Gi"}}, None),
        ({"limits": {"memory": "64Mi"}}, 64 * 2**20),
        ({"limits": {"memory": "1e3"}}, 1000),
        ({"limits": {"memory": "128974848"}}, 128974848),
        ({"limits": {"memory": "0.5Ki"}}, 512),
    ],
)
def test_a_limit_is_read_in_bytes(resources: dict[str, object], limit: int | None) -> None:
    assert memory_limit({"resources": resources}) == limit


@pytest.mark.parametrize("raw", ["0", "lots", "-1Mi"])
def test_a_limit_that_leaves_no_memory_or_is_no_quantity_is_refused(raw: str) -> None:
    with pytest.raises(CreateContainerError, match="memory limit"):
        memory_limit({"resources": {"limits": {"memory": raw}}})


HOG = "import time; data = b'x' * (96 << 20); print('held', flush=True); time.sleep(600)"


def test_the_watchdog_kills_a_session_over_its_limit_and_spares_one_under(tmp_path: Path) -> None:
    watchdog = Watchdog("testing", interval=0.5)
    hog = processes.spawn([sys.executable, "-c", HOG], tmp_path / "hog.log")
    modest = processes.spawn([sys.executable, "-c", HOG], tmp_path / "modest.log")
    try:
        wait_until(
            lambda: all("held" in (tmp_path / f).read_text() for f in ("hog.log", "modest.log")),
            timeout=30,
            what="both processes holding their memory",
        )
        over, under = watchdog.guard("hog", 64 << 20), watchdog.guard("modest", 1 << 30)
        assert over is not None and under is not None
        over.started(hog.pid)
        under.started(modest.pid)
        usage = session_usage(Path("/proc"), {hog.pid})
        assert usage[hog.pid][0] > 96 << 20
        assert usage[hog.pid][1] == [hog.pid]

        watchdog.check()
        assert hog.wait(timeout=10) == -9
        assert over.oom_killed()
        assert "resident memory" in over.how()
        assert modest.poll() is None
        assert not under.oom_killed()
    finally:
        for process in (hog, modest):
            processes.stop_group(process, grace=1)


def test_the_watchdog_leaves_containers_without_a_limit_alone() -> None:
    assert Watchdog("testing", interval=0.5).guard("free", None) is None


def test_a_spawned_process_can_join_before_exec(tmp_path: Path) -> None:
    joined = tmp_path / "joined"

    def before_exec() -> None:
        # Runs in the child: it must not allocate; creating a file stands in for a write.
        os.close(os.open(joined, os.O_CREAT | os.O_WRONLY, 0o600))

    process = processes.spawn(["true"], tmp_path / "log", before_exec=before_exec)
    assert process.wait(timeout=10) == 0
    assert joined.exists()
    with pytest.raises(subprocess.SubprocessError):

        def refuse() -> None:
            raise OSError("no")

        processes.spawn(["true"], tmp_path / "log", before_exec=refuse)


def test_the_cgroups_an_agent_killed_outright_left_are_removed_by_whoever_cleans_up(
    tmp_path: Path,
) -> None:
    base = tmp_path / "cgroup" / "ferry-agent-node"
    (base / "uid_app").mkdir(parents=True)
    state = tmp_path / "state"
    state.mkdir()
    (state / RECORD).write_text(f"{base}\n")
    clear_recorded(state)
    assert not base.exists()
    assert not (state / RECORD).exists()
    clear_recorded(state)  # nothing recorded: nothing to do
