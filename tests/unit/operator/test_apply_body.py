"""The body of a server-side apply is read as YAML: whatever text an object holds, YAML reads
back the same object (the integration tests send it to the real API server)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from ferry.adapters.kube import apply_body


@given(st.dictionaries(st.text(), st.lists(st.text(), max_size=3), max_size=3))
def test_any_text_reads_back_as_itself(obj: dict[str, Any]) -> None:
    assert yaml.safe_load(apply_body(obj)) == obj


def test_a_character_beyond_the_basic_plane_is_sent_as_utf8_not_a_surrogate_pair() -> None:
    body = apply_body({"value": "\U0001f600"})
    assert "\U0001f600".encode() in body
    assert b"\\ud83d" not in body
