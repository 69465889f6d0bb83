"""Which local command an image stands for: the explicit table in images.yaml (format there)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BUILTIN_TABLE = Path(__file__).with_name("images.yaml")
# More tables, consulted before the built-in one; os.pathsep-separated like PATH.
TABLES_ENV = "FERRY_AGENT_IMAGES"


class ImageTableError(ValueError):
    """A table file that cannot be read or has an entry of the wrong shape."""


class UnmappedImageError(LookupError):
    """No table has an entry for the image: what an image that cannot be pulled is here."""


class NoCommandError(ValueError):
    """Neither the container nor the image's entry says what to run."""


@dataclass(frozen=True)
class ImageEntry:
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    path: tuple[str, ...] = ()
    working_dir: str | None = None

    def matches(self, reference: str) -> bool:
        repository, tag = split_reference(reference)
        wanted_repository, wanted_tag = split_reference(self.image)
        return repository == wanted_repository and wanted_tag in (None, tag)


@dataclass(frozen=True)
class Launch:
    """What to start for one container, before $(VAR) expansion and path rewriting."""

    argv: tuple[str, ...]
    path: tuple[str, ...]
    working_dir: str | None


def split_reference(reference: str) -> tuple[str, str | None]:
    """`registry:5000/repo:tag@sha256:...` -> (`registry:5000/repo`, `tag`)."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImageTableError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _placeholders(table: Path) -> dict[str, str]:
    return {
        "{bin}": str(Path(sys.executable).parent),
        "{python}": sys.executable,
        "{here}": str(table.resolve().parent),
    }


def _fill(text: str, values: Mapping[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def parse_table(document: Any, source: Path) -> list[ImageEntry]:
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise ImageTableError(f"{source}: expected a mapping with a list under `images`")
    values = _placeholders(source)
    entries = []
    for index, raw in enumerate(document["images"]):
        where = f"{source}: images[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("image"), str):
            raise ImageTableError(f"{where}: every entry needs an `image` string")
        unknown = set(raw) - {"image", "command", "args", "path", "workingDir"}
        if unknown:
            raise ImageTableError(f"{where}: unknown fields {sorted(unknown)}")
        working_dir = raw.get("workingDir")
        if working_dir is not None and not isinstance(working_dir, str):
            raise ImageTableError(f"{where}: workingDir must be a string")
        entries.append(
            ImageEntry(
                image=raw["image"],
                command=tuple(_fill(s, values) for s in _strings(raw.get("command"), where)),
                args=tuple(_fill(s, values) for s in _strings(raw.get("args"), where)),
                path=tuple(_fill(s, values) for s in _strings(raw.get("path"), where)),
                working_dir=_fill(working_dir, values) if working_dir else None,
            )
        )
    return entries


def tables_from_env(environ: Mapping[str, str] = os.environ) -> list[Path]:
    return [Path(part) for part in environ.get(TABLES_ENV, "").split(os.pathsep) if part]


class ImageTable:
    def __init__(self, entries: Sequence[ImageEntry], sources: Sequence[Path]) -> None:
        self.entries = list(entries)
        self.sources = list(sources)

    @classmethod
    def load(cls, extra: Sequence[Path] = ()) -> ImageTable:
        """The extra tables in order, then the built-in one."""
        sources = [*extra, BUILTIN_TABLE]
        entries: list[ImageEntry] = []
        for source in sources:
            try:
                document = yaml.safe_load(source.read_text())
            except (OSError, yaml.YAMLError) as error:
                raise ImageTableError(f"cannot read image table {source}: {error}") from None
            entries.extend(parse_table(document, source))
        return cls(entries, sources)

    def lookup(self, image: str) -> ImageEntry:
        for entry in self.entries:
            if entry.matches(image):
                return entry
        tables = ", ".join(str(source) for source in self.sources)
        raise UnmappedImageError(
            f'image "{image}" has no local command: add an entry for it to an image table '
            f"({tables}; more with --images or {TABLES_ENV})"
        )


def launch(
    entry: ImageEntry,
    container: Mapping[str, Any],
    to_host: Callable[[str], str] = lambda text: text,
) -> Launch:
    """The container's command and args over the image's, as a container runtime combines them.

    `to_host` maps the container's own strings (paths under its mounts) to this machine; the
    table's strings are this machine's already, so a host path that happens to start like a
    mount (a checkout under /tmp) is never rewritten.
    """
    command = tuple(to_host(arg) for arg in container.get("command") or ())
    args = tuple(to_host(arg) for arg in container.get("args") or ())
    argv = command + args if command else entry.command + (args or entry.args)
    if not argv:
        raise NoCommandError(
            f'container "{container.get("name")}" sets no command and the entry for image '
            f'"{entry.image}" gives none'
        )
    working_dir = container.get("workingDir")
    return Launch(argv, entry.path, to_host(working_dir) if working_dir else entry.working_dir)
