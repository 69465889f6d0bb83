"""Versions of a model under an s3:// prefix, and when a version may be served.

Versions are numbered sub-prefixes: s3://bucket/iris/7/. `ferry model push` marks a version it
is uploading with `.ferry/uploading` first and `.ferry/complete` last, so a half-uploaded version
is never served; a version uploaded by other tools (no `.ferry/` keys) is served once it holds
objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from ferry.artifacts.layout import LayoutError, check_tree, relative_path

MARKER_DIR = ".ferry/"
UPLOADING_MARKER = ".ferry/uploading"
COMPLETE_MARKER = ".ferry/complete"


class ModelReason(StrEnum):
    AVAILABLE = "ModelAvailable"
    CHECKING = "Checking"
    CHECK_FAILED = "CheckFailed"
    """An attempt to check failed (S3 unreachable, throttling, a timeout): no verdict yet."""
    NO_SUCH_BUCKET = "NoSuchBucket"
    ACCESS_DENIED = "AccessDenied"
    EMPTY_PREFIX = "EmptyPrefix"
    VERSION_NOT_FOUND = "VersionNotFound"
    UPLOAD_INCOMPLETE = "UploadIncomplete"
    UNFETCHABLE = "Unfetchable"
    """Keys that cannot all become files (`a` beside `a/b`): the fetch would refuse them."""


@dataclass(frozen=True)
class ModelCheck:
    reason: ModelReason
    message: str
    version: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is ModelReason.AVAILABLE


def version_prefix(prefix: str, version: str) -> str:
    return f"{prefix}/{version}/" if prefix else f"{version}/"


def numbered_versions(common_prefixes: Iterable[str], prefix: str) -> list[str]:
    """Version names under `prefix`, highest first; sub-prefixes that are not numbers are not
    versions."""
    base = f"{prefix}/" if prefix else ""
    names = [p.removeprefix(base).rstrip("/") for p in common_prefixes]
    return sorted((n for n in names if n.isdigit()), key=int, reverse=True)


def version_files(keys: Iterable[str], where: str) -> dict[PurePosixPath, str]:
    """The files a version's keys make in the model directory, each with its key: upload
    markers and folder markers hold nothing to fetch. LayoutError if the keys cannot all become
    files side by side."""
    files: dict[PurePosixPath, str] = {}
    folders: dict[PurePosixPath, str] = {}
    for key in keys:
        relative = key[len(where) :]
        if relative.startswith(MARKER_DIR):
            continue
        path = relative_path(key, where)
        if path is not None:
            files[path] = key
        elif key != where:
            folders[PurePosixPath(relative)] = key
    check_tree(files, folders)
    return files


def assess_version(uri: str, version: str, keys: Iterable[str]) -> ModelCheck:
    """Whether the listed keys (relative to the version's prefix) make a servable version."""
    relative = list(keys)
    markers = {k for k in relative if k.startswith(MARKER_DIR)}
    where = f"{uri.rstrip('/')}/{version}/"
    if not relative:
        return ModelCheck(ModelReason.VERSION_NOT_FOUND, f"no objects under {where}")
    if UPLOADING_MARKER in markers and COMPLETE_MARKER not in markers:
        return ModelCheck(
            ModelReason.UPLOAD_INCOMPLETE,
            f"{where} is still being uploaded (no {COMPLETE_MARKER} yet)",
        )
    try:
        payload = version_files(relative, "")
    except LayoutError as error:
        return ModelCheck(ModelReason.UNFETCHABLE, f"{where}: {error}")
    if not payload:
        return ModelCheck(ModelReason.EMPTY_PREFIX, f"{where} holds no model files")
    return ModelCheck(ModelReason.AVAILABLE, f"version {version} at {where}", version)
