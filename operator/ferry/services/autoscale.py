"""One autoscaler tick of one RealtimeAPI: ready pods → their proxies' demand → decide() →
replicas through the Deployment's scale subresource → status, an Event and metrics.

The tick is handed the API's pods and its Deployment's replicas as the operator's watches keep
them (`PodState`, `deployment_replicas`): a thousand APIs ticking every second would
otherwise be two reads of the API server each, most of their cost in decoding whole objects.

The tick owns `spec.replicas` of the Deployment under its own field manager; the reconciler
never writes it. It is handed the API parsed (its spec and policy checked by the caller, which
parses again only when the generation changes), and keeps what the next tick needs (the demand
history and the decision's state) in a `Memory` the caller holds per API. A Kubernetes error
abandons the tick, keeps the memory as it was, and leaves the retry to the next tick: a tick
never raises one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ferry import metrics, names
from ferry.adapters.kube import Kube, KubeError
from ferry.adapters.stats import PodAnswer, StatsScraper
from ferry.autoscaling import (
    AutoscalingPolicy,
    Decision,
    DemandHistory,
    Sample,
    ScalerState,
    decide,
)
from ferry.services.events import Recorder
from ferry.services.status import deployment_path, now_iso
from ferry.services.status_writer import StatusWriter
from ferry.spec.resource import RealtimeAPI
from ferry.status.pods import PodState

log = logging.getLogger("ferry.autoscaler")

FIXED_REPLICAS = "FixedReplicas"
"""lastScaleReason when autoscaling is off and spec.replicas set the count."""


@dataclass(frozen=True)
class Memory:
    """What one API's tick hands to the next."""

    history: DemandHistory
    state: ScalerState = field(default_factory=ScalerState)
    published: Mapping[str, Any] = field(default_factory=dict)
    """The status fields this autoscaler last wrote. The API a tick is handed shows them only
    once the watch has delivered the write; judging by it alone, a busy operator would write
    the same fields again, and each write it waits on makes it busier still."""


def ready_pods(pods: Iterable[PodState]) -> list[tuple[str, str]]:
    """(name, IP) of the pods the Service sends requests to: Ready, addressed, not leaving;
    by name, so that the log of a tick does not depend on the order pods were seen in."""
    return sorted((pod.name, pod.ip) for pod in pods if pod.ip and pod.ready and not pod.leaving)


def deployment_replicas(deployment: Mapping[str, Any]) -> int:
    """The count last asked for (spec.replicas), which the API server defaults to 1."""
    return int(deployment["spec"].get("replicas", 1))


def shown_demand(demand: float | None) -> float | None:
    """status.inFlight, to two significant figures: enough for the printer column, and fewer
    changes, each of which costs a status write and a watch event."""
    return None if demand is None else float(f"{demand:.2g}")


def scaler_status(
    desired: int, demand: float | None, scaled: tuple[str, str] | None
) -> dict[str, Any]:
    """The status fields the autoscaler owns; `scaled` is (time, reason) of a scaling action now.
    A None inFlight removes the field (merge patch): no demand is known."""
    status: dict[str, Any] = {"desiredReplicas": desired, "inFlight": shown_demand(demand)}
    if scaled is not None:
        status["lastScaleTime"], status["lastScaleReason"] = scaled
    return status


def remembered(memory: Memory | None, policy: AutoscalingPolicy) -> Memory:
    """The memory to decide with; a changed policy keeps the samples but not more of them."""
    horizon = policy.window
    if memory is None:
        return Memory(DemandHistory(horizon))
    history = memory.history
    if history.horizon != horizon:
        history = DemandHistory(horizon, history.samples)
    return Memory(history, memory.state, memory.published)


async def tick(
    kube: Kube,
    writer: StatusWriter,
    scraper: StatsScraper,
    api: RealtimeAPI,
    memory: Memory | None,
    *,
    record: Recorder,
    replicas: int | None,
    pods: Iterable[PodState],
    canary: bool = False,
) -> Memory | None:
    """Scale one API once; returns the memory for its next tick (None: nothing to remember).

    `replicas` is the Deployment's (None: the reconciler has not made it yet), `pods` the API's.
    With `canary`, the canary's Deployment on its own demand (`replicas` and `pods` its own),
    within the same policy; the status fields are the stable version's alone, so it writes none.
    """
    namespace = api.ref.namespace
    name = names.canary_name(api.ref.name) if canary else api.ref.name
    started = time.monotonic()
    try:
        if not api.spec.autoscaling.enabled:
            if replicas is not None and not canary:
                await _fixed(kube, writer, api, replicas, record)
            return None
        if replicas is None:
            return memory
        return await _scale(
            kube,
            writer=writer,
            scraper=scraper,
            api=api,
            current=replicas,
            pods=ready_pods(pods),
            policy=api.spec.policy,
            memory=remembered(memory, api.spec.policy),
            record=record,
            now=started,
            deployment=name if canary else None,
        )
    except KubeError as error:
        metrics.TICK_ERRORS.labels(namespace, name).inc()
        log.warning(
            "%s/%s: autoscaler tick abandoned, next one retries: %s", namespace, name, error
        )
        return memory
    finally:
        metrics.TICK_SECONDS.observe(time.monotonic() - started)


