"""Which of the HTTPRoutes on a Gateway that match the same requests gets them.

Gateway API accepts two routes that match the same hostname and path on one Gateway, and sends
the requests to the rule of the older route (by creation time, then by "namespace/name"): the
newer one is Accepted and gets nothing. Each route's claims are kept in an index by what a
request matches on; a route's rivals are the other claims under its keys, on a listener they
share.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import NamedTuple


class RouteKey(NamedTuple):
    """What a request matches on: the Gateway, the hostname ("" when the route names none) and
    the path prefix (without its trailing "/", which Gateway API ignores)."""

    gateway_namespace: str
    gateway: str
    hostname: str
    path: str


class RouteClaim(NamedTuple):
    """A route that matches the requests of a RouteKey, and what decides between routes."""

    namespace: str
    name: str
    uid: str
    created: str
    """Its creationTimestamp (RFC 3339, UTC, to the second: its order is the time's)."""
    sections: tuple[str, ...]
    """The Gateway's listeners it attaches to; empty: every listener."""

    @property
    def order(self) -> tuple[str, str]:
        """Gateway API's order between routes that match the same requests: the oldest first,
        then the first by "namespace/name"."""
        return self.created, f"{self.namespace}/{self.name}"

    def precedes(self, other: RouteClaim) -> bool:
        """Whether Gateway API gives this route the requests both match, rather than `other`."""
        return self.order < other.order

    def shares_listener(self, other: RouteClaim) -> bool:
        return (
            not self.sections
            or not other.sections
            or not set(self.sections).isdisjoint(other.sections)
        )


RouteClaims = Mapping[RouteKey, Collection[RouteClaim]]
"""The claims of every route the operator watches, by key (ferry.handlers.indexes)."""
NO_CLAIMS: RouteClaims = MappingProxyType({})


def path_key(prefix: str) -> str:
    return prefix.rstrip("/") or "/"


def first_claim(claims: RouteClaims, key: RouteKey, mine: RouteClaim) -> RouteClaim | None:
    """The route that gets the requests `mine` claims under `key`; None: `mine` gets them."""
    rivals = [
        claim
        for claim in claims.get(key, ())
        if claim.uid != mine.uid and claim.shares_listener(mine) and claim.precedes(mine)
    ]
    return min(rivals, key=lambda claim: claim.order, default=None)


def beaten(claims: RouteClaims, mine: Mapping[RouteKey, RouteClaim]) -> set[tuple[str, str]]:
    """The routes, as (namespace, name), that lose requests to the route whose claims are
    `mine`."""
    return {
        (claim.namespace, claim.name)
        for key, own in mine.items()
        for claim in claims.get(key, ())
        if claim.uid != own.uid and claim.shares_listener(own) and own.precedes(claim)
    }
