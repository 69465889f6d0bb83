"""A pod's status, computed purely from what the agent knows of its containers.

The runners own one `ContainerRecord` each and change it as processes start and stop; this module
turns the records into the `status` the API server shows, with the kubelet's rules for the phase
and the conditions. No I/O: the caller passes the clock and the conditions last published, so the
transition times move only when a condition's status does.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
ALWAYS, ON_FAILURE, NEVER = "Always", "OnFailure", "Never"

SIGKILL = 9


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Running:
    started_at: datetime.datetime


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    finished_at: datetime.datetime
    started_at: datetime.datetime | None = None
    message: str = ""
    signal: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


State = Waiting | Running | Terminated


@dataclass
class ContainerRecord:
    """What is known of one container; its runner is the only writer."""

    name: str
    image: str
    state: State = field(default_factory=lambda: Waiting("PodInitializing"))
    last_terminated: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""


@dataclass(frozen=True)
class PodView:
    init_containers: Sequence[ContainerRecord]
    containers: Sequence[ContainerRecord]
    restart_policy: str = ALWAYS
    pod_ip: str | None = None
    host_ip: str = "127.0.0.1"
    start_time: datetime.datetime | None = None
    # No container will run again (the pod is being deleted or the agent is stopping): the phase
    # is decided as if the restart policy were Never, as the kubelet does for a terminated pod.
    final: bool = False


def timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def initialized(view: PodView) -> bool:
    return all(isinstance(c.state, Terminated) and c.state.succeeded for c in view.init_containers)


def _init_failed_for_good(view: PodView) -> bool:
    policy = NEVER if view.final else view.restart_policy
    return policy == NEVER and any(
        isinstance(c.state, Terminated) and not c.state.succeeded for c in view.init_containers
    )


def phase(view: PodView) -> str:
    """The kubelet's phase rules over the containers' states."""
    if _init_failed_for_good(view):
        return FAILED
    if not initialized(view):
        return PENDING
    policy = NEVER if view.final else view.restart_policy
    running = waiting = succeeded = failed = 0
    for record in view.containers:
        state = record.state
        if isinstance(state, Running):
            running += 1
        elif isinstance(state, Terminated):
            succeeded += state.succeeded
            failed += not state.succeeded
        elif record.last_terminated is not None:
            # Waiting to restart: it has run, so it counts as stopped with its last exit.
            succeeded += record.last_terminated.succeeded
            failed += not record.last_terminated.succeeded
        else:
            waiting += 1
    if waiting:
        return PENDING
    if running or policy == ALWAYS:
        return RUNNING
    if failed == 0:
        return SUCCEEDED
    return FAILED if policy == NEVER else RUNNING


def _unready_names(view: PodView) -> list[str]:
    return [c.name for c in view.containers if not c.ready]


def _incomplete_init_names(view: PodView) -> list[str]:
    return [
        c.name
        for c in view.init_containers
        if not (isinstance(c.state, Terminated) and c.state.succeeded)
    ]


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    # A True condition carries None for reason and message: under the strategic merge patch the
    # status is written with, None removes what the False condition before it said.
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": None if ok or not reason else reason,
        "message": None if ok or not message else message,
    }


def conditions(
    view: PodView, previous: Sequence[Mapping[str, Any]], now: datetime.datetime
) -> list[dict[str, Any]]:
    """The kubelet's four conditions; lastTransitionTime stays while the status stays."""
    current_phase = phase(view)
    completed = current_phase in (SUCCEEDED, FAILED)
    unready = _unready_names(view)
    incomplete = _incomplete_init_names(view)
    containers_ready = not unready and initialized(view) and not completed
    if completed:
        ready_reason, ready_message = "PodCompleted", ""
    else:
        ready_reason = "ContainersNotReady"
        ready_message = f"containers with unready status: [{' '.join(unready)}]"
    computed = [
        _condition("PodReadyToStartContainers", view.pod_ip is not None and not completed),
        _condition(
            "Initialized",
            not incomplete,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        _condition("ContainersReady", containers_ready, ready_reason, ready_message),
        _condition("Ready", containers_ready, ready_reason, ready_message),
    ]
    before = {c.get("type"): c for c in previous}
    for condition in computed:
        old = before.get(condition["type"])
        keep = old is not None and old.get("status") == condition["status"]
        stamp = old.get("lastTransitionTime") if old is not None and keep else None
        condition["lastTransitionTime"] = stamp or timestamp(now)
    return computed


def _state(state: State) -> dict[str, Any]:
    if isinstance(state, Waiting):
        waiting: dict[str, Any] = {"reason": state.reason}
        if state.message:
            waiting["message"] = state.message
        return {"waiting": waiting}
    if isinstance(state, Running):
        return {"running": {"startedAt": timestamp(state.started_at)}}
    terminated: dict[str, Any] = {
        "exitCode": state.exit_code,
        "reason": state.reason,
        "finishedAt": timestamp(state.finished_at),
    }
    if state.started_at is not None:
        terminated["startedAt"] = timestamp(state.started_at)
    if state.message:
        terminated["message"] = state.message
    if state.signal is not None:
        terminated["signal"] = state.signal
    return {"terminated": terminated}


def container_status(record: ContainerRecord) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": record.name,
        "image": record.image,
        "imageID": "",
        "ready": record.ready,
        "started": record.started,
        "restartCount": record.restart_count,
        "state": _state(record.state),
        "lastState": _state(record.last_terminated) if record.last_terminated else {},
    }
    if record.container_id:
        status["containerID"] = record.container_id
    return status


