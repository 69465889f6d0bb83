"""kopf handlers: a few lines each, that parse what kopf hands them and call ferry.services.

No handler is registered by importing its module: `register` puts them into a kopf registry in
the order written below, which is the order kopf runs handlers of the same kind in.
"""

from __future__ import annotations

import kopf

from ferry.handlers import autoscaler, capacity, indexes, lifecycle, realtimeapi
from ferry.handlers.context import OperatorContext


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """Every handler of the operator, each with the context it works with.

    kopf's login comes first, then the indexes, which the other handlers read. Of the APIs'
    handlers, the reconciler's come before the autoscaler's: on deletion, the log group is
    deleted before the API's metrics are forgotten. The capacity loop's start and stop are the
    only startup and cleanup handlers. The clients every handler uses are made before kopf
    starts and closed after it has stopped (ferry.app.operate), so none runs without them.
    """
    lifecycle.register(registry)
    indexes.register(registry)
    realtimeapi.register(registry, context)
    autoscaler.register(registry, context)
    capacity.register(registry, context)
