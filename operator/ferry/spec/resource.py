"""A RealtimeAPI as the operator reads it: parsed once, where a handler receives it.

A handler turns the object kopf or the API server hands it into a `RealtimeAPI` (or, when the
spec cannot be followed, into the `StoredAPI` the refusal is written to), and the services take
that, never the raw object: the spec is checked in one place, and who the API is, its status
and the version read travel together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ferry.spec.model import RealtimeAPISpec, parse_spec


@dataclass(frozen=True)
class ApiRef:
    """Which RealtimeAPI, and which generation of its spec."""

    name: str
    namespace: str
    uid: str
    generation: int


@dataclass(frozen=True)
class StoredAPI:
    """What a status write needs of a RealtimeAPI as read, whether or not its spec can be
    followed: who it is, its status, and the version read (a write computed from that status is
    made on condition that the API is still as read)."""

    ref: ApiRef
    status: Mapping[str, Any]
    resource_version: str


@dataclass(frozen=True)
class RealtimeAPI(StoredAPI):
    """A RealtimeAPI whose spec was parsed and checked, its autoscaling policy included."""

    spec: RealtimeAPISpec


def api_ref(body: Mapping[str, Any]) -> ApiRef:
    meta = body["metadata"]
    return ApiRef(
        str(meta["name"]), str(meta["namespace"]), str(meta["uid"]), int(meta["generation"])
    )


def stored_api(body: Mapping[str, Any]) -> StoredAPI:
    """The API without its spec: what a refusal of the spec is written to."""
    return StoredAPI(api_ref(body), _status(body), _resource_version(body))


def parse_api(body: Mapping[str, Any], known: RealtimeAPI | None = None) -> RealtimeAPI:
    """The API with its spec parsed and checked; InvalidSpecError if the user must fix it.

    `known` is an earlier read of the API: its spec is kept, not parsed again, while the API is
    the same object at the same generation (the API server counts a generation for every
    change of the spec), which spares a timer parsing an unchanged spec at every tick.
    """
    ref = api_ref(body)
    spec = (
        known.spec
        if known is not None and known.ref == ref
        else parse_spec(body["spec"], ref.namespace)
    )
    return RealtimeAPI(ref, _status(body), _resource_version(body), spec)


def _status(body: Mapping[str, Any]) -> Mapping[str, Any]:
    status: Mapping[str, Any] = body.get("status") or {}
    return status


def _resource_version(body: Mapping[str, Any]) -> str:
    return str(body["metadata"].get("resourceVersion", ""))
