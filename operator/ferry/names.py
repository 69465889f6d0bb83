"""Names, labels and annotations Ferry gives the objects it derives from a RealtimeAPI."""

from __future__ import annotations

API_LABEL = "ferry.dev/api"
# Which of an API's Deployments a pod belongs to: the stable one (predictor) or its canary.
COMPONENT_LABEL = "app.kubernetes.io/component"
PREDICTOR = "predictor"
CANARY = "canary"
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
    """The stable Deployment's selector, as it was created (a Deployment's selector cannot
    change): it matches the canary's pods too, whose ReplicaSets the controller references
    keep apart."""
    return {API_LABEL: api}


def component_labels(api: str, component: str = PREDICTOR) -> dict[str, str]:
    """The pods of one of the API's Deployments: the selector of its Service, and of the
    canary's Deployment."""
    return {API_LABEL: api, COMPONENT_LABEL: component}


def labels(api: str, component: str = PREDICTOR) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": api,
        "app.kubernetes.io/instance": api,
        COMPONENT_LABEL: component,
        "app.kubernetes.io/part-of": "ferry",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        API_LABEL: api,
    }


def selector(api: str) -> str:
    """The stable version's pods (status.selector, which the scale subresource reports)."""
    return ",".join(f"{k}={v}" for k, v in component_labels(api).items())


def canary_name(api: str) -> str:
    """The canary's Deployment and Service: API names are at most 50 characters, so this fits
    the 63 of a Service's."""
    return f"{api}-canary"


def endpoint(api: str, namespace: str) -> str:
    return f"http://{api}.{namespace}.svc:{SERVICE_PORT}/"
