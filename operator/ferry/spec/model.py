"""The typed RealtimeAPI spec, parsed from an object the API server has validated and defaulted.

The schema already refuses malformed input; what is left here are the checks only the operator
can make (against its own settings, or of an object stored before the CRD refused what it
holds), reported as InvalidSpecError with the field to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ferry.autoscaling.policy import (
    AutoscalingPolicy,
    DurationError,
    PolicyError,
    default_target_in_flight,
    parse_duration,
)


class InvalidSpecError(ValueError):
    """A spec the user must change; retrying will not help."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"spec.{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str | None = None
    value_from: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Resources:
    cpu: str
    memory: str
    gpu: int


@dataclass(frozen=True)
class Predictor:
    image: str
    port: int
    resources: Resources
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    readiness_path: str | None = None


@dataclass(frozen=True)
class ModelSource:
    uri: str
    version: str

    @property
    def bucket(self) -> str:
        return self.uri.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        parts = self.uri.removeprefix("s3://").split("/", 1)
        return parts[1].strip("/") if len(parts) > 1 else ""


@dataclass(frozen=True)
class Serving:
    max_concurrency: int
    max_queue_length: int
    timeout_seconds: int
    drain_delay_seconds: int | None = None
    """The API's own drain delay; None: the operator's (Settings.drain_delay)."""


@dataclass(frozen=True)
class Autoscaling:
    enabled: bool
    min_replicas: int
    max_replicas: int
    target_in_flight: float
    window: str
    panic_window: str
    panic_threshold: float
    upscale_stabilization: str
    downscale_stabilization: str
    max_upscale_factor: float
    max_downscale_factor: float
    tolerance: float


@dataclass(frozen=True)
class Rollout:
    max_surge: int | str
    max_unavailable: int | str
    progress_deadline_seconds: int
    auto_rollback: bool


@dataclass(frozen=True)
class GatewayRef:
    """A Gateway an HTTPRoute attaches to (a Gateway API parentRef), and optionally one of its
    listeners."""

    namespace: str
    name: str
    section: str | None = None

    def describe(self) -> str:
        listener = f", listener {self.section}" if self.section else ""
        return f"Gateway {self.namespace}/{self.name}{listener}"


@dataclass(frozen=True)
class Route:
    """How the API is reached from outside the cluster: an HTTPRoute on a Gateway."""

    enabled: bool = True
    gateway: GatewayRef | None = None
    """The API's own Gateway; None: the operator's (Settings.gateway)."""
    hostname: str | None = None
    path_prefix: str | None = None
    """None: /<namespace>/<name>."""


@dataclass(frozen=True)
class Canary:
    """A candidate version served beside the stable one, for a share of the requests."""

    traffic_percent: int
    image: str | None = None
    """None: the stable's image."""
    model_version: str | None = None
    """None: the stable's model version."""


@dataclass(frozen=True)
class RealtimeAPISpec:
    predictor: Predictor
    serving: Serving
    autoscaling: Autoscaling
    rollout: Rollout
    retention_days: int
    model: ModelSource | None = None
    replicas: int | None = None
    node_group: str | None = None
    route: Route = Route()
    canary: Canary | None = None
    policy: AutoscalingPolicy = field(init=False, repr=False, compare=False)
    """The autoscaling block in seconds, checked: a spec whose policy the autoscaler could not
    follow is refused where the reconciler reads it, never found out by the autoscaler alone."""

    def __post_init__(self) -> None:
        try:
            policy = autoscaling_policy(self.autoscaling, self.serving)
        except (DurationError, PolicyError) as error:
            raise InvalidSpecError("autoscaling", str(error)) from None
        object.__setattr__(self, "policy", policy)
        if self.canary is not None:
            _check_canary(self.canary, self.predictor, self.model)

    def canary_spec(self) -> RealtimeAPISpec:
        """The spec the canary's Deployment is rendered from: the stable's, with the canary's
        image and model version; no canary of its own."""
        canary = self.canary
        if canary is None:
            raise ValueError("the spec has no canary")
        predictor = replace(self.predictor, image=canary.image or self.predictor.image)
        model = self.model
        if model is not None and canary.model_version is not None:
            model = replace(model, version=canary.model_version)
        return replace(self, predictor=predictor, model=model, canary=None)

    @property
    def initial_replicas(self) -> int:
        """Replicas of a new Deployment; afterwards the autoscaler or `kubectl scale` owns them."""
        if not self.autoscaling.enabled and self.replicas is not None:
            return self.replicas
        return self.autoscaling.min_replicas


def _check_canary(canary: Canary, predictor: Predictor, model: ModelSource | None) -> None:
    """What the CRD's rules refuse, for an object the API server did not check (`ferry
    render`'s input)."""
    if canary.model_version is not None and model is None:
        raise InvalidSpecError(
            "canary.modelVersion", "needs spec.model: the canary's version is one of its model's"
        )
    image = canary.image or predictor.image
    version = canary.model_version or (model.version if model else None)
    if image == predictor.image and version == (model.version if model else None):
        raise InvalidSpecError(
            "canary", "is the stable version itself: give it another image or modelVersion"
        )


def autoscaling_policy(autoscaling: Autoscaling, serving: Serving) -> AutoscalingPolicy:
    """The policy of a spec's autoscaling and serving, times in seconds; DurationError or
    PolicyError if the user must fix it."""
    return AutoscalingPolicy(
        target_in_flight=autoscaling.target_in_flight,
        min_replicas=autoscaling.min_replicas,
        max_replicas=autoscaling.max_replicas,
        window=_seconds("window", autoscaling.window),
        panic_window=_seconds("panicWindow", autoscaling.panic_window),
        panic_threshold=autoscaling.panic_threshold,
        upscale_stabilization=_seconds("upscaleStabilization", autoscaling.upscale_stabilization),
        downscale_stabilization=_seconds(
            "downscaleStabilization", autoscaling.downscale_stabilization
        ),
        max_upscale_factor=autoscaling.max_upscale_factor,
        max_downscale_factor=autoscaling.max_downscale_factor,
        tolerance=autoscaling.tolerance,
        max_concurrency=serving.max_concurrency,
        max_queue_length=serving.max_queue_length,
    )


def _seconds(field: str, text: str) -> float:
    try:
        return parse_duration(text)
    except DurationError as error:
        raise DurationError(f"{field}: {error}") from None


def _target_in_flight(scaling: Mapping[str, Any], max_concurrency: int) -> float:
    """The spec's target, or the default when it has none: a target of zero is the user's, and
    the policy refuses it (the CRD does too, but not for an API stored before it did)."""
    target = scaling.get("targetInFlight")
    return default_target_in_flight(max_concurrency) if target is None else float(target)


def _quantity(value: int | str) -> str:
    return str(value)


def _route(raw: Mapping[str, Any] | None, namespace: str) -> Route:
    if not raw:
        return Route()
    gateway = raw.get("gateway")
    return Route(
        enabled=bool(raw.get("enabled", True)),
        gateway=GatewayRef(
            gateway.get("namespace") or namespace, gateway["name"], gateway.get("sectionName")
        )
        if gateway
        else None,
        hostname=raw.get("hostname"),
        path_prefix=raw.get("pathPrefix"),
    )


def _canary(raw: Mapping[str, Any] | None) -> Canary | None:
    if raw is None:
        return None
    version = raw.get("modelVersion")
    return Canary(
        traffic_percent=int(raw["trafficPercent"]),
        image=raw.get("image"),
        model_version=None if version is None else str(version),
    )


def parse_spec(raw: Mapping[str, Any], namespace: str = "default") -> RealtimeAPISpec:
    """Map a defaulted spec onto the model; a field the API server should fill is an error.
    `namespace` is the API's: a Gateway named without one is in it, as Gateway API has it."""
    try:
        predictor, serving = raw["predictor"], raw["serving"]
        scaling, rollout = raw["autoscaling"], raw["rollout"]
        resources = predictor["resources"]
        model = raw.get("model")
        return RealtimeAPISpec(
            predictor=Predictor(
                image=predictor["image"],
                port=int(predictor["port"]),
                resources=Resources(
                    cpu=_quantity(resources["cpu"]),
                    memory=_quantity(resources["memory"]),
                    gpu=int(resources.get("gpu", 0)),
                ),
                command=tuple(predictor.get("command") or ()),
                args=tuple(predictor.get("args") or ()),
                env=tuple(
                    EnvVar(e["name"], e.get("value"), e.get("valueFrom"))
                    for e in predictor.get("env") or ()
                ),
                readiness_path=predictor.get("readinessPath"),
            ),
            serving=Serving(
                max_concurrency=int(serving["maxConcurrency"]),
                max_queue_length=int(serving["maxQueueLength"]),
                timeout_seconds=int(serving["timeoutSeconds"]),
                drain_delay_seconds=serving.get("drainDelaySeconds"),
            ),
            autoscaling=Autoscaling(
                enabled=bool(scaling["enabled"]),
                min_replicas=int(scaling["minReplicas"]),
                max_replicas=int(scaling["maxReplicas"]),
                target_in_flight=_target_in_flight(scaling, int(serving["maxConcurrency"])),
                window=scaling["window"],
                panic_window=scaling["panicWindow"],
                panic_threshold=float(scaling["panicThreshold"]),
                upscale_stabilization=scaling["upscaleStabilization"],
                downscale_stabilization=scaling["downscaleStabilization"],
                max_upscale_factor=float(scaling["maxUpscaleFactor"]),
                max_downscale_factor=float(scaling["maxDownscaleFactor"]),
                tolerance=float(scaling["tolerance"]),
            ),
            rollout=Rollout(
                max_surge=rollout["maxSurge"],
                max_unavailable=rollout["maxUnavailable"],
                progress_deadline_seconds=int(rollout["progressDeadlineSeconds"]),
                auto_rollback=bool(rollout["autoRollback"]),
            ),
            retention_days=int(raw["logging"]["retentionDays"]),
            model=ModelSource(model["uri"], str(model["version"])) if model else None,
            replicas=raw.get("replicas"),
            node_group=raw.get("nodeGroup"),
            route=_route(raw.get("route"), namespace),
            canary=_canary(raw.get("canary")),
        )
    except InvalidSpecError:
        raise
    except KeyError as missing:
        raise InvalidSpecError(str(missing.args[0]), "is missing; is the CRD installed?") from None
    except (TypeError, ValueError) as error:
        raise InvalidSpecError("", f"cannot be read: {error}") from None
