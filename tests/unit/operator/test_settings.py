"""The operator's settings from its environment: typos refuse to start, with the variable named."""

from __future__ import annotations

from dataclasses import fields

import pytest

from ferry.capacity.node_group import Taint
from ferry.settings import Settings, SettingsError

GROUPS = '[{"name": "gpu", "labels": {"pool": "gpu"}, "taints": [{"key": "gpu", "value": "yes"}]}]'


def test_defaults_watch_every_namespace() -> None:
    settings = Settings.from_env({})
    assert settings.namespaces == ()
    assert settings.liveness_port == 8080
    assert settings.node_groups == {}


def test_node_groups_and_namespaces_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "FERRY_NODE_GROUPS": GROUPS,
            "FERRY_NAMESPACES": "ml, web",
            "FERRY_DEFAULT_NODE_GROUP": "gpu",
        }
    )
    assert settings.namespaces == ("ml", "web")
    assert settings.node_groups["gpu"].labels == {"pool": "gpu"}
    assert settings.node_groups["gpu"].taints == (Taint("gpu", "yes", "NoSchedule"),)
    assert settings.default_node_group == "gpu"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"FERRY_NODE_GROUPS": "[{"}, "FERRY_NODE_GROUPS is not a list of node groups"),
        ({"FERRY_NODE_GROUPS": '[{"labels": {}}]'}, "FERRY_NODE_GROUPS"),
        ({"FERRY_DEFAULT_NODE_GROUP": "gpu"}, "'gpu' is not in FERRY_NODE_GROUPS"),
        ({"FERRY_LIVENESS_PORT": "eighty"}, "FERRY_LIVENESS_PORT must be a whole number"),
        ({"FERRY_METRICS_PORT": "0"}, "FERRY_METRICS_PORT must be a port from 1 to 65535, not 0"),
        ({"FERRY_LIVENESS_PORT": "70000"}, "FERRY_LIVENESS_PORT must be a port from 1 to 65535"),
        ({"FERRY_WORKER_LIMIT": "0"}, "FERRY_WORKER_LIMIT must be at least 1"),
        ({"FERRY_WORKER_LIMIT": "-5"}, "FERRY_WORKER_LIMIT must be at least 1"),
        ({"FERRY_LOG_FORMAT": "xml"}, "FERRY_LOG_FORMAT must be plain or json"),
        ({"FERRY_DRAIN_DELAY_SECONDS": "0"}, "FERRY_DRAIN_DELAY_SECONDS must be whole seconds"),
        ({"FERRY_DRAIN_DELAY_SECONDS": "3601"}, "from 1 to 3600, not 3601"),
        ({"FERRY_DRAIN_DELAY_SECONDS": "2.5"}, "FERRY_DRAIN_DELAY_SECONDS must be a whole number"),
        ({"FERRY_DRAIN_DELAY_SECONDS": "-1"}, "from 1 to 3600, not -1"),
        (
            {"FERRY_LIVENESS_PORT": "9090"},
            "FERRY_LIVENESS_PORT and FERRY_METRICS_PORT are both 9090: the liveness probe and",
        ),
    ],
)
def test_a_bad_setting_names_its_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(env)


def test_every_setting_has_its_own_variable_and_an_empty_environment_is_the_defaults() -> None:
    variables = [variable.name for variable in Settings.variables().values()]
    assert len(set(variables)) == len(variables) == len(fields(Settings))
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("setting", "text", "value"),
    [
        ("namespaces", " ml ,, web ", ("ml", "web")),
        ("image", "registry.example.com/ferry:1", "registry.example.com/ferry:1"),
        ("default_node_group", "", None),
        ("worker_limit", "80", 80),
        ("log_level", "debug", "DEBUG"),
        ("scrape_timeout", "0.5", 0.5),
        ("drain_delay", "300", 300),
        ("drain_delay", "3600", 3600),
        ("drain_delay", "1", 1),
        ("delete_log_groups", "delete", True),
        ("delete_log_groups", "keep", False),
    ],
)
def test_each_setting_is_read_from_its_variable(setting: str, text: str, value: object) -> None:
    variable = Settings.variables()[setting]
    assert getattr(Settings.from_env({variable.name: text}), setting) == value
