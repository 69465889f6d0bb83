"""The operator's settings, read once from the environment (the Helm chart sets them).

Each setting is one field of `Settings`: its default is the field's, and the variable it is read
from, with the parser of that variable's text, is in the field's metadata (`Variable`).
`Settings.from_env` reads every field through them, and the operator reads its FERRY_* variables
nowhere else.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ferry import __version__
from ferry.capacity.node_group import NodeGroup, Taint
from ferry.capacity.quantity import QuantityError
from ferry.capacity.resources import GPU, Resources
from ferry.spec.model import GatewayRef

DEFAULT_IMAGE = f"ghcr.io/ferry-dev/ferry:{__version__}"


class SettingsError(ValueError):
    """The operator is misconfigured; it refuses to start and says which variable is wrong."""


@dataclass(frozen=True)
class Variable:
    """Where a setting is read from: an environment variable, and the parser of its text, which
    raises SettingsError naming the variable."""

    name: str
    parse: Callable[[str, str], Any]


def _from(name: str, parse: Callable[[str, str], Any]) -> dict[str, Variable]:
    return {"variable": Variable(name, parse)}


def _text(name: str, text: str) -> str:
    return text


def _upper(name: str, text: str) -> str:
    return text.upper()


def _optional(name: str, text: str) -> str | None:
    return text or None


def _names(name: str, text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _whole(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {text!r}") from None


def _at_least_one(name: str, text: str) -> int:
    number = _whole(name, text)
    if number < 1:
        raise SettingsError(f"{name} must be at least 1")
    return number


def _port(name: str, text: str) -> int:
    number = _whole(name, text)
    if not 1 <= number <= 65535:  # noqa: PLR2004 - the range of a TCP port
        raise SettingsError(f"{name} must be a port from 1 to 65535, not {number}")
    return number


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SettingsError(f"{name} must be seconds above 0, not {text!r}")
    return value


# The longest deregistration delay an AWS target group takes: a drain delay sized to cover one
# (docs/proxy.md) fits.
MAX_DRAIN_DELAY_SECONDS = 3600


def _drain_delay(name: str, text: str) -> int:
    number = _whole(name, text)
    if not 1 <= number <= MAX_DRAIN_DELAY_SECONDS:
        raise SettingsError(
            f"{name} must be whole seconds from 1 to {MAX_DRAIN_DELAY_SECONDS}, not {number}:"
            " without a drain delay, connections still routed to a terminating pod are refused"
        )
    return number


def _one_of(*choices: str) -> Callable[[str, str], str]:
    def choice(name: str, text: str) -> str:
        if text not in choices:
            raise SettingsError(f"{name} must be {' or '.join(choices)}, not {text!r}")
        return text

    return choice


_plain_or_json = _one_of("plain", "json")
_keep_or_delete = _one_of("keep", "delete")


def _deletes(name: str, text: str) -> bool:
    return _keep_or_delete(name, text) == "delete"


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _gateway(name: str, text: str) -> GatewayRef | None:
    if not text.strip():
        return None
    parts = text.strip().split("/")
    if (
        len(parts) != 2  # noqa: PLR2004 - namespace and name
        or not _DNS_LABEL.fullmatch(parts[0])
        or not _DNS_NAME.fullmatch(parts[1])
        or len(parts[1]) > 253  # noqa: PLR2004 - the longest object name
    ):
        raise SettingsError(f"{name} must be <namespace>/<name> of a Gateway, not {text!r}")
    return GatewayRef(parts[0], parts[1])


def _node_groups(name: str, text: str) -> dict[str, NodeGroup]:
    return parse_node_groups(text)


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = field(default=(), metadata=_from("FERRY_NAMESPACES", _names))
    """Namespaces to watch (kopf patterns), comma-separated; empty means cluster-wide."""
    image: str = field(default=DEFAULT_IMAGE, metadata=_from("FERRY_IMAGE", _text))
    """Image of the proxy sidecar and the model-fetch init container: Ferry's own."""
    drain_delay: int = field(default=3, metadata=_from("FERRY_DRAIN_DELAY_SECONDS", _drain_delay))
    """Seconds a terminating pod's proxy keeps accepting new connections, for the APIs that set
    no spec.serving.drainDelaySeconds: until kube-proxy (and any load balancer in front) no
    longer sends it any. 2.9 times the longest lag measured from a pod's deletion to the last
    new connection kube-proxy sent it, 1.04 s, its minimum sync period
    (bench/network/endpoint_lag.py; docs/proxy.md, "Sizing the drain delay")."""
    node_groups: Mapping[str, NodeGroup] = field(
        default_factory=dict, metadata=_from("FERRY_NODE_GROUPS", _node_groups)
    )
    """The node groups APIs can ask for, a JSON list (parse_node_groups)."""
    default_node_group: str | None = field(
        default=None, metadata=_from("FERRY_DEFAULT_NODE_GROUP", _optional)
    )
    """Node group of APIs that name none (the local environment sends them to its node agent)."""
    gateway: GatewayRef | None = field(default=None, metadata=_from("FERRY_GATEWAY", _gateway))
    """The Gateway (<namespace>/<name>) every API gets an HTTPRoute on, unless its spec.route
    names its own or opts out; None: APIs name their own, or are reached at their Service only."""
    gateway_listener: str | None = field(
        default=None, metadata=_from("FERRY_GATEWAY_LISTENER", _optional)
    )
    """The listener (sectionName) of that Gateway the routes attach to; None: every listener
    that allows them."""
    liveness_port: int = field(default=8080, metadata=_from("FERRY_LIVENESS_PORT", _port))
    """kopf's liveness endpoint, probed by the chart's livenessProbe."""
    worker_limit: int = field(default=50, metadata=_from("FERRY_WORKER_LIMIT", _at_least_one))
    """Objects handled at once: bounds memory and API load when thousands change together."""
    log_format: str = field(default="plain", metadata=_from("FERRY_LOG_FORMAT", _plain_or_json))
    log_level: str = field(default="INFO", metadata=_from("FERRY_LOG_LEVEL", _upper))
    autoscale_interval: float = field(
        default=1.0, metadata=_from("FERRY_AUTOSCALE_INTERVAL", _seconds)
    )
    """Seconds between autoscaler ticks of each API: the tick the simulation chose the defaults
    for (docs/autoscaling.md). It sees a surge a second sooner than Knative's 2 s decider
    period: at 2 s the step trace refuses 229 more requests, one more than KPA. One operator
    keeps up with 1,000 APIs at 1 s (bench/autoscaler); 2 halves its CPU."""
    scrape_timeout: float = field(default=1.0, metadata=_from("FERRY_SCRAPE_TIMEOUT", _seconds))
    """Seconds a proxy has to answer /stats; one that does not is unknown demand, not zero."""
    scrape_concurrency: int = field(
        default=200, metadata=_from("FERRY_SCRAPE_CONCURRENCY", _at_least_one)
    )
    """Scrapes in flight at once across all APIs: bounds sockets and memory at thousands of pods."""
    metrics_port: int = field(default=9090, metadata=_from("FERRY_METRICS_PORT", _port))
    """Port of the operator's Prometheus /metrics."""
    log_group_prefix: str = field(default="/ferry", metadata=_from("FERRY_LOG_GROUP_PREFIX", _text))
    """CloudWatch Logs groups are <prefix>/<namespace>/<name>."""
    delete_log_groups: bool = field(
        default=False, metadata=_from("FERRY_LOG_GROUP_ON_DELETE", _deletes)
    )
    """Whether deleting an API deletes its log group (delete) or not (keep); kept by default,
    since logs outlive APIs."""
    capacity_interval: float = field(
        default=10.0, metadata=_from("FERRY_CAPACITY_INTERVAL", _seconds)
    )
    """Seconds between passes of the capacity loop over the node groups with an asgName: as
    often as cluster-autoscaler looks, and well within the minute an instance takes to boot."""
    scale_in_cooldown: float = field(
        default=600.0, metadata=_from("FERRY_SCALE_IN_COOLDOWN", _seconds)
    )
    """Seconds a node must have held no pod before its instance is terminated: long enough
    that a dip in traffic does not cost a node that the next burst needs again."""

    @classmethod
    def variables(cls) -> dict[str, Variable]:
        """The variable each setting is read from, by the setting's name."""
        return {setting.name: setting.metadata["variable"] for setting in fields(cls)}

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Every setting whose variable is set, parsed; the rest keep their defaults."""
        settings = cls(
            **{
                setting: source.parse(source.name, env[source.name])
                for setting, source in cls.variables().items()
                if source.name in env
            }
        )
        if settings.default_node_group not in (None, *settings.node_groups):
            raise SettingsError(
                f"FERRY_DEFAULT_NODE_GROUP {settings.default_node_group!r} is not in "
                "FERRY_NODE_GROUPS"
            )
        listener = settings.gateway_listener
        if listener is not None:
            if settings.gateway is None:
                raise SettingsError(
                    "FERRY_GATEWAY_LISTENER names a listener, but FERRY_GATEWAY names no Gateway"
                )
            if not _DNS_NAME.fullmatch(listener):
                raise SettingsError(
                    f"FERRY_GATEWAY_LISTENER must be a listener's name, not {listener!r}"
                )
        if settings.liveness_port == settings.metrics_port:
            raise SettingsError(
                f"FERRY_LIVENESS_PORT and FERRY_METRICS_PORT are both {settings.liveness_port}:"
                " the liveness probe and the metrics each need their own port"
            )
        return settings


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
    if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name):
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
