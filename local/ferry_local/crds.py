"""Installing the RealtimeAPI CRD and its admission policy, and waiting until both are in force.

Established is not enough. The API server loads an admission policy asynchronously, and until it
knows the new kind, a policy that matches it answers each create with 503 ("there can be a
delay"). `install` returns once a server-side dry-run create comes back holding the operator's
finalizer: from then on, creates succeed and are admitted as they will always be.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from ferry import names
from ferry.spec.schema import GROUP, KIND, PLURAL, VERSION
from ferry_local.wait import wait_until

Kubectl = Callable[..., str]
"""Runs kubectl with the given arguments (and `stdin=`), returns its output, raises on failure."""

_PROBE = json.dumps(
    {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": "ferry-admission-probe", "namespace": "default"},
        "spec": {"predictor": {"image": "example.com/probe:1"}},
    }
)


def install_crds(kubectl: Kubectl, manifests: Iterable[Path], *, timeout: float = 60) -> None:
    """Apply CRDs (and what else the files hold) and wait until every CRD is Established."""
    names: list[str] = []
    for manifest in manifests:
        applied = kubectl(
            "apply",
            "--server-side",
            "--field-manager=ferry-local",
            "-f",
            str(manifest),
            "-o",
            "name",
        )
        names += [n for n in applied.split() if n.startswith("customresourcedefinition")]
    for name in names:
        wait_until(
            functools.partial(_established, kubectl, name),
            timeout=timeout,
            what=f"{name} to be Established",
        )


def _established(kubectl: Kubectl, name: str) -> bool:
    # Read, not `kubectl wait`: that fails outright when it reads the CRD before the API server
    # has written any condition ("<nil> is of the type <nil>, expected []interface{}").
    crd = json.loads(kubectl("get", name, "-o", "json"))
    conditions = (crd.get("status") or {}).get("conditions") or ()
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def install(kubectl: Kubectl, manifests: Iterable[Path], *, timeout: float = 60) -> None:
    for manifest in manifests:
        kubectl("apply", "--server-side", "--field-manager=ferry-local", "-f", str(manifest))

    crd = f"crd/{PLURAL}.{GROUP}"
    wait_until(lambda: _established(kubectl, crd), timeout=timeout, what=f"{crd} to be Established")

    def admitted() -> bool:
        created = json.loads(
            kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=_PROBE)
        )
        return names.FINALIZER in created["metadata"].get("finalizers", ())

    wait_until(admitted, timeout=timeout, what="the RealtimeAPI admission policy to take effect")
