"""Record the golden results that the redesign of issue 14 must reproduce.

Run once on the code *before* a refactor (it was first run on commit
29043f9, the layout before the parameter table), for each OpenBLAS kernel
family the CI hosts have shown (the kernels round differently, so bits are
only comparable within one family)::

    OPENBLAS_CORETYPE=Haswell  python tests/golden/make_golden.py
    OPENBLAS_CORETYPE=SkylakeX python tests/golden/make_golden.py

It writes ``tests/golden/<family>/``:

- ``library.npz``: for every configuration of :data:`CONFIGS`, on 1 and 3
  ranks, the weights after a few iterations (and after the refit where the
  configuration refits), the history's objectives and residuals, ``rho_``
  and the outputs of ``decision_function`` on held-out rows;
- ``model-*.npz``: model files written by ``ADMMNetwork.save``;
- ``program/``: two runs of ``python -m admm.train`` on 2 ranks (their
  stdout and metrics) and the checkpoint of the shorter one, which the
  longer one's weights must follow when resumed.

Only public API is used, so the same script runs on the code after the
refactor too (for a kernel family not recorded before it, say so in the
commit: those goldens then only guard later changes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data.npz"

LAYERS_NARROWING = (16, 12, 8, 4)  # both hidden layers use the Woodbury a-update
LAYERS_WIDENING = (16, 8, 12, 4)  # layer 1 uses the explicit inverse
ITERATIONS = 4

BEST = {
    "activation": "hardsigmoid",
    "loss": "hinge",
    "beta": 1.0,
    "gamma": 1.0,
    "rho_relative": 1e-2,
    "rho_final": 0.2,
    "rho_decay_iterations": 3,
    "inertia": 0.3,
    "backward_sweep": True,
    "multiplier": False,
    "beta_growth": 1.03,
    "gamma_growth": 1.03,
    "beta_max": 30.0,
    "gamma_max": 30.0,
    "center": True,
    "deskew": True,
}

#: name -> (layers, constructor options, whether to refit after fit)
CONFIGS: dict[str, tuple[tuple[int, ...], dict, bool]] = {
    "talk64": (LAYERS_NARROWING, {"warmup": 2}, False),
    "talk32": (LAYERS_NARROWING, {"warmup": 2, "dtype": "float32"}, False),
    "relu_squared64": (
        LAYERS_WIDENING,
        {"activation": "relu", "loss": "squared", "warmup": 1},
        False,
    ),
    "relu_squared32": (
        LAYERS_WIDENING,
        {"activation": "relu", "loss": "squared", "warmup": 1, "dtype": "float32"},
        False,
    ),
    "relu_hinge64": (LAYERS_WIDENING, {"activation": "relu", "warmup": 2}, True),
    "hardsigmoid_squared32": (
        LAYERS_NARROWING,
        {"loss": "squared", "warmup": 2, "dtype": "float32"},
        True,
    ),
    "best64": (LAYERS_NARROWING, dict(BEST), True),
    "best32": (LAYERS_NARROWING, {**BEST, "dtype": "float32"}, True),
    "best_widening64": (LAYERS_WIDENING, dict(BEST), True),
    "per_layer64": (
        LAYERS_NARROWING,
        {
            "rho": [1e-3, 2e-3, 3e-3],
            "beta": [0.5, 1.0, 2.0],
            "gamma": [10.0, 20.0],
            "beta_growth": 1.1,
            "gamma_growth": 1.05,
            "beta_max": [0.6, 1.5, 3.0],
            "gamma_max": [12.0, 21.0],
            "warmup": 1,
            "center": True,
        },
        True,
    ),
    "deterministic64": (
        LAYERS_NARROWING,
        {"deterministic": True, "block_size": 32, "warmup": 2},
        True,
    ),
    "deterministic_best32": (
        LAYERS_WIDENING,
        {**BEST, "deterministic": True, "block_size": 32, "dtype": "float32"},
        True,
    ),
}


def make_data() -> None:
    """Synthetic 4x4 'images' in [0, 1] with 4 classes from a random teacher."""
    rng = np.random.default_rng(14)
    m, m_test, n = 384, 96, 16
    X = rng.random((m + m_test, n))
    X[:, 5] = 0.0  # a pixel that is dark in every image, as in MNIST
    teacher = rng.standard_normal((n, 4))
    y = np.argmax((X - 0.5) @ teacher + 0.3 * rng.standard_normal((m + m_test, 4)), axis=1)
    np.savez(
        DATA,
        X_train=X[:m],
        y_train=y[:m].astype(np.int64),
        X_test=X[m:],
        y_test=y[m:].astype(np.int64),
    )


def family() -> str:
    """The kernel family of SciPy's OpenBLAS (threadpoolctl), e.g. SkylakeX."""
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)
    from threadpoolctl import threadpool_info

    archs = {
        i.get("architecture")
        for i in threadpool_info()
        if i.get("user_api") == "blas" and "scipy" in i.get("filepath", "")
    }
    return "-".join(sorted(a for a in archs if a)) or "unknown"


