"""One local environment for the examples' tests, as `ferry local up` starts it: the control
plane, moto, the node agent running the examples' images (examples/images.yaml), the CRD and
the operator."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.layout import ClusterLayout
from tests.support.ferry_operator import REPO

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="package")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    root: Path = tmp_path_factory.mktemp("examples") / "ferry-examples"
    with local_cluster(ClusterLayout(root), nodes=1, operator=True) as info:
        yield info


def run(
    argv: list[str],
    stdin: str | None = None,
    *,
    expect: int = 0,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> str:
    """A command's stdout, once it exited with `expect`; otherwise its output shows why."""
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, check=False, env=env, timeout=timeout
    )
    assert result.returncode == expect, (
        f"{' '.join(argv[:3])} exited {result.returncode}: {result.stdout}{result.stderr}"
    )
    return result.stdout


def kubectl_of(info: ClusterInfo) -> list[str]:
    return [info.tool("kubectl"), f"--kubeconfig={info.kubeconfig}"]
