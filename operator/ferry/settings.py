"""The operator's settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ferry import __version__

DEFAULT_IMAGE = f"ghcr.io/ferry-dev/ferry:{__version__}"


class SettingsError(ValueError):
    """The operator is misconfigured; it refuses to start and says which variable is wrong."""


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class NodeGroup:
    """A pool of nodes an API can ask for with spec.nodeGroup."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (kopf patterns); empty means cluster-wide."""
    image: str = DEFAULT_IMAGE
    """Image of the proxy sidecar and the model-fetch init container: Ferry's own."""
    node_groups: Mapping[str, NodeGroup] = field(default_factory=dict)
    default_node_group: str | None = None
    """Node group of APIs that name none (the local environment sends them to its node agent)."""
    liveness_port: int = 8080
    """kopf's liveness endpoint, probed by the chart's livenessProbe."""
    worker_limit: int = 50
    """Objects handled at once: bounds memory and API load when thousands change together."""
    log_format: str = "plain"
    log_level: str = "INFO"
    cluster_domain: str = "cluster.local"
    autoscale_interval: float = 2.0
    """Seconds between autoscaler ticks of each API: the tick the simulation chose the defaults
    for (docs/autoscaling.md), and Knative's decider period."""
    scrape_timeout: float = 1.0
    """Seconds a proxy has to answer /stats; one that does not is unknown demand, not zero."""
    scrape_concurrency: int = 200
    """Scrapes in flight at once across all APIs: bounds sockets and memory at thousands of pods."""
    metrics_port: int = 9090
    """Port of the operator's Prometheus /metrics."""
    log_group_prefix: str = "/ferry"
    """CloudWatch Logs groups are <prefix>/<namespace>/<name>."""
    delete_log_groups: bool = False
    """Whether deleting an API deletes its log group; kept by default, since logs outlive APIs."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        def number(name: str, default: int) -> int:
            try:
                return int(env.get(name, default))
            except ValueError:
                raise SettingsError(f"{name} must be a whole number, not {env[name]!r}") from None

        def seconds(name: str, default: float) -> float:
            try:
                value = float(env.get(name, default))
            except ValueError:
                value = -1.0
            if not value > 0:
                raise SettingsError(f"{name} must be seconds above 0, not {env[name]!r}")
            return value

        scrape_concurrency = number("FERRY_SCRAPE_CONCURRENCY", 200)
        if scrape_concurrency < 1:
            raise SettingsError("FERRY_SCRAPE_CONCURRENCY must be at least 1")
        log_format = env.get("FERRY_LOG_FORMAT", "plain")
        if log_format not in ("plain", "json"):
            raise SettingsError(f"FERRY_LOG_FORMAT must be plain or json, not {log_format!r}")
        namespaces = tuple(n for n in env.get("FERRY_NAMESPACES", "").split(",") if n.strip())
        node_groups = parse_node_groups(env.get("FERRY_NODE_GROUPS", ""))
        on_delete = env.get("FERRY_LOG_GROUP_ON_DELETE", "keep")
        if on_delete not in ("keep", "delete"):
            raise SettingsError(
                f"FERRY_LOG_GROUP_ON_DELETE must be keep or delete, not {on_delete!r}"
            )
        default_group = env.get("FERRY_DEFAULT_NODE_GROUP") or None
        if default_group is not None and default_group not in node_groups:
            raise SettingsError(
                f"FERRY_DEFAULT_NODE_GROUP {default_group!r} is not in FERRY_NODE_GROUPS"
            )
        return cls(
            namespaces=tuple(n.strip() for n in namespaces),
            image=env.get("FERRY_IMAGE", DEFAULT_IMAGE),
            node_groups=node_groups,
            default_node_group=default_group,
            liveness_port=number("FERRY_LIVENESS_PORT", 8080),
            worker_limit=number("FERRY_WORKER_LIMIT", 50),
            log_format=log_format,
            log_level=env.get("FERRY_LOG_LEVEL", "INFO").upper(),
            cluster_domain=env.get("FERRY_CLUSTER_DOMAIN", "cluster.local"),
            autoscale_interval=seconds("FERRY_AUTOSCALE_INTERVAL", 2.0),
            scrape_timeout=seconds("FERRY_SCRAPE_TIMEOUT", 1.0),
            scrape_concurrency=scrape_concurrency,
            metrics_port=number("FERRY_METRICS_PORT", 9090),
            log_group_prefix=env.get("FERRY_LOG_GROUP_PREFIX", "/ferry"),
            delete_log_groups=on_delete == "delete",
        )


def parse_node_groups(text: str) -> dict[str, NodeGroup]:
    """FERRY_NODE_GROUPS: a JSON list of {name, labels, taints: [{key, value, effect}]}."""
    if not text.strip():
        return {}
    try:
        entries = json.loads(text)
        groups = [
            NodeGroup(
                name=entry["name"],
                labels=dict(entry.get("labels", {})),
                taints=tuple(Taint(**taint) for taint in entry.get("taints", [])),
            )
            for entry in entries
        ]
    except (ValueError, TypeError, KeyError) as error:
        raise SettingsError(f"FERRY_NODE_GROUPS is not a list of node groups: {error}") from None
    return {group.name: group for group in groups}
