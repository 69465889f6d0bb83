"""`ferry model push` and `ferry logs` as a user runs them, against moto's server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import boto3


def ferry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ferry.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_model_push_prints_the_new_version(tmp_path: Path, aws_env: dict[str, str]) -> None:
    boto3.client("s3").create_bucket(Bucket="cli-push")
    (tmp_path / "model.bin").write_bytes(b"w" * 1000)
    first = ferry(aws_env, "model", "push", str(tmp_path), "s3://cli-push/m")
    again = ferry(aws_env, "model", "push", str(tmp_path), "s3://cli-push/m", "--version", "1")
    assert first.returncode == 0, first.stderr
    assert "as version 1: s3://cli-push/m/1/" in first.stdout
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_logs_reads_an_apis_group_back(aws_env: dict[str, str]) -> None:
    logs = boto3.client("logs")
    group = "/ferry/ml/iris"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="iris-abc/predictor")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group,
        logStreamName="iris-abc/predictor",
        logEvents=[
            {"timestamp": now - 5000, "message": "loaded model 7"},
            {"timestamp": now - 1000, "message": "served 12 requests"},
        ],
    )
    shown = ferry(aws_env, "logs", "iris", "-n", "ml", "--since", "1m")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["loaded model 7", "served 12 requests"]
    assert all("iris-abc/predictor" in line for line in lines)

    missing = ferry(aws_env, "logs", "nope", "-n", "ml")
    assert missing.returncode == 1
    assert "no log group /ferry/ml/nope" in missing.stderr
    bad = ferry(aws_env, "logs", "iris", "--since", "yesterday")
    assert bad.returncode == 2
