"""The image table: which local command an image stands for, and how container fields combine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ferry_local.agent import volumes
from ferry_local.agent.images import (
    BUILTIN_TABLE,
    ImageEntry,
    ImageTable,
    ImageTableError,
    NoCommandError,
    UnmappedImageError,
    launch,
    parse_table,
    split_reference,
    tables_from_env,
)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("ghcr.io/ferry-dev/ferry:0.1.0", ("ghcr.io/ferry-dev/ferry", "0.1.0")),
        ("ghcr.io/ferry-dev/ferry", ("ghcr.io/ferry-dev/ferry", None)),
        ("registry:5000/team/app:v2", ("registry:5000/team/app", "v2")),
        ("registry:5000/team/app", ("registry:5000/team/app", None)),
        ("app@sha256:abc", ("app", None)),
        ("app:1@sha256:abc", ("app", "1")),
    ],
)
def test_a_reference_splits_into_repository_and_tag(
    reference: str, expected: tuple[str, str | None]
) -> None:
    assert split_reference(reference) == expected


def test_an_entry_without_a_tag_matches_every_tag_and_one_with_a_tag_only_that_one() -> None:
    any_tag, one_tag = ImageEntry("ghcr.io/ferry-dev/ferry"), ImageEntry("example/iris:1.4.0")
    assert any_tag.matches("ghcr.io/ferry-dev/ferry:0.1.0")
    assert any_tag.matches("ghcr.io/ferry-dev/ferry@sha256:abc")
    assert not any_tag.matches("ghcr.io/ferry-dev/ferry-other:0.1.0")
    assert one_tag.matches("example/iris:1.4.0")
    assert not one_tag.matches("example/iris:1.5.0")


def test_the_builtin_table_runs_ferrys_image_from_this_environments_bin() -> None:
    table = ImageTable.load()
    entry = table.lookup("ghcr.io/ferry-dev/ferry:0.1.0")
    assert entry.path == (str(Path(sys.executable).parent),)
    assert table.sources == [BUILTIN_TABLE]


def test_extra_tables_come_first_and_fill_their_placeholders(tmp_path: Path) -> None:
    extra = tmp_path / "images.yaml"
    extra.write_text(
        "images:\n"
        "  - image: ghcr.io/ferry-dev/ferry\n"
        "    command: ['{python}', '{here}/fake.py']\n"
        "    workingDir: '{here}'\n"
    )
    entry = ImageTable.load([extra]).lookup("ghcr.io/ferry-dev/ferry:1")
    assert entry.command == (sys.executable, f"{tmp_path}/fake.py")
    assert entry.working_dir == str(tmp_path)


def test_an_unmapped_image_names_itself_and_the_tables() -> None:
    with pytest.raises(
        UnmappedImageError, match=r'image "nope:1" has no local command.*images\.yaml'
    ):
        ImageTable.load().lookup("nope:1")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "a list under `images`"),
        ({"images": [{"command": ["x"]}]}, "needs an `image`"),
        ({"images": [{"image": "x", "command": "not a list"}]}, "list of strings"),
        ({"images": [{"image": "x", "entrypoint": ["x"]}]}, "unknown fields"),
    ],
)
def test_a_malformed_table_is_refused_with_the_place(document: Any, message: str) -> None:
    with pytest.raises(ImageTableError, match=message):
        parse_table(document, Path("t.yaml"))


ENTRY = ImageEntry("img", command=("serve",), args=("--default",), path=("/bin",))


@pytest.mark.parametrize(
    ("container", "argv"),
    [
        ({}, ("serve", "--default")),
        ({"args": ["--mine"]}, ("serve", "--mine")),
        ({"command": ["other"]}, ("other",)),
        ({"command": ["other"], "args": ["--mine"]}, ("other", "--mine")),
    ],
)
def test_container_command_and_args_combine_with_the_images_as_in_a_runtime(
    container: dict[str, Any], argv: tuple[str, ...]
) -> None:
    assert launch(ENTRY, container).argv == argv


def test_nothing_to_run_is_an_error() -> None:
    with pytest.raises(NoCommandError, match="sets no command"):
        launch(ImageEntry("img"), {"name": "app"})


def test_tables_from_the_environment_are_a_path_list() -> None:
    assert tables_from_env({"FERRY_AGENT_IMAGES": "/a.yaml:/b.yaml"}) == [
        Path("/a.yaml"),
        Path("/b.yaml"),
    ]
    assert tables_from_env({}) == []


def test_the_tables_host_paths_are_never_taken_for_container_paths() -> None:
    # A checkout under /tmp and a pod with a /tmp mount: only the container's strings move.
    mounts = [volumes.Mount("tmp", "/tmp", Path("/state/pods/p/volumes/tmp"))]
    entry = ImageEntry(
        "example/app",
        command=("/tmp/checkout/.venv/bin/python", "serve.py"),
        working_dir="/tmp/checkout/app",
    )

    def to_host(text: str) -> str:
        return volumes.rewrite(text, mounts)

    image_only = launch(entry, {"name": "app"}, to_host)
    assert image_only.argv == ("/tmp/checkout/.venv/bin/python", "serve.py")
    assert image_only.working_dir == "/tmp/checkout/app"
    own = launch(
        entry, {"name": "app", "args": ["--cache=/tmp/c"], "workingDir": "/tmp/w"}, to_host
    )
    assert own.argv == (
        "/tmp/checkout/.venv/bin/python",
        "serve.py",
        "--cache=/state/pods/p/volumes/tmp/c",
    )
    assert own.working_dir == "/state/pods/p/volumes/tmp/w"
