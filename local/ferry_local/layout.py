"""Where the local environment keeps its files: the build cache and one state folder per cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CLUSTER = "ferry"


def cache_root() -> Path:
    """Built binaries live here, keyed by version, shared by every cluster on the machine."""
    if explicit := os.environ.get("FERRY_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ferry"


def state_root() -> Path:
    if explicit := os.environ.get("FERRY_STATE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "ferry" / "clusters"


@dataclass(frozen=True)
class ClusterLayout:
    """The files of one local cluster. Certificates outlive `down`; data and logs do not."""

    root: Path

    @classmethod
    def named(cls, name: str = DEFAULT_CLUSTER) -> ClusterLayout:
        return cls(state_root() / name)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def run(self) -> Path:
        """Everything of one `up`: logs, etcd data, the state file. Wiped at the next `up`."""
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.run / "logs"

    @property
    def agent_state(self) -> Path:
        """The node agent's state folder: its pods' folders and logs."""
        return self.run / "agent"

    @property
    def etcd_data(self) -> Path:
        return self.run / "etcd"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"
