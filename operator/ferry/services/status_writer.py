"""The one writer of a RealtimeAPI's status, for the reconciler's fields and the autoscaler's.

Several writers race for an API's status (the reconciler, the Deployment and pod watchers, the
autoscaler's ticks); one rule keeps each from undoing another:

- Only the fields that changed are sent: each patch costs a write and a watch event.
- The reconciler's fields carry history computed from the status as read (conditions' transition
  times, the revisions), so they are written on condition that the API is still as read; when it
  is not (409), they are computed again from the API read afresh, up to CONFLICT_RETRIES times.
- The autoscaler's fields (desiredReplicas, inFlight, lastScaleTime, lastScaleReason) are computed
  from nothing in the status, so they are written whatever the API's version: a merge patch of
  them can neither lose a field of the reconciler's nor be lost.
- An API that is gone (404), or that is another object or generation by the time its status is
  read again, is not written: there is no one left to tell, or the newer generation's own
  reconcile tells.
- The status that reads the Deployment is published by one task of the API's at a time
  (`serialized`): the reconciler reads the Deployment afresh under it, so it can never publish a
  view older than one a Deployment event published before it, nor slip its model verdict in
  after a Deployment event that found none and wrote nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ferry import names
from ferry.adapters.kube import ConflictError, Kube, RejectedError, TemporaryKubeError, path_of
from ferry.spec.resource import ApiRef, StoredAPI
from ferry.spec.schema import GROUP, KIND, VERSION
from ferry.status.compute import status_changes

API = TypeVar("API", bound=StoredAPI)

# A guarded write that loses reads again and recomputes, this many times.
CONFLICT_RETRIES = 8


def api_path(namespace: str, name: str) -> str:
    return path_of(f"{GROUP}/{VERSION}", KIND, namespace, name)


def status_path(namespace: str, name: str) -> str:
    return api_path(namespace, name) + "/status"


@dataclass(frozen=True)
class Written(Generic[API]):
    """The outcome of a write of the reconciler's fields."""

    api: API
    """The API as written (as read, when nothing had changed)."""
    previous: Mapping[str, Any]
    """The status the fields were computed from."""
    computed: Mapping[str, Any]
    """The fields as computed, changed or not."""
    changes: dict[str, Any]
    """The fields written."""


class StatusWriter:
    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        # A lock lives while a task holds or awaits it, so an API's goes with its last publish.
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def serialized(self, ref: ApiRef) -> asyncio.Lock:
        """The lock under which the status of the API `ref` is computed from its Deployment
        and written: one task of the API's at a time."""
        key = (ref.namespace, ref.name)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def current(self, api: API) -> API | None:
        """`api` with its status and version as the API server holds them now; None when it is
        gone, or is another object or generation than `api` (its spec may not be `api`'s)."""
        ref = api.ref
        fresh = await self._kube.get(api_path(ref.namespace, ref.name))
        if fresh is None:
            return None
        meta = fresh["metadata"]
        if meta["uid"] != ref.uid or int(meta["generation"]) != ref.generation:
            return None
        return dataclasses.replace(
            api, status=fresh.get("status") or {}, resource_version=str(meta["resourceVersion"])
        )

    async def write_reconciled(
        self, api: API, compute: Callable[[API], Mapping[str, Any] | None]
    ) -> Written[API] | None:
        """Write the reconciler's fields `compute` makes of the API as read (None: nothing to
        write now), on condition that the API is still as read; None when nothing was written
        because the API is gone or moved on, or `compute` had nothing to write."""
        for _ in range(CONFLICT_RETRIES):
            computed = compute(api)
            if computed is None:
                return None
            changes = status_changes(api.status, computed)
            if not changes:
                return Written(api, api.status, computed, changes)
            try:
                written = await self._patch(api, changes, guarded=True)
            except ConflictError:
                fresh = await self.current(api)
                if fresh is None:
                    return None
                api = fresh
                continue
            if written is None:
                return None
            return Written(written, api.status, computed, changes)
        ref = api.ref
        raise TemporaryKubeError(
            f"the status of {ref.namespace}/{ref.name} kept changing while written"
        )

    async def write_scaled(
        self,
        api: StoredAPI,
        fields: Mapping[str, Any],
        *,
        last_written: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the autoscaler's fields that changed; return those written. `last_written` is
        what the caller wrote of them before, which the API as read may not show yet."""
        seen = {**api.status, **last_written} if last_written else api.status
        changes = status_changes(seen, fields)
        if changes and await self._patch(api, changes, guarded=False) is None:
            return {}
        return changes

    async def _patch(self, api: API, changes: Mapping[str, Any], *, guarded: bool) -> API | None:
        """Merge-patch the status; the API as written, None if it is gone."""
        ref = api.ref
        patch: dict[str, Any] = {"status": changes}
        if guarded:
            patch["metadata"] = {"resourceVersion": api.resource_version}
        try:
            written = await self._kube.patch_merge(
                status_path(ref.namespace, ref.name), patch, names.FIELD_MANAGER
            )
        except RejectedError as error:
            if error.status == 404:  # noqa: PLR2004
                return None
            raise
        return dataclasses.replace(
            api,
            status=written.get("status") or {},
            resource_version=str(written["metadata"]["resourceVersion"]),
        )
