"""The canary's pure parts: its spec, its Deployment, Service and weight on the route, and what
the status makes of it (the Canary condition, Ready, status.canary, its revisions and Events)."""

from __future__ import annotations

from typing import Any, cast

import kopf
import pytest

from ferry import names
from ferry.handlers.indexes import api_pods, api_replicas, canary_pods, canary_replicas
from ferry.render.children import check_canary, render_deployment, render_route, render_service
from ferry.settings import Settings
from ferry.spec.model import Canary, GatewayRef, InvalidSpecError, RealtimeAPISpec, parse_spec
from ferry.spec.resource import ApiRef
from ferry.spec.schema import with_defaults
from ferry.status.canary import (
    CanaryBlock,
    CanaryView,
    desired_weight,
    recorded_block,
    removal_due,
)
from ferry.status.compute import compute_status
from ferry.status.news import canary_news, rollout_news
from ferry.status.pods import PodState
from ferry.status.revisions import (
    HISTORY_LIMIT,
    Outcome,
    Progress,
    Template,
    last_stable,
    parse_revisions,
    plan_rollback,
    revisions_status,
    track,
    track_canary,
)
from ferry.status.route import RouteTarget, RouteVerdict, canary_weight_of

API = ApiRef("iris", "ml", "8d6e-uid", 2)
STABLE_IMAGE, CANARY_IMAGE = "registry.example.com/iris:1.0.0", "registry.example.com/iris:2.0.0"
SETTINGS = Settings(image="ghcr.io/ferry-dev/ferry:test")
NOW, LATER = "2026-12-07T10:00:00Z", "2026-12-07T10:00:09Z"
TARGET = RouteTarget(GatewayRef("gateways", "public"), None, "/ml/iris")


def spec(**fields: Any) -> RealtimeAPISpec:
    return parse_spec(with_defaults({"predictor": {"image": STABLE_IMAGE}, **fields}), "ml")


MODEL = {"uri": "s3://models/iris", "version": "7"}


# --- the spec --------------------------------------------------------------------------------


def test_a_canary_runs_the_stable_spec_with_its_own_image_and_model_version() -> None:
    parsed = spec(
        model=MODEL, canary={"trafficPercent": 10, "image": CANARY_IMAGE, "modelVersion": "8"}
    )
    assert parsed.canary == Canary(10, CANARY_IMAGE, "8")
    candidate = parsed.canary_spec()
    assert (candidate.predictor.image, candidate.model) == (
        CANARY_IMAGE,
        parsed.model.__class__("s3://models/iris", "8"),
    )
    assert candidate.canary is None
    assert candidate.serving == parsed.serving
    # Only a model version: the stable's image.
    assert (
        spec(model=MODEL, canary={"trafficPercent": 5, "modelVersion": "8"})
        .canary_spec()
        .predictor.image
        == STABLE_IMAGE
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"canary": {"trafficPercent": 5, "modelVersion": "8"}}, "spec.canary.modelVersion"),
        ({"canary": {"trafficPercent": 5, "image": STABLE_IMAGE}}, "the stable version itself"),
        (
            {"model": MODEL, "canary": {"trafficPercent": 5, "modelVersion": "7"}},
            "the stable version itself",
        ),
    ],
    ids=["a-model-version-without-a-model", "the-stable-image", "the-stable-model-version"],
)
def test_a_canary_the_crd_refuses_is_refused_offline_too(
    fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidSpecError, match=words):
        spec(**fields)


def test_a_canary_without_a_route_is_refused_saying_how_to_give_it_one() -> None:
    canary = {"trafficPercent": 10, "image": CANARY_IMAGE}
    with pytest.raises(InvalidSpecError) as no_gateway:
        check_canary(spec(canary=canary), None)
    assert str(no_gateway.value) == (
        "spec.canary: needs a Gateway: name one in spec.route.gateway or configure the "
        "operator's FERRY_GATEWAY"
    )
    with pytest.raises(InvalidSpecError, match=r"spec\.route\.enabled turns off"):
        check_canary(spec(canary=canary, route={"enabled": False}), None)
    check_canary(spec(canary=canary), TARGET)
    check_canary(spec(), None)


# --- what is rendered ------------------------------------------------------------------------


def canary_deployment() -> dict[str, Any]:
    parsed = spec(model=MODEL, canary={"trafficPercent": 10, "image": CANARY_IMAGE})
    return render_deployment(
        API,
        parsed.canary_spec(),
        SETTINGS,
        model_version="7",
        replicas=None,
        component=names.CANARY,
    )


