"""The baseline of binary-step networks: random binary features and a least-squares output.

A network of step units ``1[z > 0]`` whose hidden weights are never
trained is a random-features model: each hidden layer thresholds random
Gaussian projections of the (centred) layer below, and only the output
layer is fitted, by ridge regression onto one-hot targets. ``docs/models.md``
compares ``--preset binary`` (every layer trained by ADMM) with it, on the
same images and widths::

    python -m bench.studies.models.random_features --data-dir ../shared/data/mnist --deskew
    python -m bench.studies.models.random_features --data-dir ../shared/data/mnist \\
        --widths 500 500,500 2000
"""

from __future__ import annotations

import argparse

import numpy as np
from admm.data import load_dataset
from admm.preprocessing import deskew


def random_step_features(
    X: np.ndarray, X_test: np.ndarray, widths: tuple[int, ...], seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The last hidden layer's features ``(m, widths[-1])`` of training and test
    samples in a step network with random Gaussian weights; each layer's
    input is centred by its training mean first (as ``center`` does)."""
    rng = np.random.default_rng(seed)
    for width in widths:
        mean = X.mean(axis=0)
        W = rng.standard_normal((X.shape[1], width)).astype(X.dtype)
        X, X_test = (((A - mean) @ W > 0).astype(X.dtype) for A in (X, X_test))
    return X, X_test


def least_squares_accuracy(
    H: np.ndarray, y: np.ndarray, H_test: np.ndarray, y_test: np.ndarray, ridge: float = 1.0
) -> tuple[float, float]:
    """Training and test accuracy of the ridge regression of one-hot ``y`` on
    ``H`` with an intercept column (``ridge`` times the identity)."""
    ones = np.ones((len(H), 1), H.dtype)
    A, A_test = np.hstack([H, ones]), np.hstack([H_test, ones[: len(H_test)]])
    targets = np.eye(int(y.max()) + 1, dtype=H.dtype)[y]
    coef = np.linalg.solve(A.T @ A + ridge * np.eye(A.shape[1], dtype=H.dtype), A.T @ targets)
    train = float(np.mean(np.argmax(A @ coef, axis=1) == y))
    return train, float(np.mean(np.argmax(A_test @ coef, axis=1) == y_test))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--deskew", action="store_true", help="deskew the images first")
    p.add_argument("--widths", nargs="+", default=["500", "500,500", "2000"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    d = load_dataset(args.data, args.data_dir, dtype="float32")
    assert d.X_test is not None and d.y_test is not None
    X, X_test = (
        (deskew(A) for A in (d.X_train, d.X_test)) if args.deskew else (d.X_train, d.X_test)
    )
    print("| hidden widths | training accuracy | test accuracy |")
    print("| --- | ---: | ---: |")
    for spec in args.widths:
        widths = tuple(int(w) for w in spec.split(","))
        H, H_test = random_step_features(X, X_test, widths, args.seed)
        train, test = least_squares_accuracy(H, d.y_train, H_test, d.y_test)
        print(f"| {'-'.join(map(str, widths))} | {train:.4f} | {test:.4f} |", flush=True)


if __name__ == "__main__":
    main()
