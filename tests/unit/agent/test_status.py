"""A pod's phase and conditions follow the kubelet's rules over its containers' states."""

from __future__ import annotations

import datetime

import pytest

from ferry_local.agent.status import (
    ALWAYS,
    NEVER,
    ON_FAILURE,
    ContainerRecord,
    PodView,
    Running,
    State,
    Terminated,
    Waiting,
    carried_over,
    conditions,
    container_status,
    phase,
    pod_status,
)

T0 = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
LATER = T0 + datetime.timedelta(minutes=1)


def record(state: State, last: Terminated | None = None, ready: bool = False) -> ContainerRecord:
    return ContainerRecord("c", "img", state=state, last_terminated=last, ready=ready)


def ok() -> Terminated:
    return Terminated(0, "Completed", T0)


def failed(code: int = 1) -> Terminated:
    return Terminated(code, "Error", T0)


RUNNING = Running(T0)
WAITING = Waiting("ContainerCreating")
BACKING_OFF = Waiting("CrashLoopBackOff")


@pytest.mark.parametrize(
    ("init", "containers", "policy", "expected"),
    [
        ([], [record(WAITING)], ALWAYS, "Pending"),
        ([record(RUNNING)], [record(WAITING)], ALWAYS, "Pending"),
        ([record(failed())], [record(WAITING)], ALWAYS, "Pending"),
        ([record(failed())], [record(WAITING)], NEVER, "Failed"),
        ([record(ok())], [record(RUNNING)], ALWAYS, "Running"),
        ([], [record(RUNNING), record(WAITING)], ALWAYS, "Pending"),
        ([], [record(RUNNING), record(ok())], NEVER, "Running"),
        ([], [record(BACKING_OFF, last=failed())], ALWAYS, "Running"),
        ([], [record(BACKING_OFF, last=failed())], ON_FAILURE, "Running"),
        ([], [record(ok())], ALWAYS, "Running"),
        ([], [record(ok()), record(ok())], ON_FAILURE, "Succeeded"),
        ([], [record(ok()), record(ok())], NEVER, "Succeeded"),
        ([], [record(ok()), record(failed())], NEVER, "Failed"),
        ([], [record(ok()), record(failed())], ON_FAILURE, "Running"),
    ],
)
def test_the_phase_follows_the_containers_and_the_restart_policy(
    init: list[ContainerRecord], containers: list[ContainerRecord], policy: str, expected: str
) -> None:
    assert phase(PodView(init, containers, policy)) == expected


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([record(ok())], "Succeeded"),
        ([record(failed(143))], "Failed"),
        ([record(ok()), record(failed(137))], "Failed"),
    ],
)
def test_a_deleted_pod_ends_in_a_terminal_phase_whatever_its_policy(
    containers: list[ContainerRecord], expected: str
) -> None:
    assert phase(PodView([], containers, ALWAYS, final=True)) == expected


def test_ready_needs_every_container_ready_and_says_which_are_not() -> None:
    one = ContainerRecord("a", "img", state=RUNNING, ready=True)
    two = ContainerRecord("b", "img", state=RUNNING, ready=False)
    found = {
        c["type"]: c for c in conditions(PodView([], [one, two], pod_ip="127.128.0.9"), [], T0)
    }
    assert found["Ready"]["status"] == found["ContainersReady"]["status"] == "False"
    assert found["Ready"]["reason"] == "ContainersNotReady"
    assert found["Ready"]["message"] == "containers with unready status: [b]"
    assert found["Initialized"]["status"] == "True"
    assert found["PodReadyToStartContainers"]["status"] == "True"
    two.ready = True
    found = {c["type"]: c for c in conditions(PodView([], [one, two], pod_ip="x"), [], T0)}
    # None clears the earlier reason and message under the strategic merge patch.
    assert found["Ready"] == {
        "type": "Ready",
        "status": "True",
        "reason": None,
        "message": None,
        "lastTransitionTime": "2030-01-02T03:04:05Z",
    }


def test_initialized_names_the_init_containers_not_done() -> None:
    first = ContainerRecord("first", "img", state=ok())
    second = ContainerRecord("second", "img", state=RUNNING)
    view = PodView([first, second], [record(Waiting("PodInitializing"))])
    found = {c["type"]: c for c in conditions(view, [], T0)}
    assert found["Initialized"]["status"] == "False"
    assert found["Initialized"]["message"] == "containers with incomplete status: [second]"