def pod_status(
    view: PodView, previous: Sequence[Mapping[str, Any]], now: datetime.datetime
) -> dict[str, Any]:
    """The `status` to publish. `previous` is the pod's current conditions list."""
    status: dict[str, Any] = {
        "phase": phase(view),
        "conditions": conditions(view, previous, now),
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "initContainerStatuses": [container_status(c) for c in view.init_containers],
        "containerStatuses": [container_status(c) for c in view.containers],
    }
    if view.pod_ip is not None:
        status["podIP"] = view.pod_ip
        status["podIPs"] = [{"ip": view.pod_ip}]
    if view.start_time is not None:
        status["startTime"] = timestamp(view.start_time)
    return status


def _moment(text: object, default: datetime.datetime) -> datetime.datetime:
    """A status timestamp; `default` when it is missing or not one (a status another writer
    left is read, never trusted)."""
    try:
        parsed = datetime.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return default
    return parsed.replace(tzinfo=datetime.UTC)


def _terminated(raw: Mapping[str, Any], now: datetime.datetime) -> Terminated:
    code, signal = raw.get("exitCode"), raw.get("signal")
    return Terminated(
        exit_code=code if isinstance(code, int) else 0,
        reason=str(raw.get("reason") or ""),
        finished_at=_moment(raw.get("finishedAt"), now),
        started_at=_moment(raw.get("startedAt"), now) if raw.get("startedAt") else None,
        message=str(raw.get("message") or ""),
        signal=signal if isinstance(signal, int) else None,
    )


# What a container that was running when its agent died ended with: PR_SET_PDEATHSIG's SIGKILL.
KILLED_WITH_AGENT = "killed with the node agent that ran it"


def carried_over(
    previous: Mapping[str, Any] | None, now: datetime.datetime
) -> tuple[int, Terminated | None]:
    """The restart count and last termination a container starts with when an earlier agent ran
    it (the status that agent wrote), as a kubelet counts a container run again after its node
    restarted: a run that ended counts as a restart, and one that was still running ended when
    its agent did."""
    if not previous:
        return 0, None
    count = previous.get("restartCount")
    count = count if isinstance(count, int) and count >= 0 else 0
    state = previous.get("state") or {}
    last = (previous.get("lastState") or {}).get("terminated")
    if isinstance(ended := state.get("terminated"), Mapping):
        return count + 1, _terminated(ended, now)
    if isinstance(running := state.get("running"), Mapping):
        started = running.get("startedAt")
        killed = Terminated(
            128 + SIGKILL,
            "Error",
            now,
            _moment(started, now) if started else None,
            KILLED_WITH_AGENT,
            signal=SIGKILL,
        )
        return count + 1, killed
    return count, _terminated(last, now) if isinstance(last, Mapping) else None
