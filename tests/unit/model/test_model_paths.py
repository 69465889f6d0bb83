"""Where S3 keys land, and which they may not."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from ferry.artifacts.layout import LayoutError, check_tree, relative_path
from ferry.model.fetch import FetchError, latest_version, parse_uri, version_prefix


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
    assert relative_path("m/1/", "m/1/") is None  # the version's own folder marker


@pytest.mark.parametrize(
    "key", ["m/1/../x", "m/1//etc/passwd", "m/1/a/../../x", "m/1/./x", "m/1/../", "m/1/a//"]
)
def test_keys_that_would_escape_are_refused(key: str) -> None:
    with pytest.raises(LayoutError, match="refusing key"):
        relative_path(key, "m/1/")


def test_latest_is_numeric_not_lexical() -> None:
    assert latest_version(["9", "10", "2", "readme"]) == "10"
    assert latest_version(["draft"]) is None


def test_a_name_longer_than_a_file_system_takes_is_refused() -> None:
    assert relative_path(f"m/1/{'é' * 127}", "m/1/") is not None  # 254 bytes
    with pytest.raises(LayoutError, match="longer than 255 bytes"):
        relative_path(f"m/1/{'é' * 128}/x", "m/1/")


def paths(*keys: str) -> dict[PurePosixPath, str]:
    return {PurePosixPath(key.removeprefix("m/1/").rstrip("/")): key for key in keys}


def test_files_and_folders_that_fit_together_pass() -> None:
    check_tree(paths("m/1/a/b", "m/1/a/c", "m/1/d"), paths("m/1/a/", "m/1/e/f/"))


@pytest.mark.parametrize(
    ("files", "folders", "named"),
    [
        (["m/1/a", "m/1/a/b"], [], ("m/1/a", "m/1/a/b")),
        (["m/1/x/a", "m/1/x/a/b/c"], [], ("m/1/x/a", "m/1/x/a/b/c")),
        (["m/1/a"], ["m/1/a/"], ("m/1/a", "m/1/a/")),
        (["m/1/a"], ["m/1/a/b/"], ("m/1/a", "m/1/a/b/")),
    ],
)
def test_a_file_where_a_folder_must_be_names_both_keys(
    files: list[str], folders: list[str], named: tuple[str, str]
) -> None:
    with pytest.raises(LayoutError) as refused:
        check_tree(paths(*files), paths(*folders))
    assert str(refused.value).startswith(f"refusing keys {named[0]!r} and {named[1]!r}")


def test_the_fetch_markers_name_is_refused() -> None:
    with pytest.raises(LayoutError, match="where Ferry records the fetch"):
        check_tree(paths("m/1/.ferry-model.json"), {})