def test_a_transition_time_moves_only_when_the_status_does() -> None:
    view = PodView([], [record(RUNNING, ready=False)], pod_ip="x")
    before = conditions(view, [], T0)
    unchanged = conditions(view, before, LATER)
    assert [c["lastTransitionTime"] for c in unchanged] == ["2030-01-02T03:04:05Z"] * 4
    view.containers[0].ready = True
    moved = {c["type"]: c["lastTransitionTime"] for c in conditions(view, before, LATER)}
    assert moved["Ready"] == moved["ContainersReady"] == "2030-01-02T03:05:05Z"
    assert moved["Initialized"] == "2030-01-02T03:04:05Z"


def test_a_completed_pod_is_not_ready_because_it_completed() -> None:
    view = PodView([], [record(ok())], NEVER, pod_ip="x")
    found = {c["type"]: c for c in conditions(view, [], T0)}
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "PodCompleted")
    assert found["PodReadyToStartContainers"]["status"] == "False"


def test_container_statuses_show_state_last_state_and_restarts() -> None:
    crashed = Terminated(3, "Error", LATER, started_at=T0)
    crasher = ContainerRecord(
        "crasher",
        "test/shell",
        state=Waiting("CrashLoopBackOff", "back-off 10s"),
        last_terminated=crashed,
        restart_count=2,
        container_id="process://42",
    )
    status = pod_status(PodView([], [crasher], pod_ip="127.128.0.3", start_time=T0), [], LATER)
    assert status["containerStatuses"] == [
        {
            "name": "crasher",
            "image": "test/shell",
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
            "lastState": {
                "terminated": {
                    "exitCode": 3,
                    "reason": "Error",
                    "startedAt": "2030-01-02T03:04:05Z",
                    "finishedAt": "2030-01-02T03:05:05Z",
                }
            },
            "containerID": "process://42",
        }
    ]
    assert status["podIP"] == "127.128.0.3"
    assert status["podIPs"] == [{"ip": "127.128.0.3"}]
    assert status["startTime"] == "2030-01-02T03:04:05Z"
    assert status["phase"] == "Running"


def test_a_pod_without_an_address_yet_shows_none() -> None:
    status = pod_status(PodView([], [record(WAITING)]), [], T0)
    assert "podIP" not in status
    assert "startTime" not in status


def written(record: ContainerRecord) -> dict[str, object]:
    """The container's status as an earlier agent wrote it."""
    return container_status(record)


def test_a_container_running_when_its_agent_died_restarts_counted_as_killed_with_it() -> None:
    before = ContainerRecord("c", "img", state=Running(T0), restart_count=2)
    count, last = carried_over(written(before), LATER)
    assert count == 3
    assert last == Terminated(
        137, "Error", LATER, T0, "killed with the node agent that ran it", signal=9
    )


def test_a_container_its_agent_stopped_restarts_with_that_exit_as_its_last() -> None:
    ended = Terminated(0, "Completed", LATER, T0)
    count, last = carried_over(written(ContainerRecord("c", "img", state=ended)), LATER)
    assert (count, last) == (1, ended)


def test_a_container_waiting_to_restart_keeps_its_count_and_last_exit() -> None:
    crashed = Terminated(3, "Error", LATER, T0)
    waiting = ContainerRecord(
        "c", "img", state=Waiting("CrashLoopBackOff"), last_terminated=crashed, restart_count=4
    )
    assert carried_over(written(waiting), LATER) == (4, crashed)


@pytest.mark.parametrize(
    "previous",
    [
        None,
        {},
        {"restartCount": "many", "state": {"waiting": {}}},
        {"restartCount": -1, "lastState": {"terminated": "gone"}},
    ],
)
def test_a_container_never_run_or_a_status_not_understood_starts_afresh(
    previous: dict[str, object] | None,
) -> None:
    assert carried_over(previous, LATER) == (0, None)


def test_a_status_with_odd_fields_is_read_without_failing() -> None:
    previous = {"restartCount": 1, "state": {"terminated": {"exitCode": "x", "finishedAt": "?"}}}
    assert carried_over(previous, LATER) == (2, Terminated(0, "", LATER, None))
