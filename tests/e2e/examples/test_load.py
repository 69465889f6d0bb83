"""examples/load: the load script against examples/load/realtimeapi.yaml in the local
environment. Every request it sends is answered, its counts add up, and what it reads from the
API's status shows the autoscaler adding replicas during the step up."""

from __future__ import annotations

import json
import subprocess
import sys

from ferry_local.cluster import ClusterInfo
from tests.e2e.examples.conftest import EXAMPLES, run
from tests.support.ferry_operator import kubectl

LOAD = EXAMPLES / "load"
# 2 requests a second for 2 s, then 15 a second for 14 s: at 200 ms each, 3 in flight where
# one replica is meant to carry 1.
PROFILE = "2:2,15:14"
EXPECTED_SENT = 2 * 2 + 15 * 14


def load_echo(cluster: ClusterInfo, *options: str) -> str:
    """What load.py prints, sent at examples/load's API once it is Ready."""
    kubectl(cluster, "apply", "-f", str(LOAD / "realtimeapi.yaml"))
    kubectl(cluster, "wait", "--for=condition=Ready", "rtapi/echo-load", "--timeout=120s")
    return run(
        [
            sys.executable,
            str(LOAD / "load.py"),
            "--api=echo-load",
            f"--kubeconfig={cluster.kubeconfig}",
            *options,
        ]
    )


def test_a_step_up_in_load_shows_replicas_rising_with_no_request_failing(
    local_env: ClusterInfo,
) -> None:
    output = load_echo(
        local_env,
        f"--profile={PROFILE}",
        "--json",
        # Each request balanced anew by kube-proxy: kept-alive connections opened before the
        # scale-up would stay on the first replica and keep its backlog for as long as the
        # load lasts (the README's run shows it), and the latency below is the replicas'.
        "--connections=per-request",
    )
    *seconds, last = [json.loads(line) for line in output.splitlines()]
    summary = last["summary"]

    assert summary["sent"] == EXPECTED_SENT, summary
    assert summary["connections"] == "per-request"
    assert (summary["ok"], summary["failed"], summary["failures"]) == (EXPECTED_SENT, 0, {})
    assert sum(second["sent"] for second in seconds) <= EXPECTED_SENT
    assert sum(second["ok"] for second in seconds) <= summary["ok"]
    assert [second["t"] for second in seconds] == list(range(1, len(seconds) + 1))
    assert [second["rate"] for second in seconds[:6]] == [2, 2, 15, 15, 15, 15]
    # The predictor takes 200 ms a request; the proxy adds little to that.
    assert 200 <= summary["p50Ms"] < 1000
    assert summary["replicasFirst"] == 1
    assert summary["desiredMax"] >= 2
    assert summary["replicasMax"] >= 2
    assert any(second["readyReplicas"] and second["readyReplicas"] >= 2 for second in seconds)


def test_requests_go_over_kept_alive_connections_by_default_and_are_all_answered(
    local_env: ClusterInfo,
) -> None:
    output = load_echo(local_env, "--profile=4:3")
    summary = output.splitlines()[-1]

    assert summary.startswith("sent 12 in "), output
    assert " over keep-alive connections: 12 ok, 0 failed (none); " in summary, output


def test_requests_can_go_through_the_gateway_at_the_apis_url(local_env: ClusterInfo) -> None:
    output = load_echo(local_env, "--profile=4:3", "--via=gateway", "--json")
    summary = json.loads(output.splitlines()[-1])["summary"]

    assert (summary["sent"], summary["ok"], summary["failures"]) == (12, 12, {}), output


def load_without_a_cluster_ip(cluster: ClusterInfo, api: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(LOAD / "load.py"),
            f"--api={api}",
            "--profile=1:1",
            f"--kubeconfig={cluster.kubeconfig}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_an_api_with_no_service_is_an_error_that_says_what_to_do(local_env: ClusterInfo) -> None:
    result = load_without_a_cluster_ip(local_env, "absent")

    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "load: service default/absent not found: apply the RealtimeAPI and wait for it to be "
        "Ready (kubectl wait --for=condition=Ready rtapi/absent)\n"
    )


def test_a_headless_service_is_an_error_not_a_traceback(local_env: ClusterInfo) -> None:
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "headless", "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": {"app": "headless"}, "ports": [{"port": 80}]},
    }
    kubectl(local_env, "apply", "-f", "-", stdin=json.dumps(headless))
    try:
        result = load_without_a_cluster_ip(local_env, "headless")
    finally:
        kubectl(local_env, "delete", "service", "headless")

    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "load: service default/headless is headless: it has no ClusterIP to send to; "
        "send through --url instead\n"
    )


def test_a_profile_it_cannot_follow_is_a_usage_error_naming_the_stage() -> None:
    for profile, words in [
        ("20", "'20': each stage is RATE:SECONDS"),
        ("2:10,fast:5", "'fast:5': each stage is RATE:SECONDS"),
        ("2:0", "seconds above 0"),
    ]:
        result = subprocess.run(
            [sys.executable, str(LOAD / "load.py"), "--api=x", f"--profile={profile}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert words in result.stderr
