"""What a rollback reads from the cluster: the ReplicaSets it could return to, and the pod
template of the one it returns to.

The Deployment controller keeps a ReplicaSet per recent pod template (revisionHistoryLimit), each
with the template exactly as it ran, Ferry's template-hash annotation included; putting one back
makes the controller scale that ReplicaSet up again, as `kubectl rollout undo` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferry import names
from ferry.adapters.kube import Kube
from ferry.render.children import reusable_template
from ferry.status.rollout import template_hash_of


def replica_sets_path(namespace: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/replicasets"


async def restorable_templates(kube: Kube, namespace: str, api: str) -> frozenset[str]:
    """The template hashes of the API's ReplicaSets."""
    sets = await kube.list(replica_sets_path(namespace), names.selector(api))
    return frozenset(digest for found in sets if (digest := template_hash_of(found)))


async def restored_template(
    kube: Kube, namespace: str, api: str, deployment: Mapping[str, Any] | None, digest: str
) -> dict[str, Any] | None:
    """The pod template with this hash, from the Deployment if it has it already (a rollback
    already applied), else from a ReplicaSet; None if neither has it any more."""
    if deployment is not None and template_hash_of(deployment) == digest:
        return reusable_template(deployment["spec"]["template"])
    for found in await kube.list(replica_sets_path(namespace), names.selector(api)):
        if template_hash_of(found) == digest:
            return reusable_template(found["spec"]["template"])
    return None
