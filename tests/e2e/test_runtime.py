"""ferry-runtime serves a user's class: sync or async, JSON in and out, errors as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferry_local.wait import wait_until
from tests.e2e.conftest import StartRuntime, http

PREDICTORS = """
import asyncio
import threading
from pathlib import Path

from ferry.runtime import PredictorError


class Scale:
    def __init__(self, config, model_dir):
        self.factor = config["factor"]
        self.model_dir = Path(model_dir)

    def predict(self, payload):
        if payload.get("refuse"):
            raise PredictorError("x must be positive", 422)
        if payload.get("crash"):
            raise RuntimeError("the model fell over")
        if payload.get("unserialisable"):
            return {"set": {1, 2}}
        if payload.get("wait_for"):
            while not (self.model_dir / payload["wait_for"]).exists():
                threading.Event().wait(0.01)
        return {"y": payload["x"] * self.factor, "thread": threading.current_thread().name}


class AsyncScale:
    def __init__(self, config, model_dir):
        self.factor = config.get("factor", 1)

    async def predict(self, payload):
        await asyncio.sleep(0)
        return {"y": payload["x"] * self.factor, "thread": threading.current_thread().name}


class SlowToLoad:
    def __init__(self, config, model_dir):
        while not (Path(model_dir) / "weights").exists():
            threading.Event().wait(0.01)

    def predict(self, payload):
        return "loaded"


class Broken:
    def __init__(self, config, model_dir):
        raise ValueError("no weights")

    def predict(self, payload):
        return None
"""


@pytest.fixture(autouse=True)
def predictors(tmp_path: Path) -> None:
    (tmp_path / "predictors.py").write_text(PREDICTORS)


def ready(url: str) -> bool:
    return http("GET", url)[0] == 200


def post_json(url: str, payload: object) -> tuple[int, object]:
    status, body = http("POST", url, json.dumps(payload).encode())
    return status, json.loads(body)


def test_a_sync_predictor_runs_in_the_pool_and_answers_json(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("predictors:Scale", '--config={"factor": 3}')
    wait_until(lambda: ready(runtime.url("/healthz")), timeout=20, what="the model loaded")
    status, body = post_json(runtime.url("/predict"), {"x": 2})
    assert status == 200
    assert body == {"y": 6, "thread": "predict_0"}
    assert post_json(runtime.url("/"), {"x": 1})[1] == {"y": 3, "thread": "predict_0"}


def test_an_async_predictor_runs_on_the_loop(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("predictors:AsyncScale", '--config={"factor": 2}')
    wait_until(lambda: ready(runtime.url("/healthz")), timeout=20, what="the model loaded")
    assert post_json(runtime.url("/predict"), {"x": 5}) == (200, {"y": 10, "thread": "MainThread"})


def test_bad_payloads_and_failures_are_json_errors_and_never_fatal(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("predictors:Scale", '--config={"factor": 1}', "--max-body-bytes=1000")
    wait_until(lambda: ready(runtime.url("/healthz")), timeout=20, what="the model loaded")
    predict = runtime.url("/predict")
    status, body = http("POST", predict, b"{not json")
    assert status == 400
    assert "not valid JSON" in json.loads(body)["error"]
    assert http("POST", predict, b"\xff\xfe")[0] == 400
    assert post_json(predict, {"refuse": True}) == (422, {"error": "x must be positive"})
    status, crashed = post_json(predict, {"crash": True})
    assert status == 500
    assert crashed == {
        "error": "predict failed",
        "type": "RuntimeError",
        "detail": "the model fell over",
    }
    status, unserialisable = post_json(predict, {"unserialisable": True})
    assert status == 500
    assert "not JSON-serialisable" in unserialisable["error"]  # type: ignore[index]
    status, body = http("POST", predict, b"[" + b"1," * 1000 + b"1]")
    assert status == 413
    assert "error" in json.loads(body)
    status, body = http("GET", runtime.url("/nowhere"))
    assert status == 404
    assert "error" in json.loads(body)
    assert post_json(predict, {"x": 7})[1]["y"] == 7  # type: ignore[index]
    assert runtime.process.poll() is None


def test_a_blocking_predict_does_not_block_healthz(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    import threading  # noqa: PLC0415 - only this test holds a request open from a thread

    runtime = start_runtime("predictors:Scale", '--config={"factor": 1}')
    wait_until(lambda: ready(runtime.url("/healthz")), timeout=20, what="the model loaded")
    results: list[tuple[int, object]] = []
    caller = threading.Thread(
        target=lambda: results.append(
            post_json(runtime.url("/predict"), {"x": 1, "wait_for": "go"})
        )
    )
    caller.start()
    assert ready(runtime.url("/healthz"))
    (tmp_path / "go").touch()
    caller.join(timeout=20)
    assert results and results[0][0] == 200


def test_the_port_answers_503_until_the_model_loads(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime("predictors:SlowToLoad")
    status, body = http("GET", runtime.url("/healthz"))
    assert (status, json.loads(body)) == (503, {"ready": False})
    assert http("POST", runtime.url("/predict"), b"{}")[0] == 503
    (tmp_path / "weights").touch()
    wait_until(lambda: ready(runtime.url("/healthz")), timeout=20, what="the model loaded")
    assert post_json(runtime.url("/predict"), {}) == (200, "loaded")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("predictors:Broken", "no weights"),
        ("predictors:Missing", "has no 'Missing'"),
        ("nowhere:Thing", "cannot import 'nowhere'"),
    ],
)
def test_a_predictor_that_cannot_load_ends_the_process_with_its_reason(
    start_runtime: StartRuntime, spec: str, message: str
) -> None:
    runtime = start_runtime(spec)
    wait_until(lambda: runtime.process.poll() is not None, timeout=20, what="the runtime to exit")
    assert runtime.process.returncode == 1
    assert message in runtime.log.read_text()
