"""What no process can be started with is refused before the agent forks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry_local.agent.startable import CreateContainerError, check_startable


def test_a_plain_container_passes(tmp_path: Path) -> None:
    check_startable(["sh", "-c", "écho ✓"], {"A": "b", "EMOJI": "🚢"}, tmp_path, tmp_path)


@pytest.mark.parametrize(
    ("argv", "env", "words"),
    [
        (["sh", "-c", "a\0b"], {}, "command and args hold a NUL byte"),
        (["sh", "\ud800"], {}, "command and args are not valid text"),
        (["sh"], {"BAD": "a\0b"}, "env BAD holds a NUL byte"),
        (["sh"], {"BAD": "\ud800"}, "env BAD is not valid text"),
        (["sh"], {"A=B": "x"}, "env name 'A=B' cannot be given"),
        (["sh"], {"": "x"}, "env name '' cannot be given"),
    ],
)
def test_what_exec_cannot_take_is_refused_naming_the_field(
    tmp_path: Path, argv: list[str], env: dict[str, str], words: str
) -> None:
    with pytest.raises(CreateContainerError, match=words):
        check_startable(argv, env, tmp_path, tmp_path)


def test_a_missing_working_directory_in_the_pod_folder_is_made(tmp_path: Path) -> None:
    work = tmp_path / "volumes" / "data" / "work"
    check_startable(["sh"], {}, work, tmp_path)
    assert work.is_dir()


def test_a_missing_working_directory_elsewhere_is_refused_and_not_made(tmp_path: Path) -> None:
    pod = tmp_path / "pod"
    pod.mkdir()
    elsewhere = tmp_path / "host" / "srv"
    with pytest.raises(CreateContainerError, match=f'"{elsewhere}" does not exist'):
        check_startable(["sh"], {}, elsewhere, pod)
    assert not (tmp_path / "host").exists()


def test_a_working_directory_that_leaves_the_pod_folder_is_not_made(tmp_path: Path) -> None:
    pod = tmp_path / "pod"
    pod.mkdir()
    with pytest.raises(CreateContainerError, match="does not exist"):
        check_startable(["sh"], {}, pod / ".." / "outside", pod)
    assert not (tmp_path / "outside").exists()
