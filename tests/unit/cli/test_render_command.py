"""`ferry render`: what the operator would create, offline, from the examples' own files; and
input it cannot render refused with the reason, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry.cli.main import main
from ferry.cli.render import RenderError, render_documents, settings_from
from ferry.settings import Settings
from tests.support.ferry_operator import REPO

GPU = REPO / "examples" / "gpu"
GPU_GROUPS = f"@{GPU / 'node-groups.json'}"
ECHO = REPO / "examples" / "custom-container" / "realtimeapi.yaml"
MINIMAL = "apiVersion: ferry.dev/v1alpha1\nkind: RealtimeAPI\nmetadata: {name: m}\n"


def render(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["render", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def by_kind(text: str) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text)}


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (found,) = [c for c in containers if c["name"] == name]
    return found


def test_the_gpu_example_lands_on_its_node_group_with_the_gpu_as_request_and_limit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FERRY_NODE_GROUPS", raising=False)
    code, out, _ = render(capsys, str(GPU / "realtimeapi.yaml"), "--node-groups", GPU_GROUPS)
    assert code == 0
    objects = by_kind(out)
    assert set(objects) == {"Service", "Deployment"}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    group = json.loads((GPU / "node-groups.json").read_text())[0]
    assert pod["nodeSelector"] == group["labels"]
    assert pod["tolerations"] == [{"operator": "Equal", **taint} for taint in group["taints"]]
    gpu_taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert {"operator": "Equal", **gpu_taint} in pod["tolerations"]
    resources = container(objects["Deployment"], "predictor")["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    # The proxy sidecar and the model fetcher ask for no GPU: only the predictor uses it.
    for other in [*pod["containers"], *pod["initContainers"]]:
        if other["name"] != "predictor":
            assert "nvidia.com/gpu" not in json.dumps(other["resources"])


def test_the_node_groups_come_from_the_operators_own_variable_without_the_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_NODE_GROUPS", (GPU / "node-groups.json").read_text())
    code, out, _ = render(capsys, str(GPU / "realtimeapi.yaml"))
    assert code == 0
    assert by_kind(out)["Deployment"]["spec"]["template"]["spec"]["nodeSelector"] == {
        "ferry.dev/node-group": "gpu-a10g",
        "node.kubernetes.io/instance-type": "g5.xlarge",
    }


def test_a_node_group_the_operator_lacks_is_refused_naming_the_choices(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_NODE_GROUPS", '[{"name": "cpu-large"}]')
    code, out, err = render(capsys, str(GPU / "realtimeapi.yaml"))
    assert (code, out) == (1, "")
    assert "spec.nodeGroup: 'gpu-a10g' is not a node group of this operator (cpu-large)" in err


def test_the_custom_container_runs_its_image_entrypoint_on_its_own_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = render(capsys, str(ECHO))
    assert code == 0
    deployment = by_kind(out)["Deployment"]
    predictor = container(deployment, "predictor")
    assert "command" not in predictor
    assert "args" not in predictor
    assert predictor["ports"] == [{"name": "predictor", "containerPort": 9000, "protocol": "TCP"}]
    assert {"name": "FERRY_PORT", "value": "9000"} in predictor["env"]
    proxy_args = set(container(deployment, "proxy")["args"])
    assert {"--upstream-port=9000", "--readiness-path=/healthz"} <= proxy_args
    # Created replicas are the API's minimum; no model, no fetch.
    assert deployment["spec"]["replicas"] == 1
    assert "initContainers" not in deployment["spec"]["template"]["spec"]


def test_the_output_names_no_owner_without_a_uid_and_the_api_with_one() -> None:
    settings = Settings()
    (offline,) = render_documents(MINIMAL + "spec: {predictor: {image: a/b:1}}", settings)
    assert all("ownerReferences" not in obj["metadata"] for obj in offline.objects)
    assert any("no ownerReferences" in note for note in offline.notes)

    existing = MINIMAL.replace("{name: m}", "{name: m, uid: 1234-abcd, generation: 7}")
    (live,) = render_documents(existing + "spec: {predictor: {image: a/b:1}}", settings)
    for obj in live.objects:
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "1234-abcd"
    assert live.objects[1]["metadata"]["annotations"]["ferry.dev/api-generation"] == "7"


def test_a_latest_model_version_is_shown_as_such_unless_one_is_given() -> None:
    text = MINIMAL + "spec: {predictor: {image: a/b:1}, model: {uri: 's3://models/m'}}"
    (latest,) = render_documents(text, Settings())
    deployment = latest.objects[1]
    assert (
        deployment["spec"]["template"]["metadata"]["annotations"]["ferry.dev/model-version"]
        == "latest"
    )
    assert any("latest" in note for note in latest.notes)

    (pinned,) = render_documents(text, Settings(), model_version="12")
    fetch = pinned.objects[1]["spec"]["template"]["spec"]["initContainers"][0]
    assert fetch["args"][:3] == ["s3://models/m", "--version", "12"]
    assert not any("latest" in note for note in pinned.notes)


def test_every_api_of_a_file_is_rendered_and_other_kinds_are_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    manifest = tmp_path / "apps.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
        + MINIMAL.replace("{name: m}", "{name: a, namespace: ml}")
        + "spec: {predictor: {image: a/b:1}}\n---\n"
        + MINIMAL.replace("{name: m}", "{name: b}")
        + "spec: {predictor: {image: a/b:2}}\n"
    )
    code, out, _ = render(capsys, str(manifest), "-o", "json", "-n", "ml")
    assert code == 0
    listed = json.loads(out)
    assert listed["kind"] == "List"
    assert [
        (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in listed["items"]
    ] == [
        ("Service", "ml", "a"),
        ("Deployment", "ml", "a"),
        ("Service", "ml", "b"),
        ("Deployment", "ml", "b"),
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{", "not YAML"),
        ("apiVersion: v1\nkind: ConfigMap\n", "no RealtimeAPI in it"),
        (
            "kind: RealtimeAPI\nmetadata: {name: m}\nspec: {}",
            "apiVersion must be ferry.dev/v1alpha1",
        ),
        ("apiVersion: ferry.dev/v1alpha1\nkind: RealtimeAPI\nspec: {}", "needs metadata.name"),
        (MINIMAL, "spec must be a mapping"),
        (MINIMAL + "spec: {}", "spec.predictor is required"),
        (MINIMAL + "spec: {predictor: {port: 9000}}", "spec.predictor.image is required"),
        (
            MINIMAL + "spec: {predictor: {image: a/b:1}, model: {version: '3'}}",
            "spec.model.uri is required",
        ),
        (MINIMAL + "spec: {predictor: {image: a/b:1, port: nine}}", "cannot be read"),
        (
            MINIMAL + "spec: {predictor: {image: a/b:1, env: [{name: D, value: 2024-01-01}]}}",
            "cannot render date",
        ),
        (
            MINIMAL.replace("{name: m}", "{name: m, generation: two}")
            + "spec: {predictor: {image: a/b:1}}",
            "metadata.generation must be a number",
        ),
        (
            MINIMAL.replace("{name: m}", "{name: m, namespace: ml}")
            + "spec: {predictor: {image: a/b:1}}",
            "in namespace ml, not web",
        ),
    ],
)
def test_input_it_cannot_render_is_refused_with_the_reason(text: str, words: str) -> None:
    with pytest.raises(RenderError, match=words):
        render_documents(text, Settings(), namespace="web")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["/no/such/file.yaml"], "cannot read /no/such/file.yaml: No such file or directory"),
        ([str(ECHO), "--node-groups", "[{"], "FERRY_NODE_GROUPS is not a list of node groups"),
        ([str(ECHO), "--node-groups", "@/no/such.json"], "cannot read /no/such.json"),
        ([str(ECHO), "--model-version", "v2"], "--model-version must be a number or latest"),
    ],
)
def test_the_command_reports_bad_input_and_exits_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code, out, err = render(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith("ferry render: ")
    assert words in err


def test_settings_keep_the_rest_of_the_environment() -> None:
    settings = settings_from({"FERRY_IMAGE": "registry.example.com/ferry:9"}, '[{"name": "g"}]')
    assert settings.image == "registry.example.com/ferry:9"
    assert set(settings.node_groups) == {"g"}


def test_a_canary_is_rendered_beside_the_stable_version_with_its_own_image(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = yaml.safe_load(ECHO.read_text())
    api["spec"]["canary"] = {"trafficPercent": 10, "image": "ghcr.io/ferry-dev/examples-echo:0.2.0"}
    (rendered,) = render_documents(json.dumps(api), Settings())
    names = [(obj["kind"], obj["metadata"]["name"]) for obj in rendered.objects]
    assert names == [
        ("Service", "echo"),
        ("Deployment", "echo"),
        ("Service", "echo-canary"),
        ("Deployment", "echo-canary"),
    ]
    canary = rendered.objects[3]
    assert container(canary, "predictor")["image"] == "ghcr.io/ferry-dev/examples-echo:0.2.0"
    assert container(rendered.objects[1], "predictor")["image"] == api["spec"]["predictor"]["image"]
    assert canary["spec"]["replicas"] == 1
