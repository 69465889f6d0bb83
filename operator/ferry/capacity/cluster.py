"""What the capacity loop reads from Pods and Nodes, as small frozen values.

A node belongs to a node group when it carries all of the group's labels, or the label
ferry.dev/node-group with the group's name; a pending pod wants a group when its nodeSelector
asks for either (the Deployment template writes the group's labels there). A node's EC2
instance is named by its spec.providerID, aws:///<zone>/<instance-id>, as the AWS cloud
provider (and cluster-autoscaler after it) writes it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ferry import names
from ferry.capacity.node_group import NodeGroup
from ferry.capacity.resources import Resources, pod_requests, total
from ferry.status.pods import unschedulable

NODE_GROUP_LABEL = "ferry.dev/node-group"
SCALE_IN_ANNOTATION = "ferry.dev/scale-in"
"""Set, with the time, on a node the loop cordoned to remove: whoever reads the node sees why it
is cordoned, and the loop knows which cordons are its own to finish or undo."""

_PROVIDER_ID = re.compile(r"aws:///[^/]*/(i-[0-9a-zA-Z]+)")
_TERMINAL_PHASES = ("Succeeded", "Failed")
_MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

ApiKey = tuple[str, str]
"""(namespace, RealtimeAPI name)."""


def instance_id(provider_id: str | None) -> str | None:
    match = _PROVIDER_ID.fullmatch(provider_id or "")
    return match.group(1) if match else None


def watched(namespace: str, patterns: Iterable[str]) -> bool:
    """Whether the operator watches `namespace`: kopf's patterns, globs with "!" to exclude;
    none means every namespace."""
    patterns = list(patterns)
    included = [p for p in patterns if not p.startswith("!")]
    if included and not any(fnmatch.fnmatchcase(namespace, p) for p in included):
        return False
    return not any(fnmatch.fnmatchcase(namespace, p[1:]) for p in patterns if p.startswith("!"))


def _wants(selector: Mapping[str, str], group: NodeGroup) -> bool:
    if selector.get(NODE_GROUP_LABEL) == group.name:
        return True
    return bool(group.labels) and all(selector.get(k) == v for k, v in group.labels.items())


def group_of_labels(labels: Mapping[str, str], groups: Iterable[NodeGroup]) -> NodeGroup | None:
    """The group whose labels these are (a node's labels, or a pod's nodeSelector)."""
    return next((group for group in groups if _wants(labels, group)), None)


@dataclass(frozen=True, slots=True)
class PendingPod:
    """A Ferry pod the scheduler has not placed, and the group it asks for."""

    namespace: str
    name: str
    api: str
    group: str
    requests: Resources
    unschedulable: bool
    """The scheduler tried and found no node; a pod it has not tried yet is not a reason to
    grow, but it is a reason not to shrink."""

    @property
    def api_key(self) -> ApiKey:
        return (self.namespace, self.api)


def pending_pod(pod: Mapping[str, Any], groups: Iterable[NodeGroup]) -> PendingPod | None:
    """The pod as the loop sees it, or None: not Ferry's, placed, leaving, or for no group."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    status = pod.get("status") or {}
    labels = meta.get("labels") or {}
    api = labels.get(names.API_LABEL)
    if (
        labels.get("app.kubernetes.io/managed-by") != names.MANAGED_BY
        or not api
        or spec.get("nodeName")
        or meta.get("deletionTimestamp")
        or status.get("phase", "Pending") != "Pending"
    ):
        return None
    group = group_of_labels(spec.get("nodeSelector") or {}, groups)
    if group is None:
        return None
    return PendingPod(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        api=str(api),
        group=group.name,
        requests=pod_requests(spec),
        unschedulable=unschedulable(pod) is not None,
    )


def holds_node(pod: Mapping[str, Any]) -> bool:
    """Whether removing the pod's node would stop something that runs there. DaemonSet pods
    run on every node and their controller needs no home for them; mirror pods are the node's
    own; finished pods run nothing."""
    meta = pod.get("metadata") or {}
    if (pod.get("status") or {}).get("phase") in _TERMINAL_PHASES:
        return False
    if _MIRROR_ANNOTATION in (meta.get("annotations") or {}):
        return False
    return not any(ref.get("kind") == "DaemonSet" for ref in meta.get("ownerReferences") or ())


def pod_name(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _reserved(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in _TERMINAL_PHASES


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    uid: str
    group: str
    instance_id: str | None
    allocatable: Resources
    used: Resources
    """Requests of the pods on it that still run (the scheduler's own count)."""
    holders: tuple[str, ...]
    """namespace/name of the pods that keep the node (see holds_node)."""
    cordoned: bool
    marked: bool
    """Cordoned by the capacity loop to remove it (SCALE_IN_ANNOTATION)."""

    @property
    def free(self) -> Resources:
        return self.allocatable - self.used

    @property
    def idle(self) -> bool:
        return not self.holders


def node_view(
    node: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], group: NodeGroup
) -> NodeView:
    meta, spec = node.get("metadata") or {}, node.get("spec") or {}
    pods = list(pods)
    return NodeView(
        name=str(meta.get("name")),
        uid=str(meta.get("uid", "")),
        group=group.name,
        instance_id=instance_id(spec.get("providerID")),
        allocatable=Resources.of((node.get("status") or {}).get("allocatable")),
        used=total(pod_requests(p.get("spec") or {}) for p in pods if _reserved(p)),
        holders=tuple(sorted(pod_name(p) for p in pods if holds_node(p))),
        cordoned=bool(spec.get("unschedulable")),
        marked=SCALE_IN_ANNOTATION in (meta.get("annotations") or {}),
    )
