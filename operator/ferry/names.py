"""Names, labels and annotations Ferry gives the objects it derives from a RealtimeAPI."""

from __future__ import annotations

API_LABEL = "ferry.dev/api"
MANAGED_BY = "ferry"
FIELD_MANAGER = "ferry"
# The autoscaler writes replicas under a field manager of its own, so the reconciler's
# server-side applies, which never mention replicas, never take them back.
SCALER_FIELD_MANAGER = "ferry-autoscaler"
# kopf's finalizer on every RealtimeAPI; crds/realtimeapis.ferry.dev-finalizer.yaml adds it at
# creation.
FINALIZER = "ferry.dev/finalizer"

GENERATION_ANNOTATION = "ferry.dev/api-generation"
MODEL_VERSION_ANNOTATION = "ferry.dev/model-version"
IMAGE_ANNOTATION = "ferry.dev/image"
# A digest of the rest of the pod template: the identity of a revision, found again on its
# ReplicaSet and its pods.
TEMPLATE_HASH_ANNOTATION = "ferry.dev/template-hash"

PROXY_PORT = 8888
PROXY_ADMIN_PORT = 8889
SERVICE_PORT = 80
MODEL_DIR = "/mnt/model"


def selector_labels(api: str) -> dict[str, str]:
    return {API_LABEL: api}


def labels(api: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": api,
        "app.kubernetes.io/instance": api,
        "app.kubernetes.io/component": "predictor",
        "app.kubernetes.io/part-of": "ferry",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **selector_labels(api),
    }


def selector(api: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector_labels(api).items())


def endpoint(api: str, namespace: str) -> str:
    return f"http://{api}.{namespace}.svc:{SERVICE_PORT}/"
