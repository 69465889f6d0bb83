"""Train the iris classifier and write it as one model version directory.

scikit-learn ships the iris data set inside its package, so nothing is downloaded.

    python examples/iris/train.py OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def train(out: Path, seed: int = 7) -> float:
    """Fit, write model.pkl and metadata.json into `out`, return the held-out accuracy."""
    data = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=seed, stratify=data.target
    )
    model = LogisticRegression(max_iter=500).fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "model.pkl").open("wb") as handle:
        pickle.dump(model, handle)
    metadata = {
        "classes": [str(name) for name in data.target_names],
        "features": list(data.feature_names),
        "accuracy": round(accuracy, 4),
    }
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return accuracy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    accuracy = train(args.out)
    print(f"wrote {args.out}/model.pkl (held-out accuracy {accuracy:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
