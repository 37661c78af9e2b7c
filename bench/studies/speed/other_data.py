"""The presets on data they were not tuned on (issue 16), one process.

``--preset best`` was chosen on MNIST; here it, ``talk`` and ``fast``
without its deskewing are trained on two small data sets shipped with or
made by scikit-learn (no download): the 8 x 8 digits of ``load_digits``
(1,797 images, 64 features, scaled to [0, 1]) and a synthetic
``make_classification`` problem (8,000 samples, 40 features of which 20
informative, 10 classes, 2 clusters per class); scikit-learn's
``MLPClassifier`` of the same widths, for scale. Each is split 70/30 with a
fixed seed; the network is ``n_0``-128-128-``n_L``. Prints one line per data
set and preset (accuracy on the 30% after the preset's iterations, capped
at ``--iterations``, and after its refit), and writes them as JSON lines to
``--out``:

    python -m bench.studies.speed.other_data --out bench/studies/speed/other_data.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import admm
import numpy as np


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The two data sets, features in [0, 1]."""
    from sklearn.datasets import load_digits, make_classification

    digits = load_digits()
    X, y = make_classification(
        n_samples=8000,
        n_features=40,
        n_informative=20,
        n_redundant=10,
        n_classes=10,
        n_clusters_per_class=2,
        class_sep=1.5,
        random_state=0,
    )
    X = (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0))
    return {"sklearn-digits-8x8": (digits.data / 16.0, digits.target), "synthetic": (X, y)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    lines = []
    for name, (X, y) in datasets().items():
        order = np.random.default_rng(0).permutation(len(y))
        cut = int(0.7 * len(y))
        train, val = order[:cut], order[cut:]
        layers = (X.shape[1], 128, 128, int(y.max()) + 1)
        for preset in ("talk", "best", "fast"):
            options = {**admm.PRESETS[preset], "deskew": False}
            iterations = min(args.iterations, admm.PRESET_ITERATIONS[preset])
            net = admm.ADMMNetwork(layers, **options)
            net.fit(X[train], y[train], iterations=iterations)
            record = {
                "data": name,
                "preset": preset,
                "iterations": iterations,
                "val_accuracy": net.score(X[val], y[val]),
            }
            if admm.PRESET_REFIT[preset]:
                net.refit()
                record["val_accuracy_refit"] = net.score(X[val], y[val])
            lines.append(record)
            print(json.dumps(record), flush=True)
        # For scale: backprop on the same split (scikit-learn's defaults: adam,
        # ReLU, batch 200, up to 200 epochs with its own early stop on the loss).
        from sklearn.neural_network import MLPClassifier

        mlp = MLPClassifier(hidden_layer_sizes=layers[1:-1], max_iter=200, random_state=0)
        mlp.fit(X[train], y[train])
        record = {
            "data": name,
            "preset": "scikit-learn MLPClassifier",
            "iterations": mlp.n_iter_,
            "val_accuracy": float(mlp.score(X[val], y[val])),
        }
        lines.append(record)
        print(json.dumps(record), flush=True)
    if args.out is not None:
        with args.out.open("a") as f:
            for record in lines:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
