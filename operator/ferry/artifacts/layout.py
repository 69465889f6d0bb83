"""Which keys of a model version can become files in the predictor's model directory.

The operator's model check and `ferry fetch-model` hold a version to the same rules, so a version
the check passes is one the fetch can write: no key outside the directory, with a NUL byte or a
name longer than a file system takes, and no file where another key needs a folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

FETCH_MARKER = ".ferry-model.json"
"""Where the fetch records which version a model directory holds."""
NAME_MAX = 255
"""The longest file or folder name Linux file systems take, in bytes."""


class LayoutError(ValueError):
    """The keys cannot all become files; the message names the keys to rename."""


def relative_path(key: str, prefix: str) -> PurePosixPath | None:
    """Where `key` lands under the model directory; None for a folder marker (a key ending in
    `/`, which the S3 console makes for an empty folder): it holds nothing to download.

    Refuses keys that cannot become a file there: outside it, with a NUL byte, or with a name
    longer than a file system takes.
    """
    relative = key[len(prefix) :]
    parts = relative.removesuffix("/").split("/")
    if relative and (relative.startswith("/") or any(part in ("", ".", "..") for part in parts)):
        raise LayoutError(f"refusing key {key!r}: it would not stay inside the model directory")
    if "\0" in relative:
        raise LayoutError(f"refusing key {key!r}: it holds a NUL byte")
    if any(len(part.encode()) > NAME_MAX for part in parts):
        raise LayoutError(
            f"refusing key {key!r}: a file or folder name is longer than {NAME_MAX} bytes"
        )
    if not relative or relative.endswith("/"):
        return None
    return PurePosixPath(*parts)


def check_tree(files: Mapping[PurePosixPath, str], folders: Mapping[PurePosixPath, str]) -> None:
    """Refuse keys that cannot all become files side by side: a file where another key needs a
    folder (`a` beside `a/b`, or beside the folder marker `a/`), or the name of the marker the
    fetch writes. Both keys are named, so the bucket's owner knows which to rename."""
    if (key := files.get(PurePosixPath(FETCH_MARKER))) is not None:
        raise LayoutError(f"refusing key {key!r}: {FETCH_MARKER} is where Ferry records the fetch")
    # Each folder some key needs, with one key that needs it.
    needed = {parent: key for path, key in files.items() for parent in path.parents}
    needed.update({f: key for path, key in folders.items() for f in (path, *path.parents)})
    for folder, key in needed.items():
        if folder in files:
            raise LayoutError(
                f"refusing keys {files[folder]!r} and {key!r}: {str(folder)!r} would have to be "
                "a file and a folder at once"
            )