def block(n: int, rank: int, size: int, block_size: int) -> slice:
    from admm.data import block_range

    start, stop = block_range(n, rank, size, block_size)
    return slice(start, stop)


def run_library(out: Path | None) -> dict[str, np.ndarray]:
    """Every configuration on this job's ranks; rank 0 writes ``out``."""
    import admm
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    data = np.load(DATA)
    X, y, X_test = data["X_train"], data["y_train"], data["X_test"]
    results: dict[str, np.ndarray] = {}
    for name, (layers, options, refit) in CONFIGS.items():
        dtype = options.get("dtype", "float64")
        rows = block(len(X), rank, size, options.get("block_size", 1))
        labels = y[rows]
        targets = np.eye(layers[-1])[labels] if options.get("loss") == "squared" else labels
        net = admm.ADMMNetwork(layers, seed=5, comm=comm, **options)
        net.fit(X[rows].astype(dtype), targets, iterations=ITERATIONS)
        for i, w in enumerate(net.weights):
            results[f"{name}/W{i + 1}"] = np.array(w)
        results[f"{name}/objective"] = np.array([r["objective"] for r in net.history])
        results[f"{name}/residual"] = np.array([r["residual"] for r in net.history])
        results[f"{name}/rho"] = np.array(net.rho_)
        results[f"{name}/scores"] = net.decision_function(X_test)
        if refit:
            net.refit()
            for i, w in enumerate(net.weights):
                results[f"{name}/refit_W{i + 1}"] = np.array(w)
            results[f"{name}/refit_scores"] = net.decision_function(X_test)
        if out is not None and rank == 0 and size == 1 and name in ("talk32", "best64"):
            net.save(out.parent / f"model-{name}.npz")
    if rank == 0 and out is not None:
        np.savez(out, **results)
    return results


def mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec") or "mpiexec"


def run_program(folder: Path) -> None:
    """Two runs of the program on 2 ranks; the shorter one leaves a checkpoint."""
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "ADMM_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    common = ["--data", str(DATA), "--layers", "16,12,8,4", "--warmup", "2"]
    runs = {
        "full": [*common, "--iterations", "4", "--save", "full.npz", "--metrics", "full.jsonl"],
        "half": [
            *common,
            "--iterations",
            "2",
            "--checkpoint",
            "checkpoint",
            "--checkpoint-every",
            "1",
            "--metrics",
            "half.jsonl",
        ],
        "best": [
            "--data",
            str(DATA),
            "--layers",
            "16,12,8,4",
            "--preset",
            "best",
            "--iterations",
            "3",
            "--save",
            "best.npz",
            "--metrics",
            "best.jsonl",
        ],
        "deterministic32": [
            *common,
            "--iterations",
            "3",
            "--deterministic",
            "--dtype",
            "float32",
            "--tol",
            "1e-3",
            "--eval-every",
            "2",
            "--metrics",
            "deterministic32.jsonl",
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, args in runs.items():
        proc = subprocess.run(
            [mpiexec(), "-n", "2", sys.executable, "-m", "admm.train", *args],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        (folder / f"{name}.stdout").write_text(proc.stdout)
    (folder / "command.json").write_text(json.dumps(runs, indent=1) + "\n")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        run_library(Path(sys.argv[2]) if len(sys.argv) > 2 else None)
        return
    if not DATA.exists():
        make_data()
    folder = HERE / family()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "ADMM_NUM_THREADS": "1"}
    for ranks in (1, 3):
        subprocess.run(
            [
                mpiexec(),
                "-n",
                str(ranks),
                sys.executable,
                __file__,
                "--worker",
                str(folder / f"library-{ranks}.npz"),
            ],
            env=env,
            check=True,
        )
    run_program(folder / "program")
    print(f"golden results written to {folder}")


if __name__ == "__main__":
    main()
