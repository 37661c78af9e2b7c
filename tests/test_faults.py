"""Failure paths of the programs and the library (issue 6): bad input, numerical
failure, killed and interrupted runs, untrustworthy models, sub-communicators.

Every MPI run has a timeout (``run_mpi``, or ``Popen.wait``), so a hang fails
the test instead of stalling the suite. What the user sees is documented in
``docs/failures.md``; the exit statuses asserted here are the ones listed there.
"""

from __future__ import annotations

import ast
import gzip
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import admm
import numpy as np
import pytest
from admm import _mpi
from admm import checkpoint as ck
from admm.network import ADMMNetwork, NumericalError
from mpirun import find_mpiexec, run_mpi
from test_cli import LAYERS, evaluate, make_npz, read_metrics

TIMEOUT = 60
#: Seconds a killed or signalled job may take to end.
END_TIMEOUT = 30
SAMPLE = Path(admm.__file__).resolve().parent / "datasets" / "mnist-sample"
PROGRAMS = Path(__file__).resolve().parent / "mpi_programs"

EXIT_INPUT = 2  # an error every rank agreed on, before or outside training
EXIT_NUMERICAL = 3


@pytest.fixture(scope="module")
def data_npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("data") / "small.npz")


def modified_npz(path: Path, base: Path, **changes) -> Path:
    """``base``'s arrays with ``changes`` (None removes an array), saved to ``path``."""
    with np.load(base) as f:
        arrays = dict(f)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str, status: int) -> None:
    """Exit ``status``, one ``admm: error`` line containing ``fragment``, no traceback."""
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("admm: error: "), proc.stderr
    assert fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def train(ranks: int, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_mpi(ranks, ["-m", "admm.train", *args], timeout=TIMEOUT, env=env, check=False)


# ------------------------------------------------------------ bad input


def idx_folder(folder: Path, case: str) -> Path:
    """The embedded sample's four IDX files in ``folder``, damaged as ``case`` says."""
    folder.mkdir()
    for gz in SAMPLE.glob("*.gz"):
        (folder / gz.name).write_bytes(gz.read_bytes())
    labels = folder / "train-labels-idx1-ubyte.gz"
    if case == "truncated-gzip":
        labels.write_bytes(labels.read_bytes()[:-100])
    elif case == "wrong-magic":
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[3] = 0x03  # 2049 -> 2051, the images' magic
        labels.unlink()
        (folder / "train-labels-idx1-ubyte").write_bytes(raw)
    elif case == "count-mismatch":
        # Plain files (no published checksum for plain Fashion-MNIST), one
        # label fewer than images, consistent with its own header.
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[4:8] = (int.from_bytes(raw[4:8], "big") - 1).to_bytes(4, "big")
        labels.unlink()
        (folder / "train-labels-idx1-ubyte").write_bytes(raw[:-1])
        images = folder / "train-images-idx3-ubyte.gz"
        (folder / "train-images-idx3-ubyte").write_bytes(gzip.decompress(images.read_bytes()))
        images.unlink()
    elif case == "missing":
        (folder / "t10k-images-idx3-ubyte.gz").unlink()
    return folder


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("name", "case", "fragment"),
    [
        ("mnist", "checksum", "checksum mismatch"),  # the sample is not full MNIST
        ("fashion-mnist", "truncated-gzip", "corrupt or truncated gzip file"),
        ("fashion-mnist", "wrong-magic", "wrong magic number 2051"),
        ("fashion-mnist", "missing", "download failed"),
    ],
)
def test_bad_idx_files_end_every_rank_with_one_line(tmp_path, name, case, fragment):
    folder = idx_folder(tmp_path / "idx", case)
    # No cache, no download: a dead local port answers at once.
    env = {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "ADMM_DATA_DIR": str(tmp_path / "none"),
        "ADMM_DATA_MIRRORS": "http://127.0.0.1:9/",
    }
    proc = train(2, "--data", name, "--data-dir", str(folder), "--layers", "784,8,10", env=env)
    assert_one_line_error(proc, fragment, EXIT_INPUT)
    assert "admm.train:" not in proc.stdout  # stopped before training


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"y_train": None}, "missing array y_train"),
        ({"X_train": np.zeros((300, 4, 5))}, "X_train has shape (300, 4, 5)"),
        ({"y_train": np.zeros(300, dtype=np.complex128)}, "expected integer labels"),
        # Labels 0..7 give 8 classes, which 3 outputs cannot fit.
        ({"y_train": np.arange(300) % 8}, "3 outputs but the data has 8 classes"),
    ],
    ids=["missing-array", "shape", "dtype", "label-outside-classes"],
)
def test_bad_npz_ends_every_rank_with_one_line(tmp_path, data_npz, change, fragment):
    bad = modified_npz(tmp_path / "bad.npz", data_npz, **change)
    proc = train(2, "--data", str(bad), "--layers", LAYERS)
    assert_one_line_error(proc, fragment, EXIT_INPUT)
    assert "admm.train:" not in proc.stdout


