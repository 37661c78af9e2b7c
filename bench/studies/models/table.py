"""Every activation and loss on MNIST and Fashion-MNIST: accuracy, time to 95% and 97%.

Runs ``mpiexec -n 2 python -m admm.train`` once per configuration on all
60,000 training images of a data set and reads its ``--metrics``: the final
test accuracy (after the forward refit where the preset has one), the first
iterations (and training seconds) at which the test accuracy reached 95%
and 97%, and the seconds per iteration. Each row uses the settings chosen
for its part on the validation split of MNIST's training images (50,000 /
10,000, ``--validation 10000``; ``docs/models.md`` lists the candidates and
their validation accuracies): ``--preset best`` with the forward refit
after every fifth iteration (``--refit-every 5``) for the piecewise-linear
and smooth activations and the hinge, squared and logistic losses, the same
with the output layer's penalty held at 0.5 and label smoothing 0.3 for
the cross-entropy, and ``--preset binary`` for the step and sign units.
Every run is float32 (half the time of an iteration; the cross-entropy's
float64 run against its target is in ``docs/models.md``). MNIST's images
are deskewed (``--deskew``, the one digit-specific step), Fashion-MNIST's
are not. The binary tasks train one output on two classes of the data
set::

    python -m bench.studies.models.table --data-dir ../shared/data/mnist \\
        --fashion-dir /usr/share/datasets/fashion-mnist --out table.md
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from admm.data import load_dataset

from bench.common import run_python_mpi

#: The settings chosen on MNIST's validation split (docs/models.md): the best
#: preset with the forward refit after every fifth iteration, for every
#: part but the binary units. Without the input transforms that ``best``
#: gained later (issue 16, tenth round): the table was measured before them.
BEST = ["--preset", "best", "--refit-every", "5",
        "--input-power", "1", "--no-normalize-inputs", "--spectral-power", "0"]  # fmt: skip
#: The cross-entropy's own: the output layer's penalty beta_L held at 0.5, and
#: label smoothing 0.3.
CROSS_ENTROPY = ["--loss", "cross_entropy", "--beta", "1,1,0.5", "--beta-max", "30,30,0.5",
                 "--label-smoothing", "0.3"]  # fmt: skip
#: Binary-step and sign units.
BINARY_UNITS = ["--preset", "binary"]

#: (label, flags): every activation with the hinge, every loss with ReLU.
RUNS = [
    ("hardsigmoid, hinge", [*BEST, "--activation", "hardsigmoid"]),
    ("relu, hinge", [*BEST, "--activation", "relu"]),
    ("leaky_relu 0.01, hinge", [*BEST, "--activation", "leaky_relu"]),
    ("step, hinge", [*BINARY_UNITS, "--activation", "step"]),
    ("sign, hinge", [*BINARY_UNITS, "--activation", "sign"]),
    ("sigmoid, hinge", [*BEST, "--activation", "sigmoid"]),
    ("tanh, hinge", [*BEST, "--activation", "tanh"]),
    ("relu, squared", [*BEST, "--activation", "relu", "--loss", "squared"]),
    ("relu, cross_entropy", [*BEST, "--activation", "relu", *CROSS_ENTROPY]),
]
#: Binary tasks: two classes, one output.
BINARY = [
    ("relu, hinge, one output", [*BEST, "--activation", "relu"]),
    ("relu, logistic, one output", [*BEST, "--activation", "relu", "--loss", "logistic"]),
]
#: What each data set adds: digits are deskewed, other images are not.
DATA_FLAGS = {"mnist": ["--deskew"], "fashion-mnist": ["--no-deskew"]}
SLOW = {"sigmoid", "tanh"}  # about 200 times the piecewise z-update: fewer iterations


def run(data: str, data_dir: str | None, flags: list[str], iterations: int | None) -> dict:
    """One program run (``flags`` after the data, float32, a test evaluation after
    every iteration); its metrics summarised."""
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "run.jsonl"
        args = ["-m", "admm.train", "--data", data, *flags, "--dtype", "float32",
                "--eval-every", "1", "--metrics", str(metrics)]  # fmt: skip
        if iterations is not None:
            args += ["--iterations", str(iterations)]
        if data_dir is not None:
            args[4:4] = ["--data-dir", data_dir]
        run_python_mpi(2, args, timeout=7200)
        events = [json.loads(line) for line in metrics.read_text().splitlines()]
    steps = [e for e in events if "iteration" in e and "event" not in e]
    done = events[-1]

    def reach(level: float) -> str:
        for e in steps:
            if (e.get("test_accuracy") or 0) >= level:
                return f"{e['iteration']} ({e['time_s']:.0f} s)"
        return "-"

    last = steps[-1]
    return {
        "accuracy": done["final_test_accuracy"],
        "95": reach(0.95),
        "97": reach(0.97),
        "per_iteration": last["time_s"] / last["iteration"],
        "iterations": last["iteration"],
    }


def two_classes(data: str, data_dir: str | None, a: int, b: int, out: Path) -> str:
    """An .npz of the images of classes ``a`` and ``b`` (labels 0 and 1)."""
    d = load_dataset(data, data_dir, dtype="float32")
    assert d.X_test is not None and d.y_test is not None
    keep, keep_test = np.isin(d.y_train, (a, b)), np.isin(d.y_test, (a, b))
    np.savez(out, X_train=d.X_train[keep], y_train=(d.y_train[keep] == b).astype(np.int64),
             X_test=d.X_test[keep_test], y_test=(d.y_test[keep_test] == b).astype(np.int64))  # fmt: skip
    return str(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="MNIST's IDX files")
    p.add_argument("--fashion-dir", default=None, help="Fashion-MNIST's IDX files")
    p.add_argument("--iterations", type=int, default=None, help="default: the preset's")
    p.add_argument("--slow-iterations", type=int, default=20, help="for sigmoid and tanh")
    p.add_argument("--out", default="table.md")
    p.add_argument("--only", choices=("mnist", "fashion-mnist"), default=None, help="one data set")
    p.add_argument("--rows", nargs="*", help="only the rows whose label starts with one of these")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, directory, pair in (("mnist", args.data_dir, (3, 5)),
                                      ("fashion-mnist", args.fashion_dir, (0, 6))):  # fmt: skip
            if args.only not in (None, name):
                continue
            binary = two_classes(name, directory, *pair, Path(tmp) / f"{name}-pair.npz")
            setting = DATA_FLAGS[name]
            jobs = [
                (label, name, directory, [*flags, *setting], f"{name}") for label, flags in RUNS
            ]
            jobs += [(label, binary, None, [*flags, *setting, "--layers", "784,500,500,1"],
                      f"{name} {pair[0]} vs {pair[1]}") for label, flags in BINARY]  # fmt: skip
            for label, data, data_dir, flags, shown in jobs:
                if args.rows and not any(label.startswith(r) for r in args.rows):
                    continue
                slow = any(f in SLOW for f in flags)
                result = run(
                    data, data_dir, flags, args.slow_iterations if slow else args.iterations
                )
                rows.append((shown, label, result))
                print(shown, label, result, flush=True)
    lines = [
        "| data | activation, loss | test accuracy | iterations | 95% at | 97% at | s per iteration |",
        "| --- | --- | ---: | ---: | --- | --- | ---: |",
    ]
    for shown, label, r in rows:
        lines.append(
            f"| {shown} | {label} | {r['accuracy']:.4f} | {r['iterations']} | {r['95']} | "
            f"{r['97']} | {r['per_iteration']:.2f} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
