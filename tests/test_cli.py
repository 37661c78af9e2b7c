"""The programs ``python -m admm.train`` and ``python -m admm.evaluate``, end to end.

MPI runs go through ``run_mpi`` (real ``mpiexec``, a timeout so a hang fails)
on a small generated ``.npz``; ``evaluate`` runs as a plain subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import admm
import numpy as np
import pytest
from admm import _cores
from admm.metrics import memory_breakdown
from admm.network import ADMMNetwork
from admm.train import RelativeChangeRule, width_mismatch
from mpirun import run_mpi

LAYERS = "20,16,3"
TIMEOUT = 60


def make_npz(path: Path, n_train: int = 300, n_test: int = 100, features: int = 20) -> Path:
    """Three separable-ish Gaussian classes in [0, 1], as an .npz data file."""
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(3, features)) * 2
    y = rng.integers(0, 3, n_train + n_test)
    X = centers[y] + rng.normal(size=(y.size, features))
    X = (X - X.min()) / (X.max() - X.min())
    np.savez(
        path, X_train=X[:n_train], y_train=y[:n_train], X_test=X[n_train:], y_test=y[n_train:]
    )
    return path


@pytest.fixture(scope="module")
def data_npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("data") / "small.npz")


def train(ranks: int, data: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_mpi(
        ranks,
        ["-m", "admm.train", "--data", str(data), "--layers", LAYERS, *args],
        timeout=TIMEOUT,
        check=check,
    )


def evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "admm.evaluate", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_clean_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    """A non-zero exit with a readable one-line message and no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


# ------------------------------------------------------------------ no MPI


