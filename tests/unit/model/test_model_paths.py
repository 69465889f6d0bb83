"""Where S3 keys land, and which they may not."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from ferry.model.fetch import FetchError, latest_version, parse_uri, relative_path, version_prefix


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("s3://b/iris", ("b", "iris")),
        ("s3://b/a/b/", ("b", "a/b")),
        ("s3://b", ("b", "")),
    ],
)
def test_uris(uri: str, parsed: tuple[str, str]) -> None:
    assert parse_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["http://b/x", "s3:///x", "b/x"])
def test_bad_uris(uri: str) -> None:
    with pytest.raises(FetchError):
        parse_uri(uri)


def test_version_prefixes() -> None:
    assert version_prefix("iris", "7") == "iris/7/"
    assert version_prefix("", "7") == "7/"
    for bad in ("", "..", "7/8"):
        with pytest.raises(FetchError):
            version_prefix("iris", bad)


def test_keys_land_under_the_directory() -> None:
    assert relative_path("m/1/a/b.bin", "m/1/") == PurePosixPath("a/b.bin")
    assert relative_path("m/1/folder/", "m/1/") is None


@pytest.mark.parametrize("key", ["m/1/../x", "m/1//etc/passwd", "m/1/a/../../x", "m/1/./x"])
def test_keys_that_would_escape_are_refused(key: str) -> None:
    with pytest.raises(FetchError, match="refusing key"):
        relative_path(key, "m/1/")


def test_latest_is_numeric_not_lexical() -> None:
    assert latest_version(["9", "10", "2", "readme"]) == "10"
    assert latest_version(["draft"]) is None
