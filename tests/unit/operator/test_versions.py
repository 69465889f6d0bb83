"""Which S3 versions may be served: numbered, non-empty, and not half-uploaded."""

from __future__ import annotations

import pytest

from ferry.artifacts.versions import (
    ModelReason,
    assess_version,
    numbered_versions,
    version_prefix,
)

URI = "s3://acme/iris"


def test_versions_are_numbered_sub_prefixes_highest_first() -> None:
    prefixes = ["iris/2/", "iris/10/", "iris/latest/", "iris/9/", "iris/tmp/"]
    assert numbered_versions(prefixes, "iris") == ["10", "9", "2"]
    assert numbered_versions(["3/", "1/"], "") == ["3", "1"]
    assert version_prefix("iris", "7") == "iris/7/"
    assert version_prefix("", "7") == "7/"


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        ([], ModelReason.VERSION_NOT_FOUND),
        (["model.pkl"], ModelReason.AVAILABLE),
        ([".ferry/uploading", "model.pkl"], ModelReason.UPLOAD_INCOMPLETE),
        ([".ferry/uploading", "model.pkl", ".ferry/complete"], ModelReason.AVAILABLE),
        ([".ferry/complete"], ModelReason.EMPTY_PREFIX),
        (["weights/"], ModelReason.EMPTY_PREFIX),
        # What `ferry fetch-model` would refuse is not servable either.
        (["weights", "weights/a.bin"], ModelReason.UNFETCHABLE),
        (["weights", "weights/"], ModelReason.UNFETCHABLE),
        (["../model.pkl"], ModelReason.UNFETCHABLE),
        ([".ferry-model.json"], ModelReason.UNFETCHABLE),
    ],
)
def test_a_version_is_servable_only_when_complete_and_not_empty(
    keys: list[str], reason: ModelReason
) -> None:
    check = assess_version(URI, "7", keys)
    assert check.reason is reason
    assert check.available == (reason is ModelReason.AVAILABLE)
    assert "s3://acme/iris/7/" in check.message
