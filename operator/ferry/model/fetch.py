"""One version of a model, from s3://bucket/prefix/VERSION/ into the predictor's model directory.

The download lands in a temporary sibling of the directory and is renamed into place only once
every file is there with its listed size, so the predictor never sees half a model. The volume
should therefore be mounted on the directory's parent: a mount point itself cannot be renamed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ferry.artifacts import layout, versions

MARKER = layout.FETCH_MARKER


class FetchError(Exception):
    """The model cannot be fetched as asked; the message says why and what to check."""


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    path: PurePosixPath
    """Where it goes, relative to the model directory."""


@dataclass(frozen=True)
class Fetched:
    uri: str
    version: str
    files: int
    bytes: int
    skipped: bool = False
    """True when the directory already held this version."""


def parse_uri(uri: str) -> tuple[str, str]:
    """Bucket and prefix (without slashes at either end) of an s3:// URI."""
    if not uri.startswith("s3://"):
        raise FetchError(f"expected an s3:// URI, got {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise FetchError(f"no bucket in {uri!r}")
    return bucket, prefix.strip("/")


def version_prefix(prefix: str, version: str) -> str:
    if not version or "/" in version or version in (".", ".."):
        raise FetchError(f"a version is one path segment, got {version!r}")
    return versions.version_prefix(prefix, version)


def latest_version(names: list[str]) -> str | None:
    """The highest numbered version; names that are not numbers are not versions."""
    numbered = versions.numbered_versions(names, "")
    return numbered[0] if numbered else None


def s3_client(parallel: int) -> Any:
    """An S3 client for transfers: bounded retries and timeouts (AWS_ENDPOINT_URL is honoured)."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=max(10, parallel),
    )
    return boto3.session.Session().client("s3", config=config)


class ModelFetcher:
    def __init__(self, client: Any, parallel: int = 8) -> None:
        self._client = client
        self._parallel = parallel

    def fetch(self, uri: str, version: str, dest: Path) -> Fetched:
        bucket, prefix = parse_uri(uri)
        if version == "latest":
            version = self._latest(bucket, prefix, uri)
        where = version_prefix(prefix, version)
        dest = dest.absolute()
        if _holds(dest, uri, version):
            return Fetched(uri, version, 0, 0, skipped=True)
        objects = self._list(bucket, where)
        if not objects:
            known = self._versions(bucket, prefix)
            hint = f"; versions there: {', '.join(sorted(known))}" if known else ""
            raise FetchError(f"nothing under s3://{bucket}/{where}{hint}")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        except OSError as error:
            raise FetchError(f"cannot write into {dest.parent}: {error}") from None
        try:
            self._download(bucket, objects, partial)
            total = sum(item.size for item in objects)
            (partial / MARKER).write_text(
                json.dumps({"uri": uri, "version": version, "files": len(objects), "bytes": total})
            )
            _replace(partial, dest)
        except OSError as error:
            shutil.rmtree(partial, ignore_errors=True)
            raise FetchError(f"cannot write the model into {dest.parent}: {error}") from None
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return Fetched(uri, version, len(objects), total)

    def _pages(self, **kwargs: str) -> Any:
        try:
            yield from self._client.get_paginator("list_objects_v2").paginate(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise FetchError(f"bucket {kwargs['Bucket']!r} does not exist") from None
            raise FetchError(f"cannot list s3://{kwargs['Bucket']}: {error}") from None
        except BotoCoreError as error:
            raise FetchError(f"cannot reach S3: {error}") from None

    def _list(self, bucket: str, where: str) -> list[S3Object]:
        """Every object of the version, checked as a whole before anything is downloaded."""
        sizes = {
            item["Key"]: int(item["Size"])
            for page in self._pages(Bucket=bucket, Prefix=where)
            for item in page.get("Contents", ())
        }
        try:
            files = versions.version_files(sizes, where)
        except layout.LayoutError as error:
            raise FetchError(str(error)) from None
        return [S3Object(key, sizes[key], path) for path, key in files.items()]

    def _versions(self, bucket: str, prefix: str) -> list[str]:
        base = f"{prefix}/" if prefix else ""
        names = []
        for page in self._pages(Bucket=bucket, Prefix=base, Delimiter="/"):
            for common in page.get("CommonPrefixes", ()):
                names.append(common["Prefix"][len(base) :].rstrip("/"))
        return names

    def _latest(self, bucket: str, prefix: str, uri: str) -> str:
        version = latest_version(self._versions(bucket, prefix))
        if version is None:
            raise FetchError(f"no numbered versions under {uri}")
        return version

    def _download(self, bucket: str, objects: list[S3Object], into: Path) -> None:
        for item in objects:
            (into / item.path).parent.mkdir(parents=True, exist_ok=True)
        config = TransferConfig(max_concurrency=self._parallel)
        with create_transfer_manager(self._client, config) as manager:
            futures = [
                (item, manager.download(bucket, item.key, str(into / item.path)))
                for item in objects
            ]
            for item, future in futures:
                try:
                    future.result()
                except (ClientError, BotoCoreError) as error:
                    raise FetchError(f"downloading s3://{bucket}/{item.key}: {error}") from None
        for item in objects:
            size = (into / item.path).stat().st_size
            if size != item.size:
                raise FetchError(
                    f"s3://{bucket}/{item.key}: got {size} bytes, the listing says {item.size}"
                )


def _holds(dest: Path, uri: str, version: str) -> bool:
    try:
        marker = json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and (marker.get("uri"), marker.get("version")) == (uri, version)


def _replace(partial: Path, dest: Path) -> None:
    """Put the complete download where `dest` was, in one rename when `dest` is absent or empty."""
    try:
        if dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
        if not dest.exists():
            partial.rename(dest)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        old.rmdir()
        dest.rename(old)
        partial.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        raise FetchError(
            f"cannot move the model into {dest}: {error} (mount the volume on its parent)"
        ) from None
    # mkdtemp made it private; the predictor may run as another user.
    dest.chmod(0o755)
