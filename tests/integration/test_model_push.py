"""`ferry model push` against moto's S3: versions, markers, and nothing overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from ferry.adapters.aws import Aws, AwsSettings
from ferry.model.push import PushError, push
from ferry.services.model import check_model
from ferry.spec.model import ModelSource


def model_dir(tmp_path: Path, payload: bytes) -> Path:
    root = tmp_path / f"model-{len(list(tmp_path.iterdir()))}"
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "layer.bin").write_bytes(payload)
    (root / "config.json").write_text('{"layers": 1}')
    return root


async def test_pushed_versions_number_up_and_become_latest(
    tmp_path: Path, aws_env: dict[str, str]
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="pushes")
    seen: list[tuple[int, int]] = []
    first = push(
        s3,
        model_dir(tmp_path, b"a" * 40_000),
        "s3://pushes/bert",
        progress=lambda done, total: seen.append((done, total)),
    )
    second = push(s3, model_dir(tmp_path, b"b" * 50), "s3://pushes/bert")
    assert (first.version, second.version) == ("1", "2")
    assert seen[-1] == (first.bytes, first.bytes)

    body = s3.get_object(Bucket="pushes", Key="bert/1/weights/layer.bin")["Body"].read()
    assert body == b"a" * 40_000
    manifest = json.loads(
        s3.get_object(Bucket="pushes", Key="bert/2/.ferry/complete")["Body"].read()
    )
    assert manifest == {"config.json": 13, "weights/layer.bin": 50}

    aws = Aws(AwsSettings.from_env(aws_env))
    try:
        check = await check_model(aws, ModelSource("s3://pushes/bert", "latest"))
    finally:
        aws.close()
    assert check.version == "2"


def test_an_existing_version_is_never_overwritten(tmp_path: Path, aws_env: dict[str, str]) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="keep")
    push(s3, model_dir(tmp_path, b"original"), "s3://keep/m", version="3")
    with pytest.raises(PushError, match=r"s3://keep/m/3/ already exists"):
        push(s3, model_dir(tmp_path, b"replacement"), "s3://keep/m", version="3")
    assert s3.get_object(Bucket="keep", Key="m/3/weights/layer.bin")["Body"].read() == b"original"


@pytest.mark.parametrize(
    ("uri", "words"), [("https://x/y", "expected s3://bucket/prefix"), ("s3://", "expected")]
)
def test_a_bad_uri_is_refused(tmp_path: Path, uri: str, words: str) -> None:
    with pytest.raises(PushError, match=words):
        push(None, model_dir(tmp_path, b"x"), uri)


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PushError, match="holds no files"):
        push(None, tmp_path / "empty", "s3://b/p")
