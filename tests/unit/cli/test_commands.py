"""The `ferry` command's subcommands: the product's own, and `ferry local`, which the local
environment's distribution (ferry-local, under local/) contributes when it is installed."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

FERRY = Path(sys.executable).with_name("ferry")


def site_without_the_local_environment(folder: Path) -> Path:
    """A site folder holding this environment's packages less ferry-local: the product installed
    alone, as in the operator's image."""
    folder.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "ferry_local" not in entry.name.replace("-", "_").lower():
            (folder / entry.name).symlink_to(entry)
    return folder


def ferry_in(site: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`ferry ARGV` on an interpreter that sees only `site` (no user site, no PYTHONPATH, not
    the working folder)."""
    program = (
        "import site, sys; site.addsitedir(sys.argv.pop(1)); "
        "from ferry.cli.main import main; sys.exit(main())"
    )
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", program, str(site), *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_help_lists_the_local_environment_when_it_is_installed() -> None:
    result = subprocess.run([FERRY, "--help"], capture_output=True, text=True, check=True)
    assert "{local,fetch-model,model,logs,render}" in result.stdout
    assert "run Ferry's local environment" in result.stdout


def test_ferry_local_runs_the_installed_local_environment() -> None:
    result = subprocess.run([FERRY, "local", "--help"], capture_output=True, text=True, check=True)
    assert "{build,up,demo,down,env,status}" in result.stdout


def test_without_the_local_environment_ferry_local_says_how_to_install_it(
    tmp_path: Path,
) -> None:
    site = site_without_the_local_environment(tmp_path / "site")
    result = ferry_in(site, "local", "status", "--name", "never-started")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert "not installed" in result.stderr
    assert "pip install" in result.stderr
    assert "./local" in result.stderr


def test_without_the_local_environment_the_products_own_commands_work(tmp_path: Path) -> None:
    site = site_without_the_local_environment(tmp_path / "site")
    result = ferry_in(site, "--help")
    assert result.returncode == 0, result
    assert "{fetch-model,model,logs,render}" in result.stdout
    assert ferry_in(site, "render", "--help").returncode == 0
