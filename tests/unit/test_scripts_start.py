"""Every benchmark and example script starts: mypy checks the two packages only, so a name moved
inside `ferry` would otherwise break a script no test runs (bench/rollout's import of api_path
did, after it moved to the status writer)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(
    [
        *REPO.glob("bench/*/*.py"),
        *REPO.glob("examples/*/*.py"),
    ]
)
MODULES = ["bench.autoscaling"]


def started(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv, "--help"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def scripts() -> list[Path]:
    # Those with a command line; the predictors are loaded by ferry-runtime, and the example
    # container's server takes none. bench/autoscaling is a package, run as a module.
    return [
        path
        for path in SCRIPTS
        if "argparse" in (text := path.read_text()) and '__name__ == "__main__"' in text
    ]


@pytest.mark.parametrize("script", scripts(), ids=lambda path: str(path.relative_to(REPO)))
def test_the_script_imports_and_answers_help(script: Path) -> None:
    done = started(str(script))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:"), done.stdout


@pytest.mark.parametrize("module", MODULES)
def test_the_module_imports_and_answers_help(module: str) -> None:
    done = started("-m", module)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:"), done.stdout
