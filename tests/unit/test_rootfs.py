"""ferry_local.rootfs: a program sees a folder at a top-level path the machine does not have,
and the machine never does."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path


def run(tmp_path: Path, bind: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ferry_local.rootfs",
            "--scratch",
            str(tmp_path / "root"),
            "--bind",
            bind,
            "--",
            *command,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_the_program_reads_the_folder_at_its_path_and_the_machine_has_no_such_path(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / "tls.crt").write_text("certificate\n")
    path = f"/ferry-test-{uuid.uuid4().hex[:8]}"

    done = run(tmp_path, f"{path}={folder}", "sh", "-c", f"cat {path}/tls.crt; pwd")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["certificate", str(Path.cwd())]
    assert not Path(path).exists()
    # The machine's own root is all there for the program too.
    assert run(tmp_path, f"{path}={folder}", "test", "-d", sys.prefix).returncode == 0


def test_a_path_the_machine_has_is_refused_not_hidden(tmp_path: Path) -> None:
    done = run(tmp_path, f"/tmp={tmp_path}", "true")

    assert done.returncode == 2
    assert done.stderr == (
        "python -m ferry_local.rootfs: /tmp exists on this machine; bind a path it does not have\n"
    )
