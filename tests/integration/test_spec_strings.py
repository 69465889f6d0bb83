"""Any text a Pod may hold in its command, args and env reaches the Deployment exactly: characters
beyond the Basic Multilingual Plane (emoji), control characters, and the characters YAML reads
as line breaks or refuses raw."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from tests.integration.test_operator import create, patch_api, realtime_api, wait_ready
from tests.support.chaos import Case
from tests.support.ferry_operator import Operator

# Each is a string the API server stores as it was sent, and a process could be given.
STRINGS = [
    "smile \U0001f600",  # an emoji: a surrogate pair in Python's ASCII JSON
    "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522",  # Fraktur letters
    "last code point \U0010ffff",
    "tab\tnew line\ncarriage return\r",
    "escape \x1b[31mred\x1b[0m, bell \x07, backspace \x08, form feed \x0c",
    "delete \x7f and C1 controls \x80 \x84 \x9f",
    "next line \x85, line separator \u2028, paragraph separator \u2029",
    "byte order mark \ufeff, non-characters \ufffe \uffff",
    "quotes \" and ' and a backslash \\ and \\ud83d written out",
    "key: value\n- item\n{flow: [yaml]} # comment",
]


def deployment_strings(deployment: client.V1Deployment) -> dict[str, Any]:
    predictor = next(c for c in deployment.spec.template.spec.containers if c.name == "predictor")
    env = {e.name: e.value for e in predictor.env or () if not e.name.startswith("FERRY_")}
    return {"command": predictor.command, "args": predictor.args, "env": env}


def predictor_strings(strings: list[str]) -> dict[str, Any]:
    return {
        "command": ["/bin/serve", *strings],
        "args": list(reversed(strings)),
        "env": [{"name": f"TEXT_{i}", "value": text} for i, text in enumerate(strings)],
    }


@pytest.mark.chaos("hostile specs")
async def test_an_api_with_any_text_in_command_args_and_env_turns_ready_with_it_deployed(
    api: ApiClient, namespace: str, operator: Operator, chaos: Case
) -> None:
    body = realtime_api("texts")
    body["spec"]["predictor"].update(predictor_strings(STRINGS))
    await create(api, namespace, body)
    await wait_ready(api, namespace, "texts")

    deployment = await client.AppsV1Api(api).read_namespaced_deployment("texts", namespace)
    assert deployment_strings(deployment) == {
        "command": ["/bin/serve", *STRINGS],
        "args": list(reversed(STRINGS)),
        "env": {f"TEXT_{i}": text for i, text in enumerate(STRINGS)},
    }
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_a_ready_api_updated_to_hold_an_emoji_rolls_it_out(
    api: ApiClient, namespace: str, operator: Operator, chaos: Case
) -> None:
    await create(api, namespace, realtime_api("iris"))
    await wait_ready(api, namespace, "iris")

    await patch_api(
        api,
        namespace,
        "iris",
        {"spec": {"predictor": {"args": ["--greeting", "hello \U0001f44b"]}}},
    )
    await wait_ready(api, namespace, "iris")

    deployment = await client.AppsV1Api(api).read_namespaced_deployment("iris", namespace)
    assert deployment_strings(deployment)["args"] == ["--greeting", "hello \U0001f44b"]
    chaos.handled()