def test_the_canary_deployment_is_the_apis_own_beside_the_stable_one() -> None:
    rendered = canary_deployment()
    meta = rendered["metadata"]
    assert (meta["name"], meta["ownerReferences"][0]["uid"]) == ("iris-canary", API.uid)
    selector = {names.API_LABEL: "iris", "app.kubernetes.io/component": "canary"}
    assert rendered["spec"]["selector"] == {"matchLabels": selector}
    template = rendered["spec"]["template"]
    assert selector.items() <= template["metadata"]["labels"].items()
    predictor = template["spec"]["containers"][0]
    assert predictor["image"] == CANARY_IMAGE
    # It serves the same API: the predictor is told the API's name, not the Deployment's.
    assert {"name": "FERRY_API", "value": "iris"} in predictor["env"]
    assert template["metadata"]["annotations"][names.IMAGE_ANNOTATION] == CANARY_IMAGE
    assert template["metadata"]["annotations"][names.MODEL_VERSION_ANNOTATION] == "7"


def test_the_stable_deployment_keeps_its_selector_and_the_services_tell_the_pods_apart() -> None:
    stable = render_deployment(API, spec(), SETTINGS, model_version=None, replicas=None)
    assert stable["spec"]["selector"] == {"matchLabels": {names.API_LABEL: "iris"}}
    assert stable["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "predictor"
    )
    canary = render_service(API, names.CANARY)
    assert canary["metadata"]["name"] == "iris-canary"
    assert canary["spec"]["selector"] == {
        names.API_LABEL: "iris",
        "app.kubernetes.io/component": "canary",
    }
    assert render_service(API)["spec"]["selector"]["app.kubernetes.io/component"] == "predictor"


@pytest.mark.parametrize(
    ("weight", "backends"),
    [
        (0, [{"name": "iris", "port": 80}]),
        (
            10,
            [
                {"name": "iris", "port": 80, "weight": 90},
                {"name": "iris-canary", "port": 80, "weight": 10},
            ],
        ),
        (
            100,
            [
                {"name": "iris", "port": 80, "weight": 0},
                {"name": "iris-canary", "port": 80, "weight": 100},
            ],
        ),
    ],
)
def test_the_route_weighs_the_canary_only_while_it_has_a_weight(
    weight: int, backends: list[dict[str, Any]]
) -> None:
    route = render_route(API, spec(), TARGET.gateway, weight)
    assert route["spec"]["rules"][0]["backendRefs"] == backends
    assert canary_weight_of(route) == weight


@pytest.mark.parametrize(
    ("wanted", "available", "weight"),
    [(Canary(30, CANARY_IMAGE), 0, 0), (Canary(30, CANARY_IMAGE), 1, 30), (None, 2, 0)],
    ids=["not-ready", "ready", "not-wanted"],
)
def test_the_canary_is_weighed_only_while_it_has_an_available_replica(
    wanted: Canary | None, available: int, weight: int
) -> None:
    assert desired_weight(wanted, {"status": {"availableReplicas": available}}) == weight


# --- the status ------------------------------------------------------------------------------


def rolled_out(
    *,
    image: str = STABLE_IMAGE,
    digest: str = "stable-1",
    generation: int = 2,
    desired: int = 2,
    available: int | None = None,
    updated: int | None = None,
    reason: str = "NewReplicaSetAvailable",
) -> dict[str, Any]:
    available = desired if available is None else available
    updated = desired if updated is None else updated
    return {
        "metadata": {
            "generation": 4,
            "annotations": {names.GENERATION_ANNOTATION: str(generation)},
        },
        "spec": {
            "replicas": desired,
            "template": {
                "metadata": {
                    "annotations": {
                        names.TEMPLATE_HASH_ANNOTATION: digest,
                        names.IMAGE_ANNOTATION: image,
                    }
                }
            },
        },
        "status": {
            "observedGeneration": 4,
            "replicas": max(desired, updated),
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": [{"type": "Progressing", "status": "True", "reason": reason}],
        },
    }


ON_ROUTE = RouteVerdict("True", "Accepted", "ok", "http://10.0.0.7/ml/iris/", 30)
WANTED = Canary(30, CANARY_IMAGE)


