"""The chaos tier's tally: every case tried ends refused, handled or failed, and the run prints
the counts per group, so that a regression shows as a number and not only as a red test.

- refused: the bad input was turned away at the door (the API server's schema or CEL, a 4xx or
  5xx from the proxy before the predictor saw anything), with a reason a person can act on;
- handled: the input or fault got in, and the system coped as documented (a condition and an
  Event, a restart, requests answered, nothing lost);
- failed: anything else. A failed case is a failed test too.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field


class Outcome(enum.Enum):
    REFUSED = "refused"
    HANDLED = "handled"
    FAILED = "failed"


@dataclass
class Ledger:
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)

    def record(self, group: str, case: str, outcome: Outcome) -> None:
        # A case that failed stays failed, whatever was recorded before the failure.
        if self.outcomes.get((group, case)) is not Outcome.FAILED:
            self.outcomes[(group, case)] = outcome

    def recorded(self, group: str, case: str) -> bool:
        return (group, case) in self.outcomes

    def table(self) -> list[str]:
        """One line per group and one for all, each with its counts."""
        groups: dict[str, Counter[Outcome]] = {}
        for (group, _case), outcome in sorted(self.outcomes.items()):
            groups.setdefault(group, Counter())[outcome] += 1
        total: Counter[Outcome] = sum(groups.values(), Counter())
        width = max((len(group) for group in groups), default=5)
        header = f"{'group':<{width}}  {'tried':>5}  {'refused':>7}  {'handled':>7}  {'failed':>6}"
        lines = [header]
        for group, counts in [*groups.items(), ("all", total)]:
            lines.append(
                f"{group:<{width}}  {sum(counts.values()):>5}  {counts[Outcome.REFUSED]:>7}  "
                f"{counts[Outcome.HANDLED]:>7}  {counts[Outcome.FAILED]:>6}"
            )
        return lines

    def failures(self) -> list[str]:
        return [
            f"{group}: {case}"
            for (group, case), outcome in sorted(self.outcomes.items())
            if outcome is Outcome.FAILED
        ]
