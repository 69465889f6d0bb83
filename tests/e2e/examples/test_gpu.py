"""examples/gpu, render-only here (no GPU on this machine): what `ferry render` prints for it
is what the API server takes — nvidia.com/gpu, the node group's nodeSelector and tolerations
survive a server-side dry-run unchanged."""

from __future__ import annotations

import json

from ferry_local.cluster import ClusterInfo
from tests.e2e.examples.conftest import EXAMPLES, kubectl_of, run
from tests.support.ferry_operator import entry_point

GPU = EXAMPLES / "gpu"


def test_the_rendered_gpu_deployment_passes_a_server_side_dry_run(local_env: ClusterInfo) -> None:
    rendered = run(
        [
            entry_point("ferry"),
            "render",
            str(GPU / "realtimeapi.yaml"),
            f"--node-groups=@{GPU / 'node-groups.json'}",
        ]
    )
    applied = json.loads(
        run(
            [*kubectl_of(local_env), "apply", "--dry-run=server", "-f", "-", "-o", "json"], rendered
        )
    )
    kinds = {item["kind"]: item for item in applied["items"]}
    assert set(kinds) == {"Service", "Deployment"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    group = json.loads((GPU / "node-groups.json").read_text())[0]
    assert pod["nodeSelector"] == group["labels"]
    assert pod["tolerations"] == [{"operator": "Equal", **taint} for taint in group["taints"]]
    (predictor,) = [c for c in pod["containers"] if c["name"] == "predictor"]
    assert predictor["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert predictor["resources"]["requests"]["nvidia.com/gpu"] == "1"