async def _scale(
    kube: Kube,
    *,
    writer: StatusWriter,
    scraper: StatsScraper,
    api: RealtimeAPI,
    current: int,
    pods: Sequence[tuple[str, str]],
    policy: AutoscalingPolicy,
    memory: Memory,
    record: Recorder,
    now: float,
    deployment: str | None,
) -> Memory:
    """`deployment`: the canary's, which is scaled but writes no status; None: the API's."""
    namespace, name = api.ref.namespace, deployment or api.ref.name
    answers = await scraper.scrape(pods)
    _report_silent(namespace, name, answers)
    history = memory.history.record(Sample.from_pods(now, [a.figures for a in answers]))
    decision = decide(
        history,
        policy,
        ready_replicas=len(pods),
        current_replicas=current,
        now=now,
        state=memory.state,
    )
    _observe(namespace, name, decision, current, len(pods))
    scaled = None
    if decision.replicas != current:
        await _write_replicas(kube, namespace, name, decision.replicas)
        direction = "ScaledUp" if decision.replicas > current else "ScaledDown"
        told = decision.message if deployment is None else f"canary: {decision.message}"
        record("Normal", direction, told)
        log.info("%s/%s: %s", namespace, name, decision.message)
        scaled = (now_iso(), decision.reason.value)
    if deployment is not None:
        return Memory(history, decision.state)
    status = scaler_status(decision.replicas, decision.stable_demand, scaled)
    # Only this autoscaler writes these fields, so what it wrote last is what the API holds.
    await writer.write_scaled(api, status, last_written=memory.published)
    return Memory(history, decision.state, {**memory.published, **status})


async def _fixed(
    kube: Kube, writer: StatusWriter, api: RealtimeAPI, current: int, record: Recorder
) -> None:
    """Autoscaling off: spec.replicas (what `kubectl scale rtapi` writes) is the count; without
    it, replicas stay where they are."""
    namespace, name, spec = api.ref.namespace, api.ref.name, api.spec
    wanted = current if spec.replicas is None else spec.replicas
    scaled = None
    if wanted != current:
        await _write_replicas(kube, namespace, name, wanted)
        message = f"autoscaling is off; spec.replicas asks for {wanted}: {current} -> {wanted}"
        record("Normal", "ScaledUp" if wanted > current else "ScaledDown", message)
        log.info("%s/%s: %s", namespace, name, message)
        scaled = (now_iso(), FIXED_REPLICAS)
    await writer.write_scaled(api, scaler_status(wanted, None, scaled))


async def _write_replicas(kube: Kube, namespace: str, name: str, replicas: int) -> None:
    await kube.patch_merge(
        f"{deployment_path(namespace, name)}/scale",
        {"spec": {"replicas": replicas}},
        names.SCALER_FIELD_MANAGER,
    )


def _report_silent(namespace: str, name: str, answers: Sequence[PodAnswer]) -> None:
    silent = [answer for answer in answers if answer.figures is None]
    if silent:
        metrics.SCRAPE_FAILURES.labels(namespace, name).inc(len(silent))
        log.info(
            "%s/%s: %d of %d ready pods did not answer (unknown demand, not zero): %s",
            namespace,
            name,
            len(silent),
            len(answers),
            "; ".join(f"{answer.pod}: {answer.error}" for answer in silent),
        )


def _observe(namespace: str, name: str, decision: Decision, current: int, ready: int) -> None:
    metrics.DECISIONS.labels(decision.reason.value).inc()
    gauges = metrics.api_gauges(namespace, name)
    gauges.desired.set(decision.replicas)
    gauges.current.set(current)
    gauges.ready.set(ready)
    if decision.stable_demand is not None:
        gauges.stable_demand.set(decision.stable_demand)
    if decision.panic_demand is not None:
        gauges.panic_demand.set(decision.panic_demand)
