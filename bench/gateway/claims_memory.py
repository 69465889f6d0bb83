"""What the operator's index of HTTPRoute claims (ferry.handlers.indexes.route_claims) holds per
route, as kopf holds it.

    PYTHONPATH=. .venv/bin/python bench/gateway/claims_memory.py [--routes 1000] [--rounds 3]

Makes `--routes` HTTPRoute bodies as Ferry renders them and a Gateway's controller answers them
(one parent, accepted; a hostname on every other one; one path prefix), each parsed from its own
JSON as a watch event is, so no string is shared between them. With tracemalloc on, it runs the
index function on each and stores its result in a kopf indexer (the forward index, its per-key
stores and the reverse index), dropping the body as kopf does after the event; then it prints
the bytes still allocated, per route: the index's share of the operator's memory per API.
Rounds alternate the index alone and the index with the API's own status index
(route_conflicts, which keeps nothing for an API not in conflict), and the medians are printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tracemalloc
import uuid
from typing import Any

import kopf
from kopf._core.engines.indexing import OperatorIndexer

from ferry.handlers.indexes import route_claims, route_conflicts


def route_json(index: int) -> str:
    namespace, name = f"team-{index % 50}", f"api-{index}"
    parent = {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": "envoy-gateway-system",
        "name": "ferry",
    }
    spec: dict[str, Any] = {
        "parentRefs": [parent],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": f"/{namespace}/{name}"}}],
                "backendRefs": [{"name": name, "port": 80}],
            }
        ],
    }
    if index % 2:
        spec["hostnames"] = [f"{name}.models.example.com"]
    accepted = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"}
    body = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": "2026-12-07T10:00:00Z",
            "generation": 1,
        },
        "spec": spec,
        "status": {"parents": [{"parentRef": parent, "conditions": [accepted]}]},
    }
    return json.dumps(body)


def api_json(index: int) -> str:
    ready = {"type": "Ready", "status": "True", "reason": "Available"}
    routed = {"type": "Routed", "status": "True", "reason": "Accepted"}
    return json.dumps(
        {
            "metadata": {"name": f"api-{index}", "namespace": f"team-{index % 50}"},
            "status": {"conditions": [ready, routed]},
        }
    )


def held_bytes(routes: int, *, with_apis: bool) -> float:
    """Bytes per route the indexers hold once every route (and API) went through them."""
    sources = [route_json(i) for i in range(routes)]
    apis = [api_json(i) for i in range(routes)] if with_apis else []
    claims, conflicts = OperatorIndexer(), OperatorIndexer()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for source in sources:
        body = kopf.Body(json.loads(source))
        meta = body.metadata
        claims.replace((meta.namespace, meta.name, meta.uid), route_claims(body))
        del body, meta
    for source in apis:
        body = kopf.Body(json.loads(source))
        meta = body.metadata
        found = route_conflicts(body, namespace=meta.namespace, name=str(meta.name))
        conflicts.replace((meta.namespace, meta.name, meta.uid), found)
        del body, meta
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(claims.index) == routes
    return (after - before) / routes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    alone, both = [], []
    for _ in range(args.rounds):
        alone.append(held_bytes(args.routes, with_apis=False))
        both.append(held_bytes(args.routes, with_apis=True))
    alone_bytes, both_bytes = statistics.median(alone), statistics.median(both)
    print(f"{args.routes} HTTPRoutes through kopf's indexer, {args.rounds} rounds, median")
    print(f"  route_claims:                             {alone_bytes:6.0f} bytes per route")
    print(f"  route_claims + route_conflicts (none in):  {both_bytes:6.0f} bytes per route")
    total = both_bytes * args.routes / 1e6
    print(f"  {args.routes} APIs: {total:.2f} MB, {total / 250:.1%} of the operator's 250 MB")


if __name__ == "__main__":
    main()
