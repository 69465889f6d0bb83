"""Uploading a model directory as a new version, so that no half-upload is ever served.

The version is marked `.ferry/uploading` first and `.ferry/complete` last (with a manifest of
every key and size); the operator serves a version only once it is complete. An existing version
is never overwritten: Ferry does not replace or delete a user's objects.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from ferry.artifacts.versions import (
    COMPLETE_MARKER,
    UPLOADING_MARKER,
    numbered_versions,
    version_prefix,
)

PARALLEL_FILES = 8
# Files above this go up in parallel parts; below it one PUT is faster.
TRANSFER = TransferConfig(
    multipart_threshold=16 * 2**20, multipart_chunksize=16 * 2**20, max_concurrency=4
)


class PushError(RuntimeError):
    """The push cannot start: the message says what to change."""


@dataclass(frozen=True)
class Pushed:
    uri: str
    version: str
    files: int
    bytes: int


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise PushError(f"expected s3://bucket/prefix, got {uri!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def next_version(s3: Any, bucket: str, prefix: str) -> str:
    base = f"{prefix}/" if prefix else ""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base, Delimiter="/")
    found = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
    versions = numbered_versions(found, prefix)
    return str(int(versions[0]) + 1) if versions else "1"


def files_of(directory: Path) -> list[tuple[Path, str]]:
    """(path, key relative to the version) of every regular file, in a stable order."""
    if not directory.is_dir():
        raise PushError(f"{directory} is not a directory")
    found = sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink())
    if not found:
        raise PushError(f"{directory} holds no files")
    return [(path, path.relative_to(directory).as_posix()) for path in found]


def push(
    s3: Any,
    directory: Path,
    uri: str,
    *,
    version: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Pushed:
    """Upload `directory` as `version` (default: one above the highest) under `uri`."""
    bucket, prefix = split_uri(uri)
    files = files_of(directory)
    version = version or next_version(s3, bucket, prefix)
    if not version.isdigit():
        raise PushError(f"a version is a number, got {version!r}")
    where = version_prefix(prefix, version)
    if s3.list_objects_v2(Bucket=bucket, Prefix=where, MaxKeys=1).get("KeyCount", 0):
        raise PushError(f"s3://{bucket}/{where} already exists; push a new version (--next)")

    total = sum(path.stat().st_size for path, _ in files)
    sent = 0
    lock = threading.Lock()

    def advance(size: int) -> None:
        nonlocal sent
        with lock:
            sent += size
            if progress is not None:
                progress(sent, total)

    manifest = {key: path.stat().st_size for path, key in files}
    s3.put_object(Bucket=bucket, Key=where + UPLOADING_MARKER, Body=b"")
    with ThreadPoolExecutor(max_workers=PARALLEL_FILES) as pool:
        uploads = [
            pool.submit(
                s3.upload_file, str(path), bucket, where + key, Config=TRANSFER, Callback=advance
            )
            for path, key in files
        ]
        for upload in uploads:
            upload.result()
    s3.put_object(Bucket=bucket, Key=where + COMPLETE_MARKER, Body=json.dumps(manifest).encode())
    return Pushed(f"s3://{bucket}/{where}", version, len(files), total)