def test_help_explains_every_flag():
    out = subprocess.run(
        [sys.executable, "-m", "admm.train", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    for flag in (
        "--data ", "--data-dir", "--layers", "--activation", "--loss", "--beta", "--gamma",
        "--rho", "--warmup", "--iterations", "--tol", "--dtype", "--seed", "--eval-every",
        "--metrics", "--save", "--checkpoint ", "--checkpoint-every", "--resume", "--debug",
        "--refit",
    ):  # fmt: skip
        assert flag in out.stdout, flag
    assert "784,500,500,10" in out.stdout
    out = evaluate("--help")
    assert out.returncode == 0 and "--json" in out.stdout


def test_relative_change_rule():
    def history(objectives):
        return [{"iteration": i + 1, "objective": f} for i, f in enumerate(objectives)]

    rule = RelativeChangeRule(tol=1e-2, warmup=2, patience=3)
    # Iterations 1-3 are flat, but the pairs (1,2), (2,3) lie in the warm-up.
    assert not rule(history([1.0, 1.0, 1.0, 1.0, 1.0]))
    assert rule(history([1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    # A large change resets the count.
    assert not rule(history([5.0, 5.0, 5.0, 1.0, 1.0, 2.0, 2.0, 2.0]))
    assert rule(history([5.0, 5.0, 5.0, 1.0, 2.0, 2.0, 2.0, 2.0]))
    # Relative, not absolute: 1e6 -> 1.001e6 is a change of 1e-3.
    assert rule(history([0, 0, 0, 1e6, 1.001e6, 1.002e6, 1.003e6]))


def test_width_mismatch_message():
    assert width_mismatch((20, 16, 3), 20, 3) is None
    message = width_mismatch((784, 500, 500, 10), 20, 3)
    assert "20 features" in message and "3 classes" in message
    assert "--layers 20,500,500,3" in message


@pytest.mark.parametrize(
    ("layers", "loss", "dtype"),
    [((20, 16, 3), "hinge", "float64"), ((20, 30, 8, 3), "squared", "float32")],
)
def test_memory_model_counts_the_network_arrays(rng, layers, loss, dtype):
    m = 57
    X = rng.random((m, layers[0]))
    labels = rng.integers(0, layers[-1], m)
    y = labels if loss == "hinge" else np.eye(layers[-1])[labels]
    net = ADMMNetwork(layers, loss=loss, dtype=dtype, warmup=1).fit(X, y, iterations=2)
    held = net.allocated_bytes()
    parts = memory_breakdown(layers, m, dtype, loss)
    for kind in ("activations", "outputs", "multiplier", "woodbury", "weights", "reduce"):
        assert parts[kind] == held[kind], kind
    assert parts["input_factor"] == held["input_factor"]
    assert parts["input"] == held["input"]
    # The model also counts the program's int64 labels beside the squared loss's targets.
    extra_labels = m * 8 if loss == "squared" else 0
    assert parts["labels"] - extra_labels == held["targets"]
    assert memory_breakdown(layers, m, dtype, loss, n_test_local=10)["test"] > 0
    # The refit's temporaries: the new weights beside the old, and two
    # blocks of hidden features (all m rows here, fewer than PREDICT_BLOCK).
    refit = memory_breakdown(layers, m, dtype, loss, refit=True)
    assert refit.keys() == parts.keys()
    features = 2 * m * max(layers[1:-1]) * np.dtype(dtype).itemsize
    assert refit["transient"] >= parts["weights"] + features
    assert refit["transient"] >= parts["transient"]
    # Refits that keep W_1 hold h(a_0 W_1^T) whole beside the temporaries.
    kept = memory_breakdown(layers, m, dtype, loss, refit=True, input_features=True)
    f1 = m * layers[1] * np.dtype(dtype).itemsize
    assert kept["transient"] >= f1 + refit["transient"] - parts["weights"]
    assert kept["transient"] >= f1 + parts["transient"] - parts["weights"]
    assert memory_breakdown(layers, m, dtype, loss, input_features=True) == parts  # no refit
    # A decaying ridge keeps the float64 input Gram beside its factor.
    net = ADMMNetwork(layers, loss=loss, dtype=dtype, rho_final=0.5, rho_decay_iterations=1)
    held = net.fit(X, y, iterations=2).allocated_bytes()
    decay = memory_breakdown(layers, m, dtype, loss, ridge_decay=True)
    assert decay["input_factor"] == held["input_factor"] == 2 * parts["input_factor"]
    # Deskewing (with centring, in place) holds one copy of the input block
    # beside the caller's, like centring alone; its temporaries are counted.
    square = int(np.sqrt(layers[0])) ** 2
    image_layers = (square, *layers[1:])
    net = ADMMNetwork(image_layers, loss=loss, dtype=dtype, deskew=True, center=True)
    held = net.fit(X[:, :square], y, iterations=1).allocated_bytes()
    deskewed = memory_breakdown(image_layers, m, dtype, loss, deskew=True)
    assert deskewed["input"] == 2 * held["input"]
    assert deskewed == memory_breakdown(image_layers, m, dtype, loss, center=True, deskew=True)
    assert deskewed["transient"] >= m * square * 8


# --------------------------------------------------------------- under MPI


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_train_writes_metrics_and_a_model_evaluate_agrees(tmp_path, data_npz, ranks):
    metrics, model = tmp_path / "run.jsonl", tmp_path / "model.npz"
    proc = train(
        ranks, data_npz, "--iterations", "12", "--eval-every", "4",
        "--metrics", str(metrics), "--save", str(model),
    )  # fmt: skip
    # Only rank 0 prints: one header, one line per evaluated iteration, one summary.
    assert proc.stdout.count("admm.train:") == 1
    assert f"{ranks} ranks" in proc.stdout
    assert proc.stdout.count("final test accuracy") == 1
    progress = [ln.split() for ln in proc.stdout.splitlines() if ln[:6].strip().isdigit()]
    assert [int(p[0]) for p in progress] == [4, 8, 12]

    records = read_metrics(metrics)
    start, steps, done = records[0], records[1:-1], records[-1]
    assert start["event"] == "start" and start["ranks"] == ranks
    assert start["layers"] == [20, 16, 3] and start["beta"] == [0.2, 0.2]
    sizes = start["samples_per_rank"]
    assert sum(sizes) == 300 and max(sizes) - min(sizes) <= 1 and len(sizes) == ranks
    assert [r["iteration"] for r in steps] == list(range(1, 13))
    for r in steps:
        assert {
            "iteration",
            "time_s",
            "objective",
            "residual",
            "test_accuracy",
            "peak_rss_mb",
        } <= set(r)
        assert np.isfinite(r["objective"]) and r["residual"] >= 0 and r["peak_rss_mb"] > 0
        assert (r["test_accuracy"] is None) == (r["iteration"] % 4 != 0)
    times = [r["time_s"] for r in steps]
    assert times == sorted(times)
    assert done["event"] == "done" and done["stop_reason"] == "iterations"
    assert done["iterations"] == 12
    assert done["final_test_accuracy"] == steps[-1]["test_accuracy"]
    assert float(progress[-1][4]) == pytest.approx(done["final_test_accuracy"], abs=5e-5)

    net = admm.load(model)
    assert net.layers == (20, 16, 3) and net.n_iter_ == 12
    with np.load(data_npz) as f:
        expected = net.score(f["X_test"], f["y_test"])
    assert done["final_test_accuracy"] == expected

    out = evaluate(str(model), "--data", str(data_npz), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["accuracy"] == done["final_test_accuracy"]
    assert result["n_test"] == 100 and result["model"] == str(model)
    plain = evaluate(str(model), "--data", str(data_npz))
    assert f"{done['final_test_accuracy']:.4f}" in plain.stdout


@pytest.mark.mpi
def test_tol_stops_early_and_says_why(tmp_path, data_npz):
    metrics = tmp_path / "run.jsonl"
    tol, warmup = 0.3, 3
    proc = train(
        2, data_npz, "--iterations", "80", "--warmup", str(warmup), "--tol", str(tol),
        "--metrics", str(metrics), "--eval-every", "7",
    )  # fmt: skip
    records = read_metrics(metrics)
    done = records[-1]
    assert done["stop_reason"] == "tolerance"
    assert "stopped by tolerance" in proc.stdout
    objectives = [r["objective"] for r in records[1:-1]]
    stop = len(objectives)
    assert stop < 80 and done["iterations"] == stop
    # Independently of the rule's code: the first i with 5 small changes in a
    # row, counting only pairs (i-1, i) with i - 1 > warmup.
    small = [
        i > warmup + 1
        and abs(objectives[i - 1] - objectives[i - 2]) / abs(objectives[i - 2]) < tol
        for i in range(1, len(objectives) + 1)
    ]
    first = next(i for i in range(5, len(small) + 1) if all(small[i - 5 : i]))
    assert stop == first
    # The final accuracy is evaluated even when the last iteration was not.
    assert done["final_test_accuracy"] is not None


@pytest.mark.mpi
def test_embedded_sample_squared_float32(tmp_path):
    metrics = tmp_path / "run.jsonl"
    proc = run_mpi(
        2,
        ["-m", "admm.train", "--data", "mnist-sample", "--layers", "784,24,10", "--loss",
         "squared", "--dtype", "float32", "--iterations", "3", "--metrics", str(metrics)],
        timeout=TIMEOUT,
    )  # fmt: skip
    assert "mnist-sample" in proc.stdout and proc.stdout.count("admm.train:") == 1
    done = read_metrics(metrics)[-1]
    assert done["event"] == "done" and done["iterations"] == 3
    assert 0.1 < done["final_test_accuracy"] <= 1.0


@pytest.mark.mpi
def test_corrupt_data_file_ends_the_job(tmp_path, data_npz):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data_npz.read_bytes()[:2000])
    proc = train(2, bad, "--iterations", "3", check=False)
    assert_clean_error(proc, "admm: error:")
    assert "bad.npz" in proc.stderr
    assert proc.stderr.count("admm: error") == 1, proc.stderr
    assert "admm.train:" not in proc.stdout  # failed before training


@pytest.mark.mpi
def test_error_seen_by_rank_0_only_ends_every_rank(tmp_path, data_npz):
    # Only rank 0 writes --save, so only rank 0 finds that its folder is missing.
    target = tmp_path / "missing" / "model.npz"
    proc = train(3, data_npz, "--iterations", "3", "--save", str(target), check=False)
    assert_clean_error(proc, "--save")
    assert "admm.train:" not in proc.stdout


@pytest.mark.mpi
def test_bad_flags_and_widths_fail_before_training(tmp_path, data_npz):
    proc = run_mpi(2, ["-m", "admm.train", "--data", str(data_npz)], timeout=TIMEOUT, check=False)
    assert_clean_error(proc, "--layers 20,500,500,3")
    proc = train(2, data_npz, "--beta", "-1", check=False)
    assert_clean_error(proc, "--beta")
    assert proc.stderr.count("error") == 1


def test_evaluate_refuses_wrong_model_or_data(tmp_path, data_npz):
    net = ADMMNetwork((20, 16, 3))
    model = tmp_path / "model.npz"
    net.save(model)
    other = make_npz(tmp_path / "wide.npz", features=12)
    out = evaluate(str(model), "--data", str(other))
    assert_clean_error(out, "12 features")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(model.read_bytes()[:500])
    out = evaluate(str(corrupt), "--data", str(data_npz))
    assert_clean_error(out, "corrupt.npz")
    assert len(out.stderr.strip().splitlines()) == 1
    out = evaluate(str(data_npz), "--data", str(data_npz))
    assert_clean_error(out, "not an admm model")


@pytest.mark.mpi
def test_program_gives_each_rank_its_share_of_the_cores(data_npz, tmp_path):
    # No BLAS thread variable set: the program sets one thread per core, not
    # one per core in every rank (2 ranks x 2 OpenBLAS threads on 2 cores
    # made an iteration up to 8x slower).
    # Nor do idle OpenBLAS threads spin for 0.1 s after every product.
    unset = dict.fromkeys((*_cores.BLAS_ENV, *_cores.BLAS_SPIN_ENV), "")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import runpy, sys\n"
        "sys.argv = ['admm.train', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('admm.train', run_name='__main__')\n"
        "finally:\n"
        "    import os\n"
        "    for name in ('OPENBLAS_NUM_THREADS', 'OPENBLAS_THREAD_TIMEOUT'):\n"
        "        print(name + '=' + os.environ.get(name, ''))\n"
    )
    args = [str(probe), "--data", str(data_npz), "--layers", LAYERS, "--iterations", "2"]
    proc = run_mpi(2, args, timeout=TIMEOUT, env=unset)
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert f"BLAS threads per rank: {share} (set by admm.train" in proc.stdout, proc.stdout
    assert proc.stdout.count(f"OPENBLAS_NUM_THREADS={share}") == 2, proc.stdout
    assert proc.stdout.count("OPENBLAS_THREAD_TIMEOUT=20") == 2, proc.stdout
    # A choice of the user stands, and the header does not claim otherwise.
    chosen = {**unset, "OPENBLAS_NUM_THREADS": "1", "OPENBLAS_THREAD_TIMEOUT": "28"}
    proc = run_mpi(2, args, timeout=TIMEOUT, env=chosen)
    assert "BLAS threads per rank" not in proc.stdout
    assert proc.stdout.count("OPENBLAS_NUM_THREADS=1") == 2, proc.stdout
    assert proc.stdout.count("OPENBLAS_THREAD_TIMEOUT=28") == 2, proc.stdout


@pytest.mark.mpi
def test_hdf5_data_with_its_own_names_trains_like_the_npz(tmp_path, data_npz):
    """``--data FILE.h5 --data-names ...`` gives the run of the same arrays in an .npz."""
    h5py = pytest.importorskip("h5py")
    arrays = np.load(data_npz)
    names = {"X_train": "train/images", "y_train": "train/labels"}
    names |= {"X_test": "test/images", "y_test": "test/labels"}
    with h5py.File(tmp_path / "d.h5", "w") as f:
        for key, name in names.items():
            f[name] = arrays[key].astype(np.float32 if key.startswith("X") else np.int16)
    flag = ",".join(f"{k}={v}" for k, v in names.items())
    npz = train(2, data_npz, "--iterations", "3", "--save", str(tmp_path / "a.npz"))
    h5 = train(
        2, tmp_path / "d.h5", "--data-names", flag, "--iterations", "3",
        "--save", str(tmp_path / "b.npz"),
    )  # fmt: skip
    # The float32 file holds the same values rounded: the runs agree to rounding.
    a, b = admm.load(tmp_path / "a.npz"), admm.load(tmp_path / "b.npz")
    for wa, wb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
    assert "final test accuracy" in npz.stdout and "final test accuracy" in h5.stdout
    proc = evaluate(
        str(tmp_path / "b.npz"), "--data", str(tmp_path / "d.h5"), "--data-names", flag
    )
    assert proc.returncode == 0, proc.stderr
    bad = train(2, tmp_path / "d.h5", "--iterations", "1", check=False)
    assert bad.returncode == 2
    assert bad.stderr.count("admm: error") == 1 and "X_train" in bad.stderr
