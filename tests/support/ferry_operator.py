"""Running the real `ferry-operator` and kubectl against the test cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from ferry_local import crds, processes
from ferry_local.cluster import ClusterInfo
from ferry_local.health import healthy
from ferry_local.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
NODE_GROUPS = '[{"name": "gpu-a10g", "labels": {"ferry.dev/node-group": "gpu-a10g"}}]'


def kubectl(
    cluster: ClusterInfo, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [cluster.tool("kubectl"), f"--kubeconfig={cluster.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def install_crds(cluster: ClusterInfo) -> None:
    """crds/ applied as a user would, then waited on until RealtimeAPIs can be created."""

    def run(*args: str, stdin: str | None = None) -> str:
        return kubectl(cluster, *args, stdin=stdin).stdout

    crds.install(run, sorted((REPO / "crds").glob("*.yaml")))


def entry_point(name: str) -> str:
    """A console script of this package, from the environment the tests run in."""
    return str(Path(sys.executable).parent / name)


class Operator:
    """A `ferry-operator` process that can be stopped and started again."""

    def __init__(
        self, cluster: ClusterInfo, namespace: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.cluster, self.namespace, self.log = cluster, namespace, log
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with closing(socket.socket()) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "FERRY_NAMESPACES": self.namespace,
            "FERRY_LIVENESS_PORT": str(port),
            "FERRY_NODE_GROUPS": NODE_GROUPS,
            **self.extra_env,
        }
        process = processes.spawn([entry_point("ferry-operator")], self.log, env=env)
        self.process = process
        self.liveness_url = f"http://127.0.0.1:{port}/healthz"
        wait_until(
            lambda: process.poll() is None and healthy(self.liveness_url),
            timeout=60,
            what=f"ferry-operator's liveness endpoint (log: {self.log})",
        )

    def stop(self, grace: float = 15.0) -> int | None:
        code = processes.stop_group(self.process, grace=grace) if self.process else None
        self.process = None
        return code

    def logs(self) -> str:
        return self.log.read_text(errors="replace")
