"""The toolchain's helm with folders of its own, and Ferry's chart rendered by it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ferry_local.toolchain import locate
from tests.support.ferry_operator import REPO
from tools.manifests import SERVED

CHART = REPO / "charts" / "ferry"


@dataclass(frozen=True)
class Helm:
    """helm with HELM_CACHE_HOME, HELM_CONFIG_HOME and HELM_DATA_HOME under `home`, so a test
    neither reads nor writes the user's repositories, plugins or registry logins."""

    home: Path
    kubeconfig: Path | None = None

    @property
    def binary(self) -> Path:
        built = locate().binary("helm")
        assert built.exists(), f"{built} is missing: `make tools` builds it"
        return built

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        result = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=300,
        )
        if check:
            assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
        return result

    def template(
        self, *values: str, namespace: str = "ferry-system", release: str = "ferry"
    ) -> list[dict[str, Any]]:
        """The chart's objects for these --set/--values arguments, as Helm renders them for the
        local cluster's Kubernetes (which serves MutatingAdmissionPolicy)."""
        out = self.run(
            "template", release, str(CHART), f"--namespace={namespace}", *SERVED, *values
        )
        return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of this kind (and name)."""
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} objects of kind {kind} named {name}"
    return found[0]


def container_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The operator container's plain environment variables."""
    deployment = find(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {var["name"]: var["value"] for var in container["env"] if "value" in var}
