"""Finding the user's class: a clear message for each way `module:Class` can be wrong."""

from __future__ import annotations

import pytest

from ferry.runtime.errors import LoadError, PredictorError
from ferry.runtime.main import parser
from ferry.runtime.predictor import find_class


def test_a_dotted_class_is_found() -> None:
    assert find_class("ferry.runtime.predictor:Predictor").__name__ == "Predictor"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "expected module:Class"),
        (":Class", "expected module:Class"),
        ("json:", "expected module:Class"),
        ("ferry.not_here:X", "cannot import"),
        ("json:Nope", "has no 'Nope'"),
        ("json:dumps", "is not a class"),
        ("json:JSONDecoder", "has no predict"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        find_class(spec)


def test_predictor_errors_carry_an_error_status() -> None:
    assert PredictorError("nope").status == 400
    with pytest.raises(ValueError, match="4xx or 5xx"):
        PredictorError("fine", 200)


def test_the_runtime_serves_on_the_port_the_operator_gives_the_predictor() -> None:
    assert parser({"FERRY_PORT": "9000"}).parse_args(["m:C"]).port == 9000
    assert (
        parser({"FERRY_PORT": "9000", "FERRY_RUNTIME_PORT": "7000"}).parse_args(["m:C"]).port
        == 7000
    )
    assert parser({}).parse_args(["m:C"]).port == 8080
