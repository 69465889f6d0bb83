"""List, then watch, over the one ApiClient of `ferry.adapters.kube.Kube`, as informers do.

Yields a LIST event with every object at each (re)list, then the watch's ADDED, MODIFIED and
DELETED events. A watch that expires or ends relists; one the server no longer has history for
(410) relists at once; an unreachable API server is retried with a capped back-off. Objects
stay plain dicts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ferry.adapters.kube import Kube, KubeError

log = logging.getLogger("ferry_local.agent")

LIST = "LIST"
WATCH_SECONDS = 300
_GONE = 410
_RETRY_CAP = 5.0


@dataclass(frozen=True)
class Event:
    type: str
    # For LIST, {"items": [...]}; otherwise the object.
    object: dict[str, Any]


class _Expired(Exception):  # noqa: N818 - a signal to relist, not a failure
    pass


async def _stream(
    kube: Kube, path: str, query: Mapping[str, str], resource_version: str
) -> AsyncIterator[dict[str, Any]]:
    params = {
        **query,
        "watch": "true",
        "resourceVersion": resource_version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(WATCH_SECONDS),
    }
    response = await kube.api.call_api(
        path,
        "GET",
        query_params=list(params.items()),
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=WATCH_SECONDS + 30),
    )
    try:
        if response.status != 200:  # noqa: PLR2004
            if response.status == _GONE:
                raise _Expired
            raise KubeError(f"watch {path}: HTTP {response.status}", response.status)
        async for line in response.content:
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("type") == "ERROR":
                status = event.get("object") or {}
                if status.get("code") == _GONE:
                    raise _Expired
                raise KubeError(f"watch {path}: {status.get('message')}", status.get("code", 0))
            yield event
    finally:
        response.release()


async def watch(
    kube: Kube, path: str, query: Mapping[str, str] | None = None
) -> AsyncIterator[Event]:
    """Events of the collection at `path` (a list URL) filtered by `query`, forever."""
    query = dict(query or {})
    delay = 0.5
    while True:
        try:
            listing = await kube.request("GET", path, query=query)
            version = listing["metadata"]["resourceVersion"]
            yield Event(LIST, {"items": listing.get("items") or []})
            delay = 0.5
            while True:
                async for event in _stream(kube, path, query, version):
                    kind, obj = event.get("type"), event.get("object") or {}
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if kind != "BOOKMARK":
                        yield Event(str(kind), obj)
        except _Expired:
            continue
        except (KubeError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            log.warning("watch of %s failed (%s); relisting in %gs", path, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_CAP)
