"""Checking that an API's model version is in S3 before anything rolls out, and resolving
"latest" to a number."""

from __future__ import annotations

from typing import Any

from ferry.adapters.aws import Aws, AwsPermanentError, AwsTemporaryError
from ferry.artifacts.versions import (
    ModelCheck,
    ModelReason,
    assess_version,
    numbered_versions,
    version_prefix,
)
from ferry.spec.model import ModelSource

LATEST = "latest"


async def _list(aws: Aws, bucket: str, prefix: str, *, delimiter: bool) -> dict[str, list[str]]:
    """Keys and sub-prefixes under `prefix`, across every page."""
    keys: list[str] = []
    prefixes: list[str] = []
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter:
        params["Delimiter"] = "/"
    while True:
        page = await aws.call("s3", "list_objects_v2", **params)
        keys += [item["Key"] for item in page.get("Contents", [])]
        prefixes += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
        if not page.get("IsTruncated"):
            return {"keys": keys, "prefixes": prefixes}
        params["ContinuationToken"] = page["NextContinuationToken"]


async def _check_version(aws: Aws, source: ModelSource, version: str) -> ModelCheck:
    where = version_prefix(source.prefix, version)
    listed = await _list(aws, source.bucket, where, delimiter=False)
    return assess_version(source.uri, version, (k.removeprefix(where) for k in listed["keys"]))


def checking(source: ModelSource) -> ModelCheck:
    """What the status says while the model is checked, before any verdict."""
    if source.version == LATEST:
        return ModelCheck(
            ModelReason.CHECKING, f"looking for the latest complete version under {source.uri}"
        )
    where = f"{source.uri.rstrip('/')}/{source.version}/"
    return ModelCheck(ModelReason.CHECKING, f"looking for version {source.version} at {where}")


def check_failed(error: AwsTemporaryError, attempt: int, delay: float) -> ModelCheck:
    """A check that met an AWS fault a retry may fix: still no verdict; say what failed and when
    the next attempt comes."""
    return ModelCheck(
        ModelReason.CHECK_FAILED,
        f"checking the model: attempt {attempt} failed: {error}; next attempt in {delay:g}s",
    )


async def check_model(aws: Aws, source: ModelSource) -> ModelCheck:
    """Whether the version is there; "latest" becomes the highest complete numbered version.

    AWS faults a retry may fix are raised (AwsTemporaryError); the rest become a reason.
    """
    try:
        if source.version != LATEST:
            return await _check_version(aws, source, source.version)
        base = f"{source.prefix}/" if source.prefix else ""
        listed = await _list(aws, source.bucket, base, delimiter=True)
        versions = numbered_versions(listed["prefixes"], source.prefix)
        if not versions:
            return ModelCheck(
                ModelReason.EMPTY_PREFIX,
                f"{source.uri} holds no numbered versions (expected {source.uri.rstrip('/')}/1/…)",
            )
        for version in versions:
            check = await _check_version(aws, source, version)
            if check.available:
                return check
        return ModelCheck(
            ModelReason.VERSION_NOT_FOUND,
            f"none of the versions under {source.uri} ({', '.join(versions)}) is complete",
        )
    except AwsPermanentError as error:
        if error.code in ("NoSuchBucket", "404"):
            return ModelCheck(ModelReason.NO_SUCH_BUCKET, f"bucket {source.bucket} does not exist")
        if error.code in ("AccessDenied", "403"):
            return ModelCheck(
                ModelReason.ACCESS_DENIED,
                f"the operator may not list s3://{source.bucket}/{source.prefix}: {error}",
            )
        raise
