"""What one node agent is started with; every field has a command-line flag in main.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ferry_local.agent.backoff import BackOffPolicy
from ferry_local.agent.memory import AUTO
from ferry_local.agent.network import DEFAULT_POD_CIDR, HOST_IP
from ferry_local.network import ClusterNetwork

NODE_GROUP = "local"


@dataclass(frozen=True)
class AgentSettings:
    node_name: str
    state_dir: Path
    """Pod folders (volumes, container logs) live under <state_dir>/pods/."""
    kubeconfig: str | None = None
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    node_group: str = NODE_GROUP
    """Value of the ferry.dev/node-group label and of the NoSchedule taint of the same key."""
    pod_cidr: str = DEFAULT_POD_CIDR
    """Loopback block of pod addresses when there is no cluster network."""
    network: ClusterNetwork | None = None
    """The cluster's network: each pod gets a namespace of its own and an address from the
    node's pod CIDR (the controller-manager's), the node the cluster's node address."""
    image_tables: tuple[Path, ...] = ()
    """Image tables consulted before the built-in one."""
    backoff: BackOffPolicy = field(default_factory=BackOffPolicy)
    pass_env: tuple[str, ...] = ()
    """Variables of the agent's own environment that every container gets too (AWS_*, ...)."""
    stop_grace: float = 10.0
    """When the agent stops: the most any pod's containers get between SIGTERM and SIGKILL."""
    memory_limits: str = AUTO
    """How containers' memory limits are enforced: auto (the kernel where a memory cgroup can be
    made, else the watchdog), cgroup (the kernel or no start), watchdog."""
    watchdog_interval: float = 0.5
    """Seconds between the watchdog's rounds."""
    healthz_port: int | None = None
    """127.0.0.1 port of /healthz, which answers 200 once the node is registered and pods are
    being watched; none when unset."""

    @property
    def node_ip(self) -> str:
        """The Node's InternalIP, and the hostIP of its pods."""
        return self.network.node_address if self.network is not None else HOST_IP
