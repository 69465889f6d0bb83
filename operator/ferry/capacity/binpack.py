"""How many new nodes a set of pending pods needs: first-fit decreasing.

The pods go, largest first, into the first node with room: the free room of the group's nodes,
then nodes already asked for but not yet joined, then new nodes of the group's size. The
scheduler may place them otherwise; a pod left over then is still pending at the next pass,
which asks for what it needs. A pod that would not fit an empty node is set aside: growing the
group can never help it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ferry.capacity.resources import Resources

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Packing(Generic[K]):
    new_nodes: int
    on_new: tuple[K, ...] = ()
    """Pods that need one of the new nodes."""
    on_existing: tuple[K, ...] = ()
    """Pods that fit the free room of a node that is there or coming."""
    too_large: tuple[K, ...] = ()
    """Pods no node of the group could hold even empty."""
    unplaced: tuple[K, ...] = ()
    """Pods that would need more new nodes than the limit."""


def pack(
    pods: Sequence[tuple[K, Resources]],
    rooms: Sequence[Resources],
    node: Resources,
    limit: int,
) -> Packing[K]:
    """Place `pods` into `rooms` (free room now), then into at most `limit` new empty `node`s."""
    free = list(rooms)
    existing = len(free)
    on_new: list[K] = []
    on_existing: list[K] = []
    too_large: list[K] = []
    unplaced: list[K] = []
    # Largest share of a node first; the key is a tie-breaker so equal plans come out equal.
    order = sorted(pods, key=lambda pod: (-pod[1].share_of(node), str(pod[0])))
    for key, need in order:
        if not need.fits_in(node) and not any(need.fits_in(room) for room in free):
            too_large.append(key)
            continue
        slot = next((i for i, room in enumerate(free) if need.fits_in(room)), None)
        if slot is None:
            if len(free) - existing >= limit:
                unplaced.append(key)
                continue
            free.append(node)
            slot = len(free) - 1
        free[slot] -= need
        (on_new if slot >= existing else on_existing).append(key)
    return Packing(
        new_nodes=len(free) - existing,
        on_new=tuple(on_new),
        on_existing=tuple(on_existing),
        too_large=tuple(too_large),
        unplaced=tuple(unplaced),
    )