@pytest.mark.mpi
def test_nan_in_one_ranks_block_reaches_every_rank(tmp_path, data_npz):
    with np.load(data_npz) as f:
        X = f["X_train"].copy()
    X[250, 3] = np.nan  # rows 200..299 are rank 2's of 3
    bad = modified_npz(tmp_path / "nan.npz", data_npz, X_train=X)
    proc = train(3, "--data", str(bad), "--layers", LAYERS)
    assert_one_line_error(proc, "rank 2: ", EXIT_INPUT)
    assert "NaN at row 250, column 3" in proc.stderr


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("flag", "value"), [("--gamma", "0"), ("--rho", "-1e-3"), ("--iterations", "0")]
)
def test_non_positive_parameters_are_refused(data_npz, flag, value):
    proc = train(2, "--data", str(data_npz), "--layers", LAYERS, flag, value)
    assert_one_line_error(proc, flag, EXIT_INPUT)
    assert "admm.train:" not in proc.stdout
    if flag == "--iterations":  # --debug adds the traceback, with the same status
        proc = train(2, "--data", str(data_npz), "--layers", LAYERS, flag, value, "--debug")
        assert proc.returncode == EXIT_INPUT and "Traceback" in proc.stderr
        assert "must be a positive integer" in proc.stderr


@pytest.mark.mpi
def test_unwritable_metrics_is_found_before_training(tmp_path, data_npz):
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "run.jsonl"  # its folder is a file: fails even for root
    proc = train(2, "--data", str(data_npz), "--layers", LAYERS, "--metrics", str(target))
    assert_one_line_error(proc, "--metrics", EXIT_INPUT)
    assert "admm.train:" not in proc.stdout