def status(
    canary: CanaryView | None,
    route: RouteVerdict | None = ON_ROUTE,
    previous: dict[str, Any] | None = None,
    *,
    stable: dict[str, Any] | None = None,
    now: str = NOW,
    generation: int = 2,
    pods: tuple[PodState, ...] = (),
) -> dict[str, Any]:
    return compute_status(
        pods=pods,
        api="iris",
        namespace="ml",
        generation=generation,
        previous=previous or {},
        deployment=stable or rolled_out(),
        model=None,
        now=now,
        route=route,
        canary=canary,
    )


def running(**fields: Any) -> dict[str, Any]:
    return rolled_out(image=CANARY_IMAGE, digest="canary-1", desired=1, **fields)


def conditions_of(computed: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in computed["conditions"]}


def test_a_canary_taking_its_share_on_the_accepted_route_is_ready() -> None:
    computed = status(CanaryView(WANTED, running()))
    assert conditions_of(computed)["Ready"] == ("True", "Available")
    assert conditions_of(computed)["Canary"] == ("True", "TrafficSplit")
    assert computed["phase"] == "Ready"
    assert computed["canary"] == {
        "image": CANARY_IMAGE,
        "trafficPercent": 30,
        "replicas": 1,
        "readyReplicas": 1,
    }
    canary = next(c for c in computed["conditions"] if c["type"] == "Canary")
    assert canary["message"] == (
        f"30% of the requests go to the canary (image {CANARY_IMAGE}): 1/1 replicas available"
    )


@pytest.mark.parametrize(
    ("view", "route", "canary", "phase"),
    [
        (CanaryView(WANTED, None), ON_ROUTE, ("Unknown", "CanaryPending"), "Progressing"),
        (
            CanaryView(WANTED, running(available=0, reason="ReplicaSetUpdated")),
            RouteVerdict("True", "Accepted", "ok"),
            ("Unknown", "CanaryStarting"),
            "Progressing",
        ),
        (
            CanaryView(WANTED, running(available=1, updated=0, reason="ReplicaSetUpdated")),
            ON_ROUTE,
            ("Unknown", "CanaryRollingOut"),
            "Progressing",
        ),
        # Available, but the Gateway has not taken its weight yet.
        (
            CanaryView(WANTED, running()),
            RouteVerdict("Unknown", "WaitingForGateway", "waiting", None, 30),
            ("Unknown", "ShiftingTraffic"),
            "Progressing",
        ),
        (
            CanaryView(WANTED, running()),
            RouteVerdict("True", "Accepted", "ok"),
            ("Unknown", "ShiftingTraffic"),
            "Progressing",
        ),
        (
            CanaryView(WANTED, running(available=0, reason="ProgressDeadlineExceeded")),
            ON_ROUTE,
            ("False", "ProgressDeadlineExceeded"),
            "Degraded",
        ),
        (
            CanaryView(WANTED, None, CanaryBlock("VersionNotFound", "no objects under s3://…/9/")),
            ON_ROUTE,
            ("False", "VersionNotFound"),
            "Degraded",
        ),
    ],
    ids=[
        "not-created",
        "starting",
        "rolling-out",
        "gateway-not-answered",
        "weight-not-on-route",
        "past-its-deadline",
        "blocked",
    ],
)
def test_ready_waits_for_the_canary_and_its_weight_on_the_route(
    view: CanaryView, route: RouteVerdict, canary: tuple[str, str], phase: str
) -> None:
    computed = status(view, route)
    conditions = conditions_of(computed)
    if route.status == "True":
        assert conditions["Ready"] == ("False", "CanaryInProgress")
    else:  # the route's own reason comes first
        assert conditions["Ready"] == ("False", "WaitingForGateway")
    assert conditions["Canary"] == canary
    assert computed["phase"] == phase


def test_what_holds_the_canarys_pods_up_is_told() -> None:
    stuck = PodState(
        "iris-canary-5f-x",
        "10.0.0.9",
        "canary-1",
        False,
        False,
        None,
        "container predictor: ErrImagePull: no such image",
    )
    unrelated = PodState("iris-6c-y", "10.0.0.8", "stable-1", False, False, None, "elsewhere")
    computed = status(
        CanaryView(WANTED, running(available=0, reason="ReplicaSetUpdated")),
        pods=(unrelated, stuck),
    )
    ready = next(c for c in computed["conditions"] if c["type"] == "Ready")
    assert ready["message"] == (
        "starting the canary: 0/1 replicas available; pod iris-canary-5f-x: container "
        "predictor: ErrImagePull: no such image; it gets no requests until one is"
    )


