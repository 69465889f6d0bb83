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


def assess_version(uri: str, version: str, keys: Iterable[str]) -> ModelCheck:
    """Whether the listed keys (relative to the version's prefix) make a servable version."""
    relative = list(keys)
    markers = {k for k in relative if k.startswith(MARKER_DIR)}
    payload = [k for k in relative if not k.startswith(MARKER_DIR) and not k.endswith("/")]
    where = f"{uri.rstrip('/')}/{version}/"
    if not relative:
        return ModelCheck(ModelReason.VERSION_NOT_FOUND, f"no objects under {where}")
    if UPLOADING_MARKER in markers and COMPLETE_MARKER not in markers:
        return ModelCheck(
            ModelReason.UPLOAD_INCOMPLETE,
            f"{where} is still being uploaded (no {COMPLETE_MARKER} yet)",
        )
    if not payload:
        return ModelCheck(ModelReason.EMPTY_PREFIX, f"{where} holds no model files")
    return ModelCheck(ModelReason.AVAILABLE, f"version {version} at {where}", version)
