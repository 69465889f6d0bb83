"""`ferry-operator` that cannot reach an API server says so and ends, as with a bad setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

OPERATOR = Path(sys.executable).with_name("ferry-operator")


def test_without_a_kubeconfig_or_an_in_cluster_account_the_operator_says_why_and_ends(
    tmp_path: Path,
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")},
        "KUBECONFIG": str(tmp_path / "missing"),
        "HOME": str(tmp_path),  # no ~/.kube/config either
    }
    ran = subprocess.run(
        [str(OPERATOR)], env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert ran.returncode == 2, ran.stderr
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith("ferry-operator: cannot reach the API server: "), ran.stderr
    assert "no in-cluster account" in last
