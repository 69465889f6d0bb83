"""The autoscaler's timer: one per RealtimeAPI, every FERRY_AUTOSCALE_INTERVAL seconds.

The timer is a kopf daemon that keeps its own clock rather than a `kopf.timer`: kopf runs a
timer's every tick through its whole handler machinery (progress state, keyword arguments built
afresh, outcome and patch bookkeeping), which cost two thirds as much again as the tick itself
across a thousand APIs. A daemon is invoked once; its body, memo and indexes are live, so each
tick still sees what the watches last delivered.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import kopf

from ferry import metrics
from ferry.handlers.indexes import ApiKey
from ferry.handlers.realtimeapi import recorder
from ferry.services import autoscale as service
from ferry.settings import Settings
from ferry.spec.schema import GROUP, PLURAL, VERSION
from ferry.status.pods import PodState

# When the API is deleted or the operator stops, the daemon is cancelled at once, mid-tick if
# need be (a tick is safe to abandon: the next one, if any, starts from what the API server
# holds); this is how long kopf then waits for it to be gone.
STOP_TIMEOUT = 5.0


async def _tick(body: kopf.Body, memo: kopf.Memo, indexes: dict[str, Any]) -> None:
    # kopf passes each index as a keyword named after its function (ferry.handlers.indexes).
    pods: kopf.Index[ApiKey, PodState] = indexes["api_pods"]
    replicas: kopf.Index[ApiKey, tuple[str, int]] = indexes["api_replicas"]
    # The daemon's body is a live view that resolves every key it is asked for through kopf's
    # current copy of the API; a tick reads the API's top-level fields once, as they are now.
    api = dict(body)
    meta = api["metadata"]
    key = (str(meta["namespace"]), str(meta["name"]))
    # kopf gives each object a memo of its own: the API's demand history lives there.
    memo.autoscaler = await service.tick(
        memo.kube,
        memo.scraper,
        api,
        memo.get("autoscaler"),
        recorder(body),
        replicas=next((n for uid, n in replicas.get(key, ()) if uid == meta["uid"]), None),
        pods=pods.get(key, ()),
    )


def next_tick(started: float, now: float, interval: float) -> float:
    """When the tick after one due at `started` is due: `started` plus a whole number of
    intervals, the first after `now`. Sharp: a tick starts every interval however long the last
    one took, and ticks a busy operator missed are skipped, not run back to back."""
    return started + max(1, math.floor((now - started) / interval) + 1) * interval


def register(settings: Settings) -> None:
    interval = settings.autoscale_interval

    async def autoscale(
        body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any
    ) -> None:
        clock = asyncio.get_running_loop().time
        # APIs seen together (a restart lists them all at once) would otherwise tick in step.
        due = clock() + random.uniform(0, interval)  # noqa: S311 - spreading load, not secrecy
        await asyncio.sleep(due - clock())
        while True:
            try:
                await _tick(body, memo, kwargs)
            except Exception:
                # Kubernetes errors are handled by the tick itself; this is anything else, and
                # the API's scaling must not end with it.
                logger.exception("Autoscaler tick failed; the next one retries")
            due = next_tick(due, clock(), interval)
            await asyncio.sleep(due - clock())

    # Stopped by cancellation, as kopf recommends for async daemons: no waiter to poll.
    kopf.daemon(GROUP, VERSION, PLURAL, id="autoscale", cancellation_timeout=STOP_TIMEOUT)(
        autoscale
    )


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def forget(namespace: str | None, name: str, **_: Any) -> None:
    metrics.forget_api(str(namespace), name)
