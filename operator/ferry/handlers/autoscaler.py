"""The autoscaler's timer: one per RealtimeAPI, every FERRY_AUTOSCALE_INTERVAL seconds."""

from __future__ import annotations

import logging
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


async def autoscale(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    # kopf passes each index as a keyword named after its function (ferry.handlers.indexes).
    pods: kopf.Index[ApiKey, PodState] = kwargs["api_pods"]
    replicas: kopf.Index[ApiKey, int] = kwargs["api_replicas"]
    key = (str(body.metadata.namespace), str(body.metadata.name))
    # kopf gives each object a memo of its own: the API's demand history lives there.
    memo.autoscaler = await service.tick(
        memo.kube,
        memo.scraper,
        body,
        memo.get("autoscaler"),
        recorder(body),
        replicas=next(iter(replicas.get(key, ())), None),
        pods=pods.get(key, ()),
    )


def _not_a_tick_success(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Timer 'autoscale' succeeded")


def register(settings: Settings) -> None:
    interval = settings.autoscale_interval
    # kopf logs every handler's success; at a tick per API every 2 s that line would be most of
    # the log and a good share of the CPU. Failures, decisions and scaling are still logged.
    logging.getLogger("kopf.objects").addFilter(_not_a_tick_success)

    def jitter(**_: Any) -> float:
        # APIs seen together (a restart lists them all at once) would otherwise tick in step.
        return random.uniform(0, interval)  # noqa: S311 - spreading load, not secrecy

    # Sharp: a tick starts every interval, however long the last one took, rather than an
    # interval after it ended; a busy operator still decides as often as the policy assumes.
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        interval=interval,
        sharp=True,
        initial_delay=jitter,
        backoff=interval,
    )(autoscale)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def forget(namespace: str | None, name: str, **_: Any) -> None:
    metrics.forget_api(str(namespace), name)
