"""Which objects are an API's own: only those whose controller reference names its uid; anything
else of its names blocks it with a message that says whose the object looks like."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.spec.resource import ApiRef
from ferry.status.compute import NAME_IN_USE, Phase
from ferry.status.ownership import name_in_use, owned_by

API = ApiRef("billing", "shop", "uid-now", 1)


def ref(kind: str, name: str, uid: str, *, controller: bool = True) -> dict[str, Any]:
    version = "ferry.dev/v1alpha1" if kind == "RealtimeAPI" else "apps/v1"
    return {"apiVersion": version, "kind": kind, "name": name, "uid": uid, "controller": controller}


def obj(
    *,
    refs: tuple[dict[str, Any], ...] = (),
    managed_by: str | None = None,
    writers: tuple[tuple[str, str | None], ...] = (),
) -> dict[str, Any]:
    """An object `billing`; writers are (manager, subresource) of its managedFields."""
    meta: dict[str, Any] = {"name": "billing", "namespace": "shop"}
    if refs:
        meta["ownerReferences"] = list(refs)
    if managed_by:
        meta["labels"] = {"app.kubernetes.io/managed-by": managed_by}
    if writers:
        meta["managedFields"] = [
            {"manager": manager, "operation": "Apply", **({"subresource": sub} if sub else {})}
            for manager, sub in writers
        ]
    return {"metadata": meta}


OURS = obj(refs=(ref("RealtimeAPI", "billing", API.uid),), managed_by="ferry")


def test_what_the_api_controls_or_what_does_not_exist_blocks_nothing() -> None:
    assert name_in_use(API, {"Deployment": OURS, "Service": OURS}) is None
    assert name_in_use(API, {"Deployment": None, "Service": None}) is None
    assert owned_by(OURS, API.uid)


def test_another_teams_service_is_named_with_its_label_and_writers() -> None:
    foreign = obj(
        managed_by="Helm",
        writers=(("helm", None), ("kubectl-edit", None), ("helm", None), ("kcm", "status")),
    )
    blocked = name_in_use(API, {"Deployment": None, "Service": foreign})
    assert blocked is not None
    assert (blocked.reason, blocked.phase) == (NAME_IN_USE, Phase.FAILED)
    assert blocked.message == (
        "Service billing is not this API's: it is labelled app.kubernetes.io/managed-by=Helm "
        "and was written by helm, kubectl-edit. Ferry changes nothing of it: delete it, or give "
        "this API another name"
    )


def test_an_object_another_controller_controls_is_named_with_its_controller() -> None:
    rollout = obj(refs=(ref("Rollout", "billing-canary", "r-1"),))
    blocked = name_in_use(API, {"Deployment": rollout, "Service": None})
    assert blocked is not None
    assert "Deployment billing is not this API's: it is controlled by Rollout billing-canary" in (
        blocked.message
    )


def test_an_object_with_no_owner_or_manager_says_so() -> None:
    blocked = name_in_use(API, {"Deployment": None, "Service": obj()})
    assert blocked is not None
    assert "it has no owner or manager on record" in blocked.message


@pytest.mark.parametrize(
    "taken",
    [
        # Ferry made it, and someone removed the reference: taken over, no longer the API's.
        obj(managed_by="ferry", writers=(("ferry", None), ("ferry-autoscaler", "scale"))),
        # A reference that is not the controller's is no claim.
        obj(refs=(ref("RealtimeAPI", "billing", API.uid, controller=False),)),
    ],
)
def test_labels_managers_and_plain_references_are_no_proof_of_ownership(
    taken: dict[str, Any],
) -> None:
    assert not owned_by(taken, API.uid)
    blocked = name_in_use(API, {"Deployment": taken, "Service": None})
    assert blocked is not None
    assert blocked.phase is Phase.FAILED


def test_what_an_earlier_api_of_the_name_left_is_waited_for() -> None:
    left = obj(refs=(ref("RealtimeAPI", "billing", "uid-before"),), managed_by="ferry")
    blocked = name_in_use(API, {"Deployment": left, "Service": left})
    assert blocked is not None
    assert (blocked.reason, blocked.phase) == (NAME_IN_USE, Phase.PENDING)
    assert blocked.message == (
        "Deployment billing belongs to an earlier RealtimeAPI billing (uid uid-before); "
        "Service billing belongs to an earlier RealtimeAPI billing (uid uid-before), deleted "
        "since: the garbage collector deletes them, then this API creates its own"
    )


def test_an_earlier_apis_leftover_beside_a_foreign_object_needs_a_person() -> None:
    left = obj(refs=(ref("RealtimeAPI", "billing", "uid-before"),))
    blocked = name_in_use(API, {"Deployment": left, "Service": obj(managed_by="Helm")})
    assert blocked is not None
    assert blocked.phase is Phase.FAILED
    assert blocked.message.startswith(
        "Deployment billing is not this API's: it is controlled by RealtimeAPI billing; "
        "Service billing is not this API's"
    )
    assert blocked.message.endswith(
        "Ferry changes nothing of them: delete them, or give this API another name"
    )