@pytest.mark.mpi
def test_more_ranks_than_samples_trains_like_fewer_ranks(tmp_path, data_npz):
    # 2 training samples on 3 ranks: rank 2 has none and adds nothing to the sums.
    with np.load(data_npz) as f:
        tiny = modified_npz(
            tmp_path / "tiny.npz", data_npz, X_train=f["X_train"][:2], y_train=f["y_train"][:2]
        )
    models = {}
    for ranks in (2, 3):
        models[ranks] = tmp_path / f"model{ranks}.npz"
        proc = train(
            ranks, "--data", str(tiny), "--layers", LAYERS, "--iterations", "3",
            "--save", str(models[ranks]),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert "0-1 training samples per rank (2 in all)" in proc.stdout
    a, b = admm.load(models[2]), admm.load(models[3])
    assert a.n_iter_ == b.n_iter_ == 3
    # Equal up to rounding: each rank solves its share of the rows of W_l, and
    # OpenBLAS's Haswell kernels round a row by the rows sharing its call, so
    # 2 and 3 ranks differ in the last bits (5e-8 relative after three
    # iterations through the piecewise z-update, on 2026-12-03).
    for wa, wb in zip(a.weights, b.weights, strict=True):
        assert np.all(np.isfinite(wb))
        np.testing.assert_allclose(wb, wa, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------ numerical failure


def overflowing_npz(path: Path, base: Path, scale: float) -> Path:
    with np.load(base) as f:
        return modified_npz(path, base, X_train=f["X_train"] * scale, X_test=f["X_test"] * scale)


@pytest.mark.mpi
def test_overflow_stops_with_layer_and_iteration_and_keeps_the_last_checkpoint(tmp_path, data_npz):
    # Entries near 1e150 with beta = gamma = 1e30: the first three iterations
    # are finite, the first multiplier update (iteration 4) overflows
    # <z_2, lam> to inf. Nothing is made to fail on purpose.
    data = overflowing_npz(tmp_path / "huge.npz", data_npz, 1e150)
    saved, model, metrics = tmp_path / "ck", tmp_path / "model.npz", tmp_path / "run.jsonl"
    proc = train(
        2, "--data", str(data), "--layers", LAYERS, "--activation", "relu", "--loss",
        "squared", "--beta", "1e30", "--gamma", "1e30", "--rho", "1", "--warmup", "3",
        "--iterations", "8", "--checkpoint", str(saved), "--checkpoint-every", "1",
        "--save", str(model), "--metrics", str(metrics),
    )  # fmt: skip
    assert_one_line_error(proc, "numerical failure at iteration 4, layer 2", EXIT_NUMERICAL)
    assert "is inf" in proc.stderr and f"checkpoint of iteration 3 in {saved} is kept" in (
        proc.stderr
    )
    assert not model.exists()
    manifest = ck.read_manifest(saved)
    assert manifest["iteration"] == 3
    assert sorted(p.name for p in saved.glob("state-*")) == [
        ck.state_file_name(3, r) for r in range(2)
    ]
    for entry in manifest["files"]:
        with np.load(saved / entry["file"]) as f:
            assert all(np.all(np.isfinite(f[k])) for k in f.files)
    error = read_metrics(metrics)[-1]
    assert error["event"] == "error" and error["iteration"] == 4 and error["layer"] == 2


@pytest.mark.mpi
def test_gram_the_ridge_cannot_fix_is_one_line_on_every_rank(tmp_path, data_npz):
    # float32 activations of data near 1e10 with a small gamma: the float32
    # Gram of layer 2 is not positive definite even with the default ridge.
    data = overflowing_npz(tmp_path / "ill.npz", data_npz, 1e10)
    proc = train(
        2, "--data", str(data), "--layers", LAYERS, "--dtype", "float32", "--gamma", "0.001",
        "--iterations", "3",
    )  # fmt: skip
    assert_one_line_error(proc, "numerical failure at iteration 1: the Gram matrix of layer 2",
                          EXIT_NUMERICAL)  # fmt: skip
    assert "not positive definite" in proc.stderr and "larger rho" in proc.stderr


def test_library_names_layer_and_iteration_and_overflowing_ridge(data_npz):
    with np.load(data_npz) as f:
        X, y = f["X_train"], f["y_train"]
    net = ADMMNetwork((20, 16, 3), "relu", "squared", beta=1e30, gamma=1e30, rho=1.0, warmup=3)
    with pytest.raises(NumericalError, match="iteration 4, layer 2") as info:
        net.fit(X * 1e150, np.eye(3)[y], iterations=6)
    assert (info.value.iteration, info.value.layer) == (4, 2)
    assert net.n_iter_ == 3 and len(net.history) == 3  # the failed iteration is not counted
    # The automatic ridge of data whose squares overflow is refused at once.
    with pytest.raises(NumericalError, match="ridge rho_1 is inf"):
        ADMMNetwork((20, 16, 3)).fit(X * 1e160, y, iterations=2)


def test_checkpoint_of_a_non_finite_state_is_refused_and_the_old_one_kept(tmp_path, rng):
    X, y = rng.random((30, 6)), rng.integers(0, 2, 30)
    comm = _mpi.Communicator()
    config, info = {"seed": 0}, {"sha256": "x"}
    net = ADMMNetwork((6, 5, 2), warmup=1).fit(X, y, iterations=2)
    ck.save_checkpoint(tmp_path, comm, net.get_state(), config, info)
    net.fit(X, y, iterations=3, warm_start=True)
    state = net.get_state()
    state["z"] = [z.copy() for z in state["z"]]
    state["z"][0][4, 1] = np.nan
    with pytest.raises(ck.CheckpointError, match="z1 contain NaN or inf"):
        ck.save_checkpoint(tmp_path, comm, state, config, info)
    assert ck.load_checkpoint(tmp_path, comm, config, info)["n_iter"] == 2
    assert sorted(p.name for p in tmp_path.glob("state-*")) == [ck.state_file_name(2, 0)]


# ---------------------------------------------------------- models


def test_model_checksum_refuses_edited_or_damaged_files(tmp_path, data_npz):
    model = tmp_path / "model.npz"
    ADMMNetwork((20, 16, 3)).save(model)
    assert admm.load(model).layers == (20, 16, 3)
    # A valid archive whose weights were changed after saving: only the
    # checksum can tell.
    with np.load(model) as f:
        arrays = dict(f)
    arrays["W1"][0, 0] += 1e-6
    edited = tmp_path / "edited.npz"
    np.savez(edited, **arrays)
    with pytest.raises(ValueError, match=r"edited\.npz is corrupt"):
        admm.load(edited)
    out = evaluate(str(edited), "--data", str(data_npz))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("admm.evaluate: error:") and "corrupt" in out.stderr
    # One flipped bit anywhere in the weights' bytes.
    raw = bytearray(model.read_bytes())
    raw[raw.find(b"W1.npy") + 200] ^= 0x10
    flipped = tmp_path / "flipped.npz"
    flipped.write_bytes(bytes(raw))
    out = evaluate(str(flipped), "--data", str(data_npz))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "flipped.npz" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    del arrays["sha256"]
    np.savez(edited, **arrays)
    with pytest.raises(ValueError, match=r"missing \['sha256'\]"):
        admm.load(edited)


# ------------------------------------------------------- killed and signalled


def rank_pids(mpiexec_pid: int) -> dict[int, int]:
    """PMI rank -> pid of the Python processes started by ``mpiexec_pid``, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {}
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != mpiexec_pid:
            ancestor = parents.get(ancestor)
        if ancestor != mpiexec_pid:
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for var in environ:
            if var.startswith(b"PMI_RANK="):
                found[int(var[len(b"PMI_RANK=") :])] = pid
    return found


def start_training(ranks: int, *args: str) -> subprocess.Popen:
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("mpiexec not found")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["MPIEXEC_TIMEOUT"] = str(TIMEOUT)
    return subprocess.Popen(
        [mpiexec, "-n", str(ranks), sys.executable, "-m", "admm.train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_until(proc: subprocess.Popen, ready, what: str) -> None:
    """Poll ``ready()`` until true; fail if the job ends first or takes too long."""
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after {TIMEOUT} s")
        time.sleep(0.02)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    """The job's status and output; fails if it does not end within END_TIMEOUT."""
    try:
        out, err = proc.communicate(timeout=END_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the job did not end within {END_TIMEOUT} s:\n{out}\n{err}")
    return proc.returncode, out, err


def checkpointed(directory: Path, at_least: int):
    def ready() -> bool:
        try:
            return ck.read_manifest(directory)["iteration"] >= at_least
        except ck.CheckpointError:
            return False

    return ready


@pytest.mark.mpi
def test_killed_rank_ends_the_job_and_the_checkpoint_resumes_exactly(tmp_path, data_npz):
    saved = tmp_path / "ck"
    common = ["--data", str(data_npz), "--layers", LAYERS, "--warmup", "3"]
    proc = start_training(
        2, *common, "--iterations", "1000000", "--checkpoint", str(saved),
        "--checkpoint-every", "1",
    )  # fmt: skip
    wait_until(proc, checkpointed(saved, 5), "checkpoint of iteration 5")
    pids = rank_pids(proc.pid)
    assert sorted(pids) == [0, 1], pids
    os.kill(pids[1], signal.SIGKILL)
    status, _, err = finish(proc)
    assert status != 0, err
    for pid in pids.values():  # no rank survives the job
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()

    # Whatever iteration the manifest names is complete and resumes exactly.
    k = ck.read_manifest(saved)["iteration"]
    total = str(k + 3)
    resumed, straight = tmp_path / "resumed.npz", tmp_path / "straight.npz"
    proc = train(2, *common, "--iterations", total, "--resume", str(saved), "--save",
                 str(resumed))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"at iteration {k}" in proc.stdout
    proc = train(2, *common, "--iterations", total, "--save", str(straight))
    assert proc.returncode == 0, proc.stderr
    with np.load(resumed) as a, np.load(straight) as b:
        for key in ("W1", "W2"):
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("signum", "target"),
    [(signal.SIGTERM, "mpiexec"), (signal.SIGINT, "mpiexec"), (signal.SIGTERM, "rank 1")],
)
def test_signal_checkpoints_the_current_iteration_and_exits_cleanly(
    tmp_path, data_npz, signum, target
):
    saved, model, metrics = tmp_path / "ck", tmp_path / "model.npz", tmp_path / "run.jsonl"
    # --checkpoint-every is never reached: only the signal writes the checkpoint.
    # --refit is skipped: the model is that of the checkpointed iteration.
    proc = start_training(
        2, "--data", str(data_npz), "--layers", LAYERS, "--iterations", "1000000",
        "--checkpoint", str(saved), "--checkpoint-every", "1000000",
        "--save", str(model), "--metrics", str(metrics), "--refit",
    )  # fmt: skip

    def training() -> bool:
        return metrics.exists() and len(metrics.read_text().splitlines()) >= 3

    wait_until(proc, training, "iterations in the metrics")
    if target == "mpiexec":
        proc.send_signal(signum)
    else:
        os.kill(rank_pids(proc.pid)[1], signum)  # a signal that reaches one rank only
    status, out, err = finish(proc)
    assert status == 128 + signum, (status, out, err)
    assert "Traceback" not in err
    done = read_metrics(metrics)[-1]
    assert done["event"] == "done" and done["stop_reason"] == "signal"
    assert done["signal"] == signal.Signals(signum).name
    k = done["iterations"]
    assert re.search(rf"interrupted by {done['signal']} after iteration {k}: continue", out)
    assert ck.read_manifest(saved)["iteration"] == k
    assert admm.load(model).n_iter_ == k
    assert done["refit"] is False and "refit skipped: stopped by" in out
    assert f"time to {done['signal']}:" in out and "time to the iteration limit" not in out
    with np.load(model) as m, np.load(saved / ck.state_file_name(k, 0)) as state:
        np.testing.assert_array_equal(m["W2"], state["weights2"])


# ------------------------------------------------------- communicators


@pytest.mark.mpi
def test_networks_on_disjoint_sub_communicators_do_not_interfere(tmp_path):
    for ranks, mode in ((4, "split"), (2, "alone")):
        run_mpi(ranks, [str(PROGRAMS / "split_comms.py"), str(tmp_path), mode], timeout=TIMEOUT)
    for c in (0, 1):
        with np.load(tmp_path / f"split{c}.npz") as a, np.load(tmp_path / f"alone{c}.npz") as b:
            for key in ("W1", "W2"):
                np.testing.assert_array_equal(a[key], b[key])
    with np.load(tmp_path / "split0.npz") as a, np.load(tmp_path / "split1.npz") as b:
        assert not np.array_equal(a["W1"], b["W1"])  # two different problems


def test_only_the_mpi_module_touches_mpi():
    # In code, not docstrings: no import of mpi4py and no COMM_WORLD outside _mpi.py.
    package = Path(admm.__file__).resolve().parent
    for path in package.glob("*.py"):
        uses = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "COMM_WORLD":
                uses.add("COMM_WORLD")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                uses.update(n for n in names if n.split(".")[0] == "mpi4py")
        assert (path.name == "_mpi.py") == bool(uses), (path.name, uses)


def test_a_given_communicator_is_used_not_comm_world(monkeypatch, rng):
    # The poisoned module of split_comms.py, in one process: the default
    # (comm=None) trips it, a given communicator does not.
    mpi = _mpi._load_mpi()
    sys.path.insert(0, str(PROGRAMS))
    try:
        from split_comms import _NoWorld
    finally:
        sys.path.remove(str(PROGRAMS))
    comm = mpi.COMM_SELF
    monkeypatch.setattr(_mpi, "_load_mpi", lambda: _NoWorld())
    X, y = rng.random((20, 4)), rng.integers(0, 2, 20)
    ADMMNetwork((4, 3, 2), comm=comm).fit(X, y, iterations=2)
    with pytest.raises(AssertionError, match="COMM_WORLD"):
        ADMMNetwork((4, 3, 2)).fit(X, y, iterations=2)
