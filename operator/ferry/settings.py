"""The operator's settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ferry import __version__
from ferry.capacity.node_group import NodeGroup, Taint
from ferry.capacity.quantity import QuantityError
from ferry.capacity.resources import GPU, Resources

DEFAULT_IMAGE = f"ghcr.io/ferry-dev/ferry:{__version__}"


class SettingsError(ValueError):
    """The operator is misconfigured; it refuses to start and says which variable is wrong."""


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
    autoscale_interval: float = 1.0
    """Seconds between autoscaler ticks of each API: the tick the simulation chose the defaults
    for (docs/autoscaling.md). It sees a surge a second sooner than Knative's 2 s decider
    period: at 2 s the step trace refuses 229 more requests, one more than KPA. One operator
    keeps up with 1,000 APIs at 1 s (bench/autoscaler); 2 halves its CPU."""
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
    capacity_interval: float = 10.0
    """Seconds between passes of the capacity loop over the node groups with an asgName: as
    often as cluster-autoscaler looks, and well within the minute an instance takes to boot."""
    scale_in_cooldown: float = 600.0
    """Seconds a node must have held no pod before its instance is terminated: long enough
    that a dip in traffic does not cost a node that the next burst needs again."""

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
            autoscale_interval=seconds("FERRY_AUTOSCALE_INTERVAL", 1.0),
            scrape_timeout=seconds("FERRY_SCRAPE_TIMEOUT", 1.0),
            scrape_concurrency=scrape_concurrency,
            metrics_port=number("FERRY_METRICS_PORT", 9090),
            log_group_prefix=env.get("FERRY_LOG_GROUP_PREFIX", "/ferry"),
            delete_log_groups=on_delete == "delete",
            capacity_interval=seconds("FERRY_CAPACITY_INTERVAL", 10.0),
            scale_in_cooldown=seconds("FERRY_SCALE_IN_COOLDOWN", 600.0),
        )


_GROUP_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_GROUP_KEYS = {"name", "labels", "taints", "asgName", "allocatable", "minSize", "maxSize"}
_TAINT_KEYS = {"key", "value", "effect"}
_ALLOCATABLE_KEYS = {"cpu", "memory", "gpu"}
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def parse_node_groups(text: str) -> dict[str, NodeGroup]:
    """FERRY_NODE_GROUPS: a JSON list of {name, labels, taints: [{key, value, effect}], asgName,
    allocatable: {cpu, memory, gpu}, minSize, maxSize}; every field but name is optional."""
    if not text.strip():
        return {}
    try:
        entries = json.loads(text)
    except ValueError as error:
        raise SettingsError(f"FERRY_NODE_GROUPS is not a list of node groups: {error}") from None
    if not isinstance(entries, list):
        raise SettingsError("FERRY_NODE_GROUPS is not a list of node groups: not a JSON list")
    groups: dict[str, NodeGroup] = {}
    asgs: dict[str, str] = {}
    for index, entry in enumerate(entries):
        group = _node_group(entry, f"FERRY_NODE_GROUPS[{index}]")
        if group.name in groups:
            raise SettingsError(f"FERRY_NODE_GROUPS names {group.name!r} twice")
        if group.asg_name is not None:
            if group.asg_name in asgs:
                raise SettingsError(
                    f"FERRY_NODE_GROUPS: groups {asgs[group.asg_name]!r} and {group.name!r} both"
                    f" name Auto Scaling group {group.asg_name!r}; each needs its own"
                )
            asgs[group.asg_name] = group.name
        groups[group.name] = group
    return groups


def _node_group(entry: Any, where: str) -> NodeGroup:
    if not isinstance(entry, dict):
        raise SettingsError(f"{where} is not a node group (a JSON object with a name)")
    name = entry.get("name")
    if not isinstance(name, str) or not _GROUP_NAME.fullmatch(name):
        raise SettingsError(
            f"{where}: name {name!r} must be a lower-case DNS label (what spec.nodeGroup takes)"
        )
    where = f"{where} ({name})"
    _known_keys(entry, _GROUP_KEYS, where)
    labels = entry.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise SettingsError(f"{where}: labels must map strings to strings")
    asg_name = entry.get("asgName")
    if asg_name is not None and (not isinstance(asg_name, str) or not asg_name):
        raise SettingsError(f"{where}: asgName must be the Auto Scaling group's name")
    raw_allocatable = entry.get("allocatable")
    allocatable = None if raw_allocatable is None else _allocatable(raw_allocatable, where)
    if asg_name is not None and allocatable is None:
        raise SettingsError(
            f"{where}: allocatable (cpu and memory of one instance) is required with asgName: "
            "the capacity loop sizes new nodes by it"
        )
    min_size = _size(entry, "minSize", where) or 0
    max_size = _size(entry, "maxSize", where)
    if max_size is not None and min_size > max_size:
        raise SettingsError(f"{where}: minSize {min_size} is above maxSize {max_size}")
    return NodeGroup(
        name=name,
        labels=dict(labels),
        taints=tuple(
            _taint(t, f"{where} taint {i}") for i, t in enumerate(entry.get("taints") or [])
        ),
        asg_name=asg_name,
        allocatable=allocatable,
        min_size=min_size,
        max_size=max_size,
    )


def _known_keys(entry: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise SettingsError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def _taint(raw: Any, where: str) -> Taint:
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str) or not raw["key"]:
        raise SettingsError(f"{where}: a taint is {{key, value, effect}} with a key")
    _known_keys(raw, _TAINT_KEYS, where)
    value, effect = raw.get("value", ""), raw.get("effect", "NoSchedule")
    if not isinstance(value, str):
        raise SettingsError(f"{where}: value must be a string")
    if effect not in _EFFECTS:
        raise SettingsError(f"{where}: effect must be one of {', '.join(_EFFECTS)}, not {effect!r}")
    return Taint(raw["key"], value, effect)


def _allocatable(raw: Any, where: str) -> Resources:
    if not isinstance(raw, dict) or "cpu" not in raw or "memory" not in raw:
        raise SettingsError(
            f"{where}: allocatable needs cpu and memory, like {{cpu: 4, memory: 16Gi}}"
        )
    _known_keys(raw, _ALLOCATABLE_KEYS, f"{where} allocatable")
    gpu = raw.get("gpu", 0)
    if isinstance(gpu, str) and gpu.isdigit():
        gpu = int(gpu)
    if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
        raise SettingsError(f"{where}: allocatable gpu must be a whole number, not {gpu!r}")
    try:
        resources = Resources.of({"cpu": raw["cpu"], "memory": raw["memory"], GPU: gpu})
    except QuantityError as error:
        raise SettingsError(f"{where}: allocatable: {error}") from None
    if resources.cpu <= 0 or resources.memory <= 0:
        raise SettingsError(f"{where}: allocatable cpu and memory must be above 0 ({resources})")
    return resources


def _size(entry: Mapping[str, Any], key: str, where: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(f"{where}: {key} must be a whole number of nodes, not {value!r}")
    return value
