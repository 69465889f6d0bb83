"""The model check against moto's S3 server: every reason a person can act on, and "latest"."""

from __future__ import annotations

from collections.abc import AsyncIterator

import boto3
import pytest

from ferry.adapters.aws import Aws, AwsSettings
from ferry.artifacts.versions import ModelReason
from ferry.services.model import check_model
from ferry.spec.model import ModelSource
from ferry_local.aws import MotoServer


@pytest.fixture
async def aws(aws_env: dict[str, str]) -> AsyncIterator[Aws]:
    adapter = Aws(AwsSettings.from_env(aws_env))
    yield adapter
    adapter.close()


@pytest.fixture
def bucket(moto: MotoServer, aws_env: dict[str, str]) -> str:
    s3 = boto3.client("s3")
    name = "models-check"
    if name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=name)
    for key in [
        "iris/1/model.pkl",
        "iris/3/model.pkl",
        "iris/3/.ferry/uploading",
        "iris/2/.ferry/uploading",
        "iris/2/model.pkl",
        "iris/2/.ferry/complete",
        "empty/notes/readme.txt",
    ]:
        s3.put_object(Bucket=name, Key=key, Body=b"x")
    return name


@pytest.mark.parametrize(
    ("uri", "version", "reason", "resolved"),
    [
        ("s3://models-check/iris", "1", ModelReason.AVAILABLE, "1"),
        ("s3://models-check/iris", "2", ModelReason.AVAILABLE, "2"),
        ("s3://models-check/iris", "3", ModelReason.UPLOAD_INCOMPLETE, None),
        ("s3://models-check/iris", "9", ModelReason.VERSION_NOT_FOUND, None),
        # 3 is still uploading: "latest" is the highest complete version.
        ("s3://models-check/iris", "latest", ModelReason.AVAILABLE, "2"),
        ("s3://models-check/empty", "latest", ModelReason.EMPTY_PREFIX, None),
        ("s3://no-such-bucket-here/iris", "1", ModelReason.NO_SUCH_BUCKET, None),
    ],
)
async def test_check_model(
    aws: Aws, bucket: str, uri: str, version: str, reason: ModelReason, resolved: str | None
) -> None:
    check = await check_model(aws, ModelSource(uri, version))
    assert (check.reason, check.version) == (reason, resolved), check.message
