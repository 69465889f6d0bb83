"""The autoscaler's timer: one per RealtimeAPI, every FERRY_AUTOSCALE_INTERVAL seconds.

The timer is a kopf daemon that keeps its own clock rather than a `kopf.timer`: kopf runs a
timer's every tick through its whole handler machinery (progress state, keyword arguments built
afresh, outcome and patch bookkeeping), which cost two thirds as much again as the tick itself
across a thousand APIs. A daemon is invoked once; its body and indexes are live, so each tick
still sees what the watches last delivered, and what one tick hands the next (the API as parsed,
the demand history) stays in the daemon.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from ferry import metrics
from ferry.handlers.context import OperatorContext
from ferry.handlers.indexes import ApiKey
from ferry.handlers.realtimeapi import recorder
from ferry.services import autoscale as service
from ferry.spec.model import InvalidSpecError
from ferry.spec.resource import RealtimeAPI, parse_api
from ferry.spec.schema import GROUP, PLURAL, VERSION
from ferry.status.pods import PodState

log = logging.getLogger("ferry.autoscaler")

# When the API is deleted or the operator stops, the daemon is cancelled at once, mid-tick if
# need be (a tick is safe to abandon: the next one, if any, starts from what the API server
# holds); this is how long kopf then waits for it to be gone.
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Memories:
    """What one API's tick hands the next: the stable Deployment's memory, and its canary's."""

    stable: service.Memory | None = None
    canary: service.Memory | None = None


async def _tick(
    context: OperatorContext,
    body: kopf.Body,
    known: RealtimeAPI | None,
    memory: Memories,
    indexes: Mapping[str, Any],
) -> tuple[RealtimeAPI | None, Memories]:
    """One tick; the API as parsed and the memories, for the next."""
    # The daemon's body is a live view that resolves every key it is asked for through kopf's
    # current copy of the API; a tick reads the API's top-level fields once, as they are now.
    try:
        api = parse_api(dict(body), known)
    except InvalidSpecError as error:
        # The same parse refuses the spec at the reconciler's edge, which tells the user
        # (Ready=False, reason InvalidSpec, and an Event); scaling waits for a good spec.
        meta = body.metadata
        log.debug("%s/%s: not scaling: %s", meta.namespace, meta.name, error)
        return known, memory
    ref = api.ref
    key = (ref.namespace, ref.name)
    record = recorder(body)

    async def side(
        prefix: str, memory_of_side: service.Memory | None, *, canary: bool
    ) -> service.Memory | None:
        # kopf passes each index as a keyword named after its function (ferry.handlers.indexes).
        pods: kopf.Index[ApiKey, PodState] = indexes[f"{prefix}_pods"]
        replicas: kopf.Index[ApiKey, tuple[str, int]] = indexes[f"{prefix}_replicas"]
        return await service.tick(
            context.kube,
            context.status,
            context.scraper,
            api,
            memory_of_side,
            record=record,
            replicas=next((n for uid, n in replicas.get(key, ()) if uid == ref.uid), None),
            pods=pods.get(key, ()),
            canary=canary,
        )

    stable = await side("api", memory.stable, canary=False)
    if api.spec.canary is None:
        return api, Memories(stable)
    # The canary is scaled on its own demand: the share of the requests its weight brings it.
    canary = await side("canary", memory.canary, canary=True)
    return api, Memories(stable, canary)


def next_tick(started: float, now: float, interval: float) -> float:
    """When the tick after one due at `started` is due: `started` plus a whole number of
    intervals, the first after `now`. Sharp: a tick starts every interval however long the last
    one took, and ticks a busy operator missed are skipped, not run back to back."""
    return started + max(1, math.floor((now - started) / interval) + 1) * interval


async def autoscale(
    body: kopf.Body, logger: kopf.Logger, context: OperatorContext, **kwargs: Any
) -> None:
    interval = context.settings.autoscale_interval
    clock = asyncio.get_running_loop().time
    # APIs seen together (a restart lists them all at once) would otherwise tick in step.
    due = clock() + random.uniform(0, interval)  # noqa: S311 - spreading load, not secrecy
    await asyncio.sleep(due - clock())
    api: RealtimeAPI | None = None
    memory = Memories()
    while True:
        try:
            api, memory = await _tick(context, body, api, memory, kwargs)
        except Exception:
            # Kubernetes errors are handled by the tick itself; this is anything else, and the
            # API's scaling must not end with it.
            logger.exception("Autoscaler tick failed; the next one retries")
        due = next_tick(due, clock(), interval)
        await asyncio.sleep(due - clock())


def forget(namespace: str | None, name: str, **_: Any) -> None:
    metrics.forget_api(str(namespace), name)


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    # Stopped by cancellation, as kopf recommends for async daemons: no waiter to poll.
    kopf.daemon(
        GROUP,
        VERSION,
        PLURAL,
        id="autoscale",
        cancellation_timeout=STOP_TIMEOUT,
        registry=registry,
    )(functools.partial(autoscale, context=context))
    kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)(forget)
