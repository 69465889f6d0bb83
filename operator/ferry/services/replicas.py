"""The first replica count of a Deployment the reconciler has just created.

The reconciler's applies never mention replicas, so that it can never take them back from the
autoscaler; the first count is written through the scale subresource, under the autoscaler's
field manager, as the autoscaler writes every later one.
"""

from __future__ import annotations

from typing import Any

from ferry import names
from ferry.adapters.kube import Kube


async def set_initial_replicas(
    kube: Kube, path: str, replicas: int, created: dict[str, Any]
) -> dict[str, Any]:
    """Scale the Deployment at `path`, `created` by the apply, to `replicas`; it as it is now."""
    if created["spec"].get("replicas") == replicas:
        return created
    await kube.patch_merge(
        f"{path}/scale", {"spec": {"replicas": replicas}}, names.SCALER_FIELD_MANAGER
    )
    return await kube.get(path) or created
