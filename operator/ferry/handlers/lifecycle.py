"""kopf's own settings, chosen on purpose, and how it logs in."""

from __future__ import annotations

import logging

import kopf

from ferry import names
from ferry.settings import Settings


def operator_settings(settings: Settings) -> kopf.OperatorSettings:
    kopf_settings = kopf.OperatorSettings()
    # Everything kopf keeps on our objects lives under our own prefix, and in annotations: the
    # CRD's status schema is ours alone.
    kopf_settings.persistence.finalizer = names.FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="ferry.dev")
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="ferry.dev", key="last-handled-configuration"
    )
    # kopf's own log lines become Events only when they are warnings: ours are posted explicitly.
    kopf_settings.posting.level = logging.WARNING
    # Watches end server-side before the client gives up, so a silent connection is noticed.
    kopf_settings.watching.server_timeout = 300
    kopf_settings.watching.client_timeout = 330
    kopf_settings.watching.connect_timeout = 30
    kopf_settings.queueing.worker_limit = settings.worker_limit
    # An object's worker keeps its place among those until it has idled this long, and its last
    # event (the whole object) with it. kopf's 5 s let fifty objects through per 5 s: at a
    # thousand APIs a burst's events queued for minutes, each a whole object in memory.
    kopf_settings.queueing.idle_timeout = 0.5
    # Events are posted through kopf's connections, one per post in flight, and each TLS
    # connection holds a quarter of a megabyte: unbounded, a thousand APIs' Created events open
    # dozens. Ten posters, idle briefly for the same reason as above, post hundreds a second.
    kopf_settings.posting.worker_limit = 10
    kopf_settings.posting.idle_timeout = 0.1
    return kopf_settings


def register(registry: kopf.OperatorRegistry) -> None:
    # kopf's own connections log in as the operator's client does, through kubernetes_asyncio
    # (the kubeconfig, else the in-cluster account): what kopf's default registry would pick
    # with that library installed, and, as there, a failed login is told by kopf's LoginError.
    kopf.on.login(id="login", errors=kopf.ErrorsMode.IGNORED, registry=registry)(
        kopf.login_via_async_client
    )