def test_the_canary_never_holds_back_a_stable_rollout_s_own_reason() -> None:
    stable = rolled_out(updated=1, reason="ReplicaSetUpdated")
    computed = status(CanaryView(WANTED, None), stable=stable)
    assert conditions_of(computed)["Ready"] == ("False", "RolloutInProgress")


def test_an_api_without_a_canary_has_no_canary_condition_or_field() -> None:
    computed = status(None, RouteVerdict("True", "Accepted", "ok"))
    assert "Canary" not in conditions_of(computed)
    assert "canary" not in computed
    gone = status(CanaryView(None, None), previous={"canary": {"image": CANARY_IMAGE}})
    assert gone["canary"] is None  # removed by the merge patch
    assert "Canary" not in conditions_of(gone)


def test_a_removed_canary_is_deleted_after_the_drain_once_the_gateway_has_answered() -> None:
    view = CanaryView(None, running(), drain_seconds=9)
    # The route still carries the canary, or the Gateway has not answered for it yet.
    for route in (
        ON_ROUTE,
        RouteVerdict("Unknown", "WaitingForGateway", "waiting", None, 0),
    ):
        waiting = status(view, route)
        assert "removeAfter" not in waiting["canary"]
        assert conditions_of(waiting)["Canary"] == ("False", "CanaryAborted")
        assert removal_due(waiting, LATER) is None
    answered = status(view, RouteVerdict("True", "Accepted", "ok"))
    assert answered["canary"]["removeAfter"] == LATER
    assert answered["canary"]["trafficPercent"] == 0
    # The stable version serves alone: Ready does not wait for the canary's deletion.
    assert conditions_of(answered)["Ready"] == ("True", "Available")
    assert removal_due(answered, NOW) is False
    assert removal_due(answered, LATER) is True
    # Written once: a later status write keeps the time.
    again = status(view, RouteVerdict("True", "Accepted", "ok"), answered, now=LATER)
    assert again["canary"]["removeAfter"] == LATER


def test_a_removed_canary_is_promoted_when_the_stable_version_runs_what_it_ran() -> None:
    started = status(CanaryView(WANTED, running()))
    promoted_stable = rolled_out(image=CANARY_IMAGE, digest="stable-2", generation=3)
    promoted = status(
        CanaryView(None, running()),
        RouteVerdict("True", "Accepted", "ok"),
        started,
        stable=promoted_stable,
        generation=3,
    )
    assert conditions_of(promoted)["Canary"] == ("False", "CanaryPromoted")
    history = [
        (r["revision"], r["image"], r["outcome"], r.get("canary", False))
        for r in promoted["revisions"]
    ]
    assert history == [
        (1, STABLE_IMAGE, "Complete", False),
        (2, CANARY_IMAGE, "Promoted", True),
        (3, CANARY_IMAGE, "Complete", False),
    ]
    assert [(n.kind, n.reason) for n in canary_news(started, promoted)] == [
        ("Normal", "CanaryPromoted")
    ]

    aborted = status(
        CanaryView(None, running()),
        RouteVerdict("True", "Accepted", "ok"),
        started,
        stable=rolled_out(generation=3),
        generation=3,
    )
    assert conditions_of(aborted)["Canary"] == ("False", "CanaryAborted")
    assert [(r["outcome"], r.get("canary", False)) for r in aborted["revisions"]] == [
        ("Complete", False),
        ("Aborted", True),
    ]
    assert [(n.kind, n.reason) for n in canary_news(started, aborted)] == [
        ("Normal", "CanaryAborted")
    ]


def test_the_outcome_waits_for_the_stable_version_of_the_generation_that_removed_it() -> None:
    started = status(CanaryView(WANTED, running()))
    # Generation 3 took the canary out; the stable Deployment is still generation 2's.
    early = status(
        CanaryView(None, running()), RouteVerdict("True", "Accepted", "ok"), started, generation=3
    )
    assert conditions_of(early)["Canary"] == ("False", "CanaryRemoving")
    assert [r["outcome"] for r in early["revisions"]] == ["Complete", "InProgress"]
    assert canary_news(started, early) == []


