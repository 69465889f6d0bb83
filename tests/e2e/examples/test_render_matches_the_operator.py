"""`ferry render` prints what the operator applies: for a live API, given the operator's
settings, a server-side diff of its output against the cluster finds nothing to change."""

from __future__ import annotations

import json
import os

from ferry_local.cluster import ClusterInfo
from ferry_local.components import LOCAL_NODE_GROUP
from tests.e2e.examples.conftest import EXAMPLES, kubectl_of, run
from tests.support.ferry_operator import entry_point, kubectl

NAMESPACE = "render-check"


def test_the_rendered_children_of_a_live_api_are_the_ones_it_has(local_env: ClusterInfo) -> None:
    kubectl(local_env, "create", "namespace", NAMESPACE)
    manifest = EXAMPLES / "custom-container" / "realtimeapi.yaml"
    kubectl(local_env, "apply", "-n", NAMESPACE, "-f", str(manifest))
    kubectl(local_env, "wait", "-n", NAMESPACE, "--for=condition=Ready", "rtapi/echo")

    live = kubectl(local_env, "get", "-n", NAMESPACE, "rtapi", "echo", "-o", "yaml").stdout
    # The local environment's operator sends APIs that name no node group to the node agent.
    operator_env = {
        **os.environ,
        "FERRY_NODE_GROUPS": json.dumps([LOCAL_NODE_GROUP]),
        "FERRY_DEFAULT_NODE_GROUP": str(LOCAL_NODE_GROUP["name"]),
    }
    rendered = run([entry_point("ferry"), "render", "-"], live, env=operator_env)
    assert "ownerReferences" in rendered  # the live object has a uid: its children name it

    diff = [*kubectl_of(local_env), "diff", "--server-side", "--field-manager=ferry", "-f", "-"]
    assert run(diff, rendered) == ""
    # The diff does compare: the same check finds a change the operator would not make.
    changed = rendered.replace("--max-concurrency=8", "--max-concurrency=9")
    assert "--max-concurrency=9" in run(diff, changed, expect=1)
