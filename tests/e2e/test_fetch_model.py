"""`ferry fetch-model` against moto's server: one version, whole or nothing, nothing outside."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from ferry_local.aws import MotoServer
from tests.e2e.conftest import BIN


@pytest.fixture
def bucket(aws_env: dict[str, str]) -> tuple[Any, str]:
    s3 = boto3.client("s3")
    name = f"models-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return s3, name


def fetch_model(moto: MotoServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ferry"), "fetch-model", *args],
        env={**os.environ, **moto.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def test_one_version_arrives_whole_with_its_tree(
    moto: MotoServer, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, name = bucket
    files = {
        "weights.bin": os.urandom(3 * 2**20),
        "config.json": b'{"layers": 3}',
        "tokenizer/vocab.txt": b"a\nb\n",
    }
    for key, body in files.items():
        s3.put_object(Bucket=name, Key=f"iris/7/{key}", Body=body)
    s3.put_object(Bucket=name, Key="iris/7/empty-folder/", Body=b"")
    s3.put_object(Bucket=name, Key="iris/6/weights.bin", Body=b"old")
    s3.put_object(Bucket=name, Key="iris/70/weights.bin", Body=b"other")
    dest = tmp_path / "model"

    result = fetch_model(moto, f"s3://{name}/iris", "--version=7", f"--dest={dest}")
    assert result.returncode == 0, result.stderr
    for key, body in files.items():
        assert (dest / key).read_bytes() == body
    marker = json.loads((dest / ".ferry-model.json").read_text())
    assert marker["version"] == "7"
    assert marker["files"] == 3
    assert leftovers(tmp_path) == ["model"]

    again = fetch_model(moto, f"s3://{name}/iris", "--version=7", f"--dest={dest}")
    assert again.returncode == 0
    assert "already holds" in again.stderr


def test_latest_is_the_highest_numbered_version(
    moto: MotoServer, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, name = bucket
    for version in ("2", "10", "9", "notes"):
        s3.put_object(Bucket=name, Key=f"m/{version}/v.txt", Body=version.encode())
    result = fetch_model(moto, f"s3://{name}/m", f"--dest={tmp_path / 'model'}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model" / "v.txt").read_text() == "10"


def test_a_newer_version_replaces_the_old_one(
    moto: MotoServer, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, name = bucket
    s3.put_object(Bucket=name, Key="m/1/only-in-one", Body=b"1")
    s3.put_object(Bucket=name, Key="m/2/only-in-two", Body=b"2")
    dest = tmp_path / "model"
    assert fetch_model(moto, f"s3://{name}/m", "--version=1", f"--dest={dest}").returncode == 0
    assert fetch_model(moto, f"s3://{name}/m", "--version=2", f"--dest={dest}").returncode == 0
    assert leftovers(dest) == [".ferry-model.json", "only-in-two"]
    assert leftovers(tmp_path) == ["model"]


@pytest.mark.parametrize("key", ["m/1/../../escape", "m/1//absolute", "m/1/a/./b"])
def test_keys_that_would_escape_are_refused_and_nothing_is_written(
    moto: MotoServer, bucket: tuple[Any, str], tmp_path: Path, key: str
) -> None:
    s3, name = bucket
    s3.put_object(Bucket=name, Key="m/1/fine", Body=b"ok")
    s3.put_object(Bucket=name, Key=key, Body=b"evil")
    dest = tmp_path / "deep" / "model"
    result = fetch_model(moto, f"s3://{name}/m", "--version=1", f"--dest={dest}")
    assert result.returncode == 1
    assert "refusing key" in result.stderr
    assert leftovers(tmp_path / "deep") == []
    assert not list(tmp_path.rglob("escape"))


def test_a_missing_bucket_says_so(
    moto: MotoServer, aws_env: dict[str, str], tmp_path: Path
) -> None:
    result = fetch_model(moto, "s3://no-such-bucket-ferry/m", "--version=1", f"--dest={tmp_path}/m")
    assert result.returncode == 1
    assert "bucket 'no-such-bucket-ferry' does not exist" in result.stderr


def test_an_empty_version_names_the_versions_that_exist(
    moto: MotoServer, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, name = bucket
    s3.put_object(Bucket=name, Key="m/3/w", Body=b"w")
    s3.put_object(Bucket=name, Key="m/4/w", Body=b"w")
    result = fetch_model(moto, f"s3://{name}/m", "--version=5", f"--dest={tmp_path / 'model'}")
    assert result.returncode == 1
    assert f"nothing under s3://{name}/m/5/; versions there: 3, 4" in result.stderr
    assert leftovers(tmp_path) == []
    empty = fetch_model(moto, f"s3://{name}/none", f"--dest={tmp_path / 'model'}")
    assert empty.returncode == 1
    assert f"no numbered versions under s3://{name}/none" in empty.stderr


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        # A file and a folder of the same name: one of them cannot be made.
        (["m/1/a", "m/1/a/b"], ["m/1/a", "m/1/a/b"]),
        (["m/1/a/b/c", "m/1/a/b"], ["m/1/a/b", "m/1/a/b/c"]),
        (["m/1/a", "m/1/a/"], ["m/1/a", "m/1/a/"]),
        # The marker Ferry writes would silently replace the model's own file.
        (["m/1/.ferry-model.json"], ["m/1/.ferry-model.json"]),
        # No file system takes a name of more than 255 bytes.
        ([f"m/1/{'n' * 256}"], [f"m/1/{'n' * 256}"]),
    ],
)
def test_keys_that_cannot_all_become_files_are_refused_naming_them_before_any_download(
    moto: MotoServer, bucket: tuple[Any, str], tmp_path: Path, keys: list[str], named: list[str]
) -> None:
    s3, name = bucket
    s3.put_object(Bucket=name, Key="m/1/fine", Body=b"ok")
    for key in keys:
        s3.put_object(Bucket=name, Key=key, Body=b"" if key.endswith("/") else b"data")
    dest = tmp_path / "deep" / "model"
    result = fetch_model(moto, f"s3://{name}/m", "--version=1", f"--dest={dest}")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "refusing key" in result.stderr
    for key in named:
        assert repr(key) in result.stderr
    assert not (tmp_path / "deep").exists()


@pytest.mark.parametrize("marker", ["m/1/", "m/1/empty/", "m/1/weights/"])
def test_folder_markers_that_clash_with_no_file_are_no_obstacle(
    moto: MotoServer, bucket: tuple[Any, str], tmp_path: Path, marker: str
) -> None:
    s3, name = bucket
    s3.put_object(Bucket=name, Key=marker, Body=b"")
    s3.put_object(Bucket=name, Key="m/1/weights/w.bin", Body=b"w")
    dest = tmp_path / "model"
    result = fetch_model(moto, f"s3://{name}/m", "--version=1", f"--dest={dest}")
    assert result.returncode == 0, result.stderr
    assert (dest / "weights" / "w.bin").read_bytes() == b"w"


def test_a_destination_that_cannot_be_written_is_an_error_not_a_traceback(
    moto: MotoServer, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    s3, name = bucket
    s3.put_object(Bucket=name, Key="m/1/w", Body=b"w")
    (tmp_path / "a-file").write_text("not a folder")
    result = fetch_model(moto, f"s3://{name}/m", "--version=1", f"--dest={tmp_path}/a-file/model")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot write into {tmp_path}/a-file" in result.stderr
