"""Regression by ADMM on data anyone can make offline: a teacher network's outputs (issue 15).

The inputs are standard normal in ``R^10``; the target is a random teacher
network's output, 10-8-1 with tanh hidden units (steep ones: weights of
standard deviation ``6 / sqrt(10)``, biases of 1), scaled to mean 0 and
variance 1, plus Gaussian noise of standard deviation 0.2. Everything is
seeded, so the numbers are reproducible; the least-squares linear fit
explains about 70% of the variance, the teacher itself (the noise floor)
about 96%.

The student is a one-hidden-layer network trained by ADMM with the squared
loss (``ADMMNetwork(..., loss="squared")``) and then refit
(``net.refit()``). The library's networks have no bias terms, so the
inputs get a constant column of ones (which is why ``center`` stays off: it
would zero that column) and the network fits the targets minus their
training mean (added back to its predictions). The samples are split 2/3
training, 1/6 validation, 1/6 test (8,000 / 2,000 / 2,000 by default). The
first table gives, on the test samples, the constant baseline (the
training mean), the least-squares linear fit with intercept
(``numpy.linalg.lstsq``), the teacher's noise floor and the ADMM networks,
trained on the training samples with :data:`CHOSEN`, the settings picked
on the validation samples by ``--grid`` (with ``--backprop``, also
scikit-learn's backprop network of the same width, for scale); the second, the same settings on
teachers of other seeds, which they were not chosen on::

    python -m bench.studies.models.regression             # one or two minutes
    python -m bench.studies.models.regression --grid      # the validation grid first, some minutes
    python -m bench.studies.models.regression --quick     # seconds: 3,000 samples, width 128
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from admm import ADMMNetwork

#: The teacher: inputs, tanh hidden units, scale of its first weights.
N_IN, N_TEACHER, TEACHER_SCALE = 10, 8, 6.0
#: Standard deviation of the noise on the (unit-variance) targets.
NOISE = 0.2
#: The teacher's seed: the first (from 0) whose linear fit explains at most
#: 70% of the validation variance (seed 0: 78%); no network was trained to choose it.
SEED = 1

#: Options every student shares (not varied by the grid): the float32 and
#: the ridge/penalty continuation, inertia and backward sweep of the
#: library's ``best`` preset, without its centring (the ones column).
BASE: dict[str, Any] = {
    "loss": "squared",
    "dtype": "float32",
    "multiplier": False,
    "rho_relative": 1e-2,
    "rho_final": 0.2,
    "rho_decay_iterations": 70,
    "beta": 1.0,
    "gamma": 1.0,
    "beta_growth": 1.03,
    "gamma_growth": 1.03,
    "beta_max": 30.0,
    "gamma_max": 30.0,
    "inertia": 0.3,
    "backward_sweep": True,
    "center": False,
}

#: The settings chosen on the validation samples by ``--grid`` (2026-12-04,
#: docs/models.md): overrides of :data:`BASE`, and the hidden width.
CHOSEN: dict[str, Any] = {"rho_relative": 1e-1, "rho_final": 0.01, "beta": 0.1, "gamma": 0.1}
CHOSEN_WIDTH = 256
ACTIVATIONS = ("relu", "leaky_relu", "hardsigmoid")
#: ``--quick`` (and the test): samples, iterations, width.
QUICK = (3_000, 100, 128)


@dataclass(frozen=True)
class Split:
    """Inputs (with the ones column) and targets of one part, and the noise-free targets."""

    X: np.ndarray
    y: np.ndarray
    clean: np.ndarray


def teacher_data(m: int, seed: int = SEED, noise: float = NOISE) -> tuple[np.ndarray, ...]:
    """``(X, y, clean)``: ``m`` standard normal inputs ``(m, 10)``, the noisy
    targets ``(m,)`` and the teacher's outputs without the noise.

    The teacher is drawn from ``seed``; its output is scaled by the mean and
    standard deviation of 10,000 inputs of its own, so it does not depend on ``m``.
    """
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, TEACHER_SCALE / np.sqrt(N_IN), (N_TEACHER, N_IN))
    b1 = rng.normal(0.0, 1.0, N_TEACHER)
    w2 = rng.normal(0.0, 1.0 / np.sqrt(N_TEACHER), N_TEACHER)

    def teacher(X: np.ndarray) -> np.ndarray:
        return np.tanh(X @ w1.T + b1) @ w2

    reference = teacher(rng.standard_normal((10_000, N_IN)))
    X = rng.standard_normal((m, N_IN))
    clean = (teacher(X) - reference.mean()) / reference.std()
    return X, clean + noise * rng.standard_normal(m), clean


def splits(m: int, seed: int = SEED) -> tuple[Split, Split, Split]:
    """Training (2/3), validation (1/6) and test (the rest) parts of :func:`teacher_data`."""
    X, y, clean = teacher_data(m, seed)
    X = np.c_[X, np.ones(m)]  # the bias of the first layer
    n_train, n_val = m * 2 // 3, m // 6
    cuts = [slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, m)]
    train, val, test = (Split(X[c], y[c], clean[c]) for c in cuts)
    return train, val, test


def scores(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """RMSE and R^2 of ``pred`` against ``y``."""
    rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
    return rmse, 1.0 - float(np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))


def linear_fit(train: Split) -> Callable[[np.ndarray], np.ndarray]:
    """The least-squares linear fit with intercept (the ones column) as a predictor."""
    coef = np.linalg.lstsq(train.X, train.y, rcond=None)[0]
    return lambda X: X @ coef


def network_fit(
    train: Split, width: int, iterations: int, options: dict[str, Any]
) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """A ``(n_0, width, 1)`` network trained by ADMM on ``train`` with
    :data:`BASE` and ``options``, then refit: the predictor and the training seconds."""
    mean = float(train.y.mean())
    net = ADMMNetwork((train.X.shape[1], width, 1), **{**BASE, **options})
    started = time.perf_counter()
    net.fit(train.X, (train.y - mean)[:, None], iterations=iterations)
    net.refit()
    seconds = time.perf_counter() - started
    return (lambda X: net.decision_function(X)[:, 0].astype(np.float64) + mean), seconds


#: Stage 1 of the grid (ReLU, width 128): the starting ridge and its fall, the
#: starting penalties; then single changes of the best of those.
RIDGES = [(1e-2, 0.2), (1e-2, 0.01), (1e-1, 0.2), (1e-1, 0.01)]
PENALTIES = [0.1, 1.0]
CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("multiplier on (warm-up 10)", {"multiplier": True, "warmup": 10}),
    ("refit every 2nd iteration", {"refit_every": 2}),
    ("no inertia", {"inertia": 0.0}),
    ("no backward sweep", {"backward_sweep": False}),
]
#: Stage 2: every activation at these widths, with the best of stage 1.
WIDTHS = (64, 128, 256)


def grid(train: Split, val: Split, iterations: int) -> tuple[dict[str, Any], int, list[str]]:
    """The validation grid: the chosen options and width, and its Markdown table."""
    lines = ["| stage | activation | width | settings | validation RMSE | validation R^2 | seconds |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: |"]  # fmt: skip

    def score(stage: int, activation: str, width: int, label: str, options: dict) -> float:
        predict, seconds = network_fit(
            train, width, iterations, {**options, "activation": activation}
        )
        rmse, r2 = scores(predict(val.X), val.y)
        lines.append(
            f"| {stage} | {activation} | {width} | {label} | {rmse:.4f} | {r2:.4f} | {seconds:.1f} |"
        )
        print(lines[-1], flush=True)
        return rmse

    tried = []
    for (rho, fall), penalty in ((r, p) for r in RIDGES for p in PENALTIES):
        options = {"rho_relative": rho, "rho_final": fall, "beta": penalty, "gamma": penalty}
        label = f"ridge {rho:g} -> x{fall:g}, penalties from {penalty:g}"
        tried.append((score(1, "relu", 128, label, options), options, label))
    _, best, label = min(tried, key=lambda t: t[0])
    for name, change in CHANGES:
        tried.append(
            (score(1, "relu", 128, f"{label}; {name}", {**best, **change}), {**best, **change}, "")
        )
    _, best, _ = min(tried, key=lambda t: t[0])
    final = [(score(2, a, w, "best of stage 1", best), w) for a in ACTIVATIONS for w in WIDTHS]
    return best, min(final)[1], lines


def backprop_fit(train: Split, width: int) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """For scale: scikit-learn's ``MLPRegressor`` (one hidden ReLU layer of
    ``width``, Adam, its defaults otherwise, seed 0): the predictor and seconds."""
    from sklearn.neural_network import MLPRegressor

    started = time.perf_counter()
    net = MLPRegressor(hidden_layer_sizes=(width,), max_iter=500, random_state=0)
    net.fit(train.X[:, :-1], train.y)  # it has its own biases
    seconds = time.perf_counter() - started
    return (lambda X: net.predict(X[:, :-1])), seconds


def table(
    m: int,
    iterations: int,
    options: dict[str, Any],
    width: int,
    seed: int = SEED,
    backprop: bool = False,
) -> list[str]:
    """The test table: baselines, one ADMM network per activation and, with
    ``backprop``, :func:`backprop_fit` of the same width."""
    train, _, test = splits(m, seed)
    lines = [
        "| model | test RMSE | test R^2 | seconds | iterations |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]

    def row(name: str, pred: np.ndarray, seconds: str = "", its: str = "") -> None:
        rmse, r2 = scores(pred, test.y)
        lines.append(f"| {name} | {rmse:.4f} | {r2:.4f} | {seconds} | {its} |")

    row("constant (training mean)", np.full(len(test.y), train.y.mean()))
    row("least squares, linear with intercept", linear_fit(train)(test.X))
    row("the teacher itself (noise floor)", test.clean)
    for activation in ACTIVATIONS:
        predict, seconds = network_fit(
            train, width, iterations, {**options, "activation": activation}
        )
        name = f"ADMM {N_IN + 1}-{width}-1 {activation}, refit"
        row(name, predict(test.X), f"{seconds:.1f}", str(iterations))
    if backprop:
        predict, seconds = backprop_fit(train, width)
        name = f"backprop {N_IN}-{width}-1 relu (scikit-learn MLPRegressor, Adam), for scale"
        row(name, predict(test.X), f"{seconds:.1f}", "")
    return lines


def other_teachers(
    seeds: list[int], m: int, iterations: int, options: dict[str, Any], width: int
) -> list[str]:
    """Test R^2 of the linear fit, the teacher and the ReLU network for teachers
    of other seeds, with the settings chosen for :data:`SEED` (not tuned on them)."""
    lines = [
        "| teacher seed | linear R^2 | noise floor R^2 | ADMM relu R^2 | ADMM RMSE / linear RMSE |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for seed in seeds:
        train, _, test = splits(m, seed)
        linear = scores(linear_fit(train)(test.X), test.y)
        predict, _ = network_fit(train, width, iterations, {**options, "activation": "relu"})
        network = scores(predict(test.X), test.y)
        floor = scores(test.clean, test.y)[1]
        lines.append(
            f"| {seed} | {linear[1]:.4f} | {floor:.4f} | {network[1]:.4f} | "
            f"{network[0] / linear[0]:.3f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--m", type=int, default=12_000, help="samples: 2/3 training, 1/6 validation, 1/6 test"
    )
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--width", type=int, default=CHOSEN_WIDTH, help="hidden units (without --grid)")
    p.add_argument(
        "--grid", action="store_true", help="choose the settings on the validation samples first"
    )
    p.add_argument("--quick", action="store_true", help="3,000 samples, width 128")
    p.add_argument("--seed", type=int, default=SEED, help="of the teacher and the data")
    p.add_argument(
        "--backprop",
        action="store_true",
        help="add scikit-learn's MLPRegressor of the same width (the peers extra), for scale",
    )
    p.add_argument(
        "--other-seeds",
        default="0,2,3,4",
        help="teachers to try the chosen settings on, comma-separated ('' for none)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.m, args.iterations, args.width = QUICK
    options, width = dict(CHOSEN), args.width
    if args.grid:
        train, val, _ = splits(args.m, args.seed)
        options, width, lines = grid(train, val, args.iterations)
        print("\n" + "\n".join(lines) + f"\n\nchosen: {options}, width {width}\n")
    n_train = args.m * 2 // 3
    print(f"teacher {N_IN}-{N_TEACHER}-1 tanh, noise {NOISE:g}; {n_train} training / "
          f"{args.m - n_train - args.m // 6} test samples; {args.iterations} iterations, then the refit\n")  # fmt: skip
    print(
        "\n".join(table(args.m, args.iterations, options, width, args.seed, args.backprop)),
        flush=True,
    )
    seeds = [int(seed) for seed in args.other_seeds.split(",") if seed]
    if seeds:
        print("\nother teachers, the same settings (ReLU only):\n")
        print("\n".join(other_teachers(seeds, args.m, args.iterations, options, width)))


if __name__ == "__main__":
    main()
