"""Operator start-up and shutdown: kopf's settings, chosen on purpose, and the one API client."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ferry import metrics, names
from ferry.adapters.aws import Aws, AwsSettings
from ferry.adapters.kube import Kube
from ferry.adapters.stats import StatsScraper


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Everything kopf keeps on our objects lives under our own prefix, and in annotations: the
    # CRD's status schema is ours alone.
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="ferry.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="ferry.dev", key="last-handled-configuration"
    )
    # kopf's own log lines become Events only when they are warnings: ours are posted explicitly.
    settings.posting.level = logging.WARNING
    # Watches end server-side before the client gives up, so a silent connection is noticed.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.queueing.worker_limit = memo.settings.worker_limit
    # An object's worker keeps its place among those until it has idled this long, and its last
    # event (the whole object) with it. kopf's 5 s let fifty objects through per 5 s: at a
    # thousand APIs a burst's events queued for minutes, each a whole object in memory.
    settings.queueing.idle_timeout = 0.5
    # Events are posted through kopf's connections, one per post in flight, and each TLS
    # connection holds a quarter of a megabyte: unbounded, a thousand APIs' Created events open
    # dozens. Ten posters, idle briefly for the same reason as above, post hundreds a second.
    settings.posting.worker_limit = 10
    settings.posting.idle_timeout = 0.1
    memo.kube = await Kube.connect()
    memo.aws = Aws(AwsSettings.from_env())
    memo.scraper = StatsScraper(
        concurrency=memo.settings.scrape_concurrency,
        timeout=memo.settings.scrape_timeout,
        tick=memo.settings.autoscale_interval,
    )
    metrics.serve(memo.settings.metrics_port)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    kube = getattr(memo, "kube", None)
    if kube is not None:
        await kube.close()
    scraper = getattr(memo, "scraper", None)
    if scraper is not None:
        await scraper.close()
    aws = getattr(memo, "aws", None)
    if aws is not None:
        aws.close()
