"""examples/ci-rollout/rollout.py as a pipeline runs it, against the real operator: exit 0 with the
history once the new version is rolled out; non-zero with the reason when it is rolled back or
never gets there."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
from kubernetes_asyncio.client import ApiClient

from ferry_local.cluster import ClusterInfo
from ferry_local.wait import wait_until
from tests.integration.test_operator import realtime_api, wait_ready
from tests.support.ferry_operator import REPO, Operator, kubectl

SCRIPT = REPO / "examples" / "ci-rollout" / "rollout.py"
ROLLED_OUT, FAILED, TIMED_OUT = 0, 1, 2


def applied_as_a_pipeline_does(cluster: ClusterInfo, namespace: str, file: Path) -> None:
    """`kubectl apply`, once kubectl's discovery knows the kind (a fresh CRD takes a moment)."""
    wait_until(
        lambda: (
            kubectl(cluster, "apply", "-n", namespace, "-f", str(file), check=False).returncode == 0
        ),
        timeout=60,
        what="kubectl apply of the first manifest",
        interval=0.5,
    )


def failure(done: subprocess.CompletedProcess[str]) -> str:
    """The script's last word on stderr (kubectl may warn before it)."""
    return done.stderr.strip().splitlines()[-1]


def manifest(path: Path, **spec: Any) -> Path:
    body = realtime_api("iris", image="registry.example.com/iris:1")
    body["spec"].update(spec)
    path.write_text(json.dumps(body))
    return path


async def rollout(
    cluster: ClusterInfo, namespace: str, *args: str
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT), "-n", namespace, f"--kubectl={cluster.tool('kubectl')}"]
    return await asyncio.to_thread(
        subprocess.run,
        [*argv, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
    )


async def test_a_good_version_rolls_out_and_the_job_passes_with_the_history(
    api: ApiClient, namespace: str, operator: Operator, cluster: ClusterInfo, tmp_path: Path
) -> None:
    file = manifest(tmp_path / "iris.json")
    applied_as_a_pipeline_does(cluster, namespace, file)
    await wait_ready(api, namespace, "iris")

    done = await rollout(
        cluster, namespace, "-f", str(file), "--image=registry.example.com/iris:2", "--timeout=120"
    )

    assert done.returncode == ROLLED_OUT, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "applied realtimeapi/iris: generation 2"
    assert lines[1].split() == [
        "REVISION",
        "GENERATION",
        "MODEL",
        "IMAGE",
        "STARTED",
        "FINISHED",
        "OUTCOME",
    ]
    rows = [line.split() for line in lines[2:4]]
    assert [(row[0], row[3], row[-1]) for row in rows] == [
        ("1", "registry.example.com/iris:1", "Complete"),
        ("2", "registry.example.com/iris:2", "Complete"),
    ]
    assert lines[-1].startswith("rolled out: ")


async def test_a_version_that_cannot_roll_out_is_rolled_back_and_the_job_fails_saying_why(
    api: ApiClient, namespace: str, operator: Operator, cluster: ClusterInfo, tmp_path: Path
) -> None:
    rollout_spec = {"maxSurge": 1, "maxUnavailable": 0, "progressDeadlineSeconds": 10}
    good = manifest(tmp_path / "good.json", rollout=rollout_spec)
    applied_as_a_pipeline_does(cluster, namespace, good)
    await wait_ready(api, namespace, "iris")
    # The pipeline's manifest also asks for more CPU than any node has.
    bad = manifest(
        tmp_path / "bad.json",
        rollout=rollout_spec,
        predictor={
            "image": "registry.example.com/iris:1",
            "resources": {"cpu": "64", "memory": "128Mi"},
        },
    )

    done = await rollout(
        cluster, namespace, "-f", str(bad), "--image=registry.example.com/iris:2", "--timeout=120"
    )

    assert done.returncode == FAILED, done.stdout + done.stderr
    assert failure(done).startswith("FAILED: RolledBack: generation 2 failed to roll out")
    assert "Insufficient cpu" in failure(done)
    outcomes = [line.split()[-1] for line in done.stdout.splitlines()[2:]]
    assert outcomes[:2] == ["Complete", "RolledBack"]
    # The job ends as soon as the operator gives up: revision 1's pods may still be coming back.
    assert done.stdout.splitlines()[4].endswith("(rollback of 2)")


async def test_a_version_never_pushed_times_the_job_out_with_the_reason(
    api: ApiClient,
    namespace: str,
    operator: Operator,
    cluster: ClusterInfo,
    tmp_path: Path,
    aws_env: dict[str, str],
) -> None:
    bucket = f"ci-{namespace}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="iris/1/model.pkl", Body=b"weights")
    file = manifest(tmp_path / "iris.json", model={"uri": f"s3://{bucket}/iris", "version": "1"})
    applied_as_a_pipeline_does(cluster, namespace, file)
    await wait_ready(api, namespace, "iris")

    done = await rollout(cluster, namespace, "-f", str(file), "--model-version=5", "--timeout=6")

    assert done.returncode == TIMED_OUT, done.stdout + done.stderr
    assert failure(done).startswith("FAILED: not rolled out after 6s; last VersionNotFound:")
