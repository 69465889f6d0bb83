"""The build's progress: a bar on a terminal, a line per tenth in a log."""

from __future__ import annotations

import io

from ferry.cli.progress import ProgressBar


def test_a_log_gets_one_line_per_tenth_not_per_step() -> None:
    out = io.StringIO()
    bar = ProgressBar("building", stream=out)
    for done in range(1, 1001):
        bar(done, 1000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[0].startswith("building: 0%")
    assert lines[-1].startswith("building: 100% (1000/1000")
