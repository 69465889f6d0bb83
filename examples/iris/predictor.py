"""The iris predictor, served by ferry-runtime as `predictor:IrisPredictor`.

POST {"instances": [[5.1, 3.5, 1.4, 0.2], ...]} and get back a class name and the class
probabilities for each row.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from ferry.runtime.errors import PredictorError

FEATURES = 4
USAGE = 'expected {"instances": [[sepal length, sepal width, petal length, petal width], ...]}'


class IrisPredictor:
    def __init__(self, config: dict[str, Any], model_dir: Path) -> None:
        # The artifact is the one this example's train.py wrote and Ferry fetched from S3.
        with (Path(model_dir) / "model.pkl").open("rb") as handle:
            self.model = pickle.load(handle)  # noqa: S301 - our own artifact
        self.classes = json.loads((Path(model_dir) / "metadata.json").read_text())["classes"]

    def predict(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise PredictorError(USAGE)
        rows = payload["instances"]
        for row in rows:
            if not (
                isinstance(row, list)
                and len(row) == FEATURES
                and all(isinstance(v, int | float) for v in row)
            ):
                raise PredictorError(f"each instance must be {FEATURES} numbers, got {row!r}")
        probabilities = self.model.predict_proba(rows)
        return {
            "predictions": [
                {
                    "class": self.classes[int(p.argmax())],
                    "probabilities": {
                        c: round(float(v), 4) for c, v in zip(self.classes, p, strict=True)
                    },
                }
                for p in probabilities
            ]
        }