def test_a_started_canary_is_told_once_and_a_blocked_one_warns() -> None:
    before = status(CanaryView(WANTED, None))
    started = status(CanaryView(WANTED, running()), previous=before)
    assert [(n.kind, n.reason) for n in canary_news(before, started)] == [
        ("Normal", "CanaryStarted")
    ]
    assert canary_news(started, status(CanaryView(WANTED, running()), previous=started)) == []
    assert rollout_news(before, started) == []
    blocked = status(CanaryView(WANTED, None, CanaryBlock("NameInUse", "Service iris-canary …")))
    assert [(n.kind, n.reason) for n in canary_news(before, blocked)] == [("Warning", "NameInUse")]
    assert recorded_block(blocked, 2) == CanaryBlock("NameInUse", "Service iris-canary …")
    assert recorded_block(blocked, 3) is None
    assert recorded_block(started, 2) is None


# --- the revision history --------------------------------------------------------------------


def template(digest: str, image: str = STABLE_IMAGE, generation: int = 1) -> Template:
    return Template(digest, image, None, generation)


def test_canary_revisions_never_stand_for_the_stable_version() -> None:
    stable = track((), Progress(template("a"), True, None), NOW)
    with_canary = track_canary(
        stable, template("c", CANARY_IMAGE), wanted=True, stable=None, now=NOW
    )
    assert last_stable(with_canary) == stable[0]
    # The stable version's next template is revision 3, and supersedes no canary.
    rolled = track(with_canary, Progress(template("b", generation=2), False, "stalled"), LATER)
    assert [(r.revision, r.outcome, r.canary) for r in rolled] == [
        (1, Outcome.COMPLETE, False),
        (2, Outcome.IN_PROGRESS, True),
        (3, Outcome.FAILED, False),
    ]
    # Its failure rolls back to revision 1, past the canary.
    plan = plan_rollback(rolled, {"a", "b"})
    assert plan is not None
    assert (plan.failed.revision, plan.good.revision) == (3, 1)
    assert parse_revisions(revisions_status(rolled)) == rolled


def test_a_new_canary_template_supersedes_the_last() -> None:
    first = track_canary((), template("c1", CANARY_IMAGE), wanted=True, stable=None, now=NOW)
    second = track_canary(first, template("c2", CANARY_IMAGE), wanted=True, stable=None, now=LATER)
    assert [(r.template_hash, r.outcome) for r in second] == [
        ("c1", Outcome.SUPERSEDED),
        ("c2", Outcome.IN_PROGRESS),
    ]
    assert (
        track_canary(second, template("c2", CANARY_IMAGE), wanted=True, stable=None, now=LATER)
        == second
    )


def test_the_history_keeps_the_stable_versions_last_revision_among_many_canaries() -> None:
    history = track((), Progress(template("a"), True, None), NOW)
    for index in range(HISTORY_LIMIT + 3):
        history = track_canary(
            history, template(f"c{index}", CANARY_IMAGE), wanted=True, stable=None, now=NOW
        )
    assert len(history) == HISTORY_LIMIT
    assert history[0].template_hash == "a"
    assert history[-1].template_hash == f"c{HISTORY_LIMIT + 2}"


# --- what the autoscaler reads ---------------------------------------------------------------


def pod(component: str) -> kopf.Body:
    labels = {names.API_LABEL: "iris", "app.kubernetes.io/component": component}
    raw = {"metadata": {"name": f"iris-{component}-x", "labels": labels}, "status": {}}
    return kopf.Body(cast(kopf.RawBody, raw))


def test_the_pods_of_the_stable_version_and_of_the_canary_are_indexed_apart() -> None:
    stable, canary = pod("predictor"), pod("canary")
    assert list(api_pods(stable, "ml", stable.metadata.labels)) == [("ml", "iris")]
    assert api_pods(canary, "ml", canary.metadata.labels) == {}
    assert list(canary_pods(canary, "ml", canary.metadata.labels)) == [("ml", "iris")]
    assert canary_pods(stable, "ml", stable.metadata.labels) == {}


def test_a_canary_deployment_is_indexed_under_its_api_by_the_apis_uid() -> None:
    rendered = canary_deployment()
    rendered["spec"]["replicas"] = 3
    body = kopf.Body(cast(kopf.RawBody, rendered))
    labels, name = body.metadata.labels, "iris-canary"
    assert canary_replicas(body, "ml", name, labels) == {("ml", "iris"): (API.uid, 3)}
    # Not the stable one's, and not under the canary's own name.
    assert api_replicas(body, "ml", name) == {}
    stable = kopf.Body(
        cast(
            kopf.RawBody,
            render_deployment(API, spec(), SETTINGS, model_version=None, replicas=2),
        )
    )
    assert canary_replicas(stable, "ml", "iris", stable.metadata.labels) == {}
