"""Which objects are an API's own. Ferry changes, scales or leaves to the garbage collector only
what it created for the API; anything else of the API's names blocks it (NameInUse).

An object is the API's when it holds a controller ownerReference to the API's uid. Ferry puts one
on everything it creates, and the API server lets no one add a second controller. So:

- another team's Service or Deployment of the same name (no such reference) is not the API's;
- what an earlier RealtimeAPI of the same name left behind (a reference to the earlier uid) is not
  either: the garbage collector is deleting it, and the API makes its own once it is gone;
- an object Ferry made whose reference someone removed is not the API's any more: whoever removed
  it took the object over (`kubectl delete rtapi --cascade=orphan` does just that). Labels and
  field managers are not proof of anything (anyone can set them), so they only help the message
  say whose it looks like.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferry.spec.resource import ApiRef
from ferry.spec.schema import GROUP, KIND
from ferry.status.compute import NAME_IN_USE, Blocked, Phase

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object's controller ownerReference, if it has one."""
    refs = obj.get("metadata", {}).get("ownerReferences") or ()
    return next((ref for ref in refs if ref.get("controller")), None)


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    controller = controller_of(obj)
    return controller is not None and controller.get("uid") == uid


def _of_an_earlier_api(obj: Mapping[str, Any], api: ApiRef) -> Mapping[str, Any] | None:
    """The reference to an earlier RealtimeAPI of this name, if that is the object's controller."""
    controller = controller_of(obj)
    if (
        controller is not None
        and controller.get("kind") == KIND
        and str(controller.get("apiVersion", "")).startswith(f"{GROUP}/")
        and controller.get("name") == api.name
        and controller.get("uid") != api.uid
    ):
        return controller
    return None


def _writers(obj: Mapping[str, Any]) -> list[str]:
    """The field managers of the object's spec and metadata, first writer first (a controller
    that writes only the status does not manage the object)."""
    entries = obj.get("metadata", {}).get("managedFields") or ()
    writers: list[str] = []
    for entry in entries:
        manager = entry.get("manager")
        if manager and entry.get("subresource") != "status" and manager not in writers:
            writers.append(manager)
    return writers


def _whose(obj: Mapping[str, Any]) -> str:
    """Who the object says it belongs to, as far as it says."""
    told = []
    controller = controller_of(obj)
    if controller is not None:
        told.append(f"is controlled by {controller.get('kind')} {controller.get('name')}")
    label = (obj.get("metadata", {}).get("labels") or {}).get(MANAGED_BY_LABEL)
    if label:
        told.append(f"is labelled {MANAGED_BY_LABEL}={label}")
    writers = _writers(obj)
    if writers:
        told.append(f"was written by {', '.join(writers)}")
    return " and ".join(told) if told else "has no owner or manager on record"


def name_in_use(api: ApiRef, children: Mapping[str, Mapping[str, Any] | None]) -> Blocked | None:
    """NameInUse when an object of the API's names (children: kind -> the object, None if there
    is none) is not the API's; None when every one is the API's or absent."""
    strangers = [
        (kind, obj)
        for kind, obj in children.items()
        if obj is not None and not owned_by(obj, api.uid)
    ]
    if not strangers:
        return None
    them = "it" if len(strangers) == 1 else "them"
    earlier = [_of_an_earlier_api(obj, api) for _, obj in strangers]
    if all(ref is not None for ref in earlier):
        left = "; ".join(
            f"{kind} {obj['metadata']['name']} belongs to an earlier RealtimeAPI {api.name} "
            f"(uid {ref['uid']})"
            for (kind, obj), ref in zip(strangers, earlier, strict=True)
            if ref is not None
        )
        return Blocked(
            NAME_IN_USE,
            f"{left}, deleted since: the garbage collector deletes {them}, then this API "
            "creates its own",
            Phase.PENDING,
        )
    found = "; ".join(
        f"{kind} {obj['metadata']['name']} is not this API's: it {_whose(obj)}"
        for kind, obj in strangers
    )
    return Blocked(
        NAME_IN_USE,
        f"{found}. Ferry changes nothing of {them}: delete {them}, or give this API another name",
    )
