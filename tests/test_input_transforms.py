"""The input transforms ``input_power``, ``normalize_inputs`` and
``spectral_power``: the functions of ``admm.preprocessing`` against
entry-by-entry references in both dtypes, the network's options against the
same transforms applied by hand (training, prediction, refit, state, model
files), their errors, and training under mpiexec on 1, 2 and 3 ranks
against one process."""

from __future__ import annotations

import math
from pathlib import Path

import admm
import numpy as np
import pytest
from admm import ADMMNetwork
from admm.preprocessing import MOMENT_BLOCK, normalize_rows, power_normalize, spectral_scaling
from mpirun import load_program as load_mpi_program
from mpirun import program_runs

LAYERS = (8, 10, 6, 3)
OPTIONS = dict(rho_relative=1e-2, seed=1, backward_sweep=True, readout_iterations=3)
TRANSFORMS = dict(input_power=0.5, normalize_inputs=True, center=True, spectral_power=0.5)


def data(rng, m: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Signed inputs on unequal scales (one column constant) and a teacher's labels."""
    X = rng.standard_normal((m, LAYERS[0])) * np.logspace(-1, 1, LAYERS[0])
    X[:, 2] = 0.7
    y = np.argmax(X @ rng.standard_normal((LAYERS[0], LAYERS[-1])), axis=1)
    return X, y


# ------------------------------------------------------------ functions


def reference_power(X: np.ndarray, p: float) -> np.ndarray:
    """sign(x) |x|^p entry by entry, in Python floats."""
    out = np.empty(X.shape)
    for index, x in np.ndenumerate(X):
        out[index] = math.copysign(abs(float(x)) ** p, float(x))
    return out


def reference_unit_rows(X: np.ndarray) -> np.ndarray:
    """Each row over its exactly summed Euclidean norm (zero rows kept)."""
    out = np.array(X, dtype=np.float64)
    for i, row in enumerate(out):
        norm = math.sqrt(math.fsum(float(v) ** 2 for v in row))
        if norm > 0:
            out[i] = row / norm
    return out


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-15), (np.float32, 1e-6)])
@pytest.mark.parametrize("p", [0.5, 1.7])
def test_power_normalize_matches_reference(rng, dtype, rtol, p):
    X = (rng.standard_normal((7, 5)) * 3).astype(dtype)
    X[0, :2] = 0.0
    X[1, 0] = -0.0
    before = X.copy()
    out = power_normalize(X, p)
    assert out.dtype == dtype and out.shape == X.shape
    np.testing.assert_array_equal(X, before)  # not modified
    np.testing.assert_allclose(out, reference_power(X, p), rtol=rtol, atol=0)
    assert np.all(np.sign(out) == np.sign(X))
    assert power_normalize(X, p, out=X) is X  # in place
    np.testing.assert_array_equal(X, out)


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 4e-16), (np.float32, 2e-7)])
def test_normalize_rows_matches_reference(rng, dtype, rtol):
    X = rng.standard_normal((MOMENT_BLOCK + 5, 6)) * 10.0 ** rng.integers(-3, 4, (1, 6))
    X = X.astype(dtype)
    X[3] = 0.0  # an all-zero row stays zero
    out = normalize_rows(X)
    assert out.dtype == dtype
    expected = reference_unit_rows(X)
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol)
    assert not out[3].any()
    norms = np.linalg.norm(np.delete(out, 3, axis=0).astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=4 * rtol)
    # A row's result does not depend on the rows around it (blocks of rows).
    np.testing.assert_array_equal(normalize_rows(X[MOMENT_BLOCK - 2 :]), out[MOMENT_BLOCK - 2 :])


def test_spectral_scaling_rescales_each_principal_direction(rng):
    A = rng.standard_normal((400, 6)) @ rng.standard_normal((6, 6))
    A[:, 5] = A[:, 0]  # rank 5: one direction without variance
    A -= A.mean(axis=0)
    covariance = A.T @ A / A.shape[0]
    for q in (0.0, 0.5, 1.0):
        P = spectral_scaling(covariance, q)
        assert P.dtype == np.float64 and P.shape == (6, 6)
        np.testing.assert_allclose(P, P.T, atol=1e-13)
        # The transformed inputs' covariance has each eigenvalue v scaled by
        # (v / mean v)^q, along the same directions.
        v, V = np.linalg.eigh(covariance)
        v = np.where(v > 1e-12 * v.max(), v, 0.0)
        want = (V * (v * (v / v.mean()) ** q)) @ V.T
        got = P @ covariance @ P
        np.testing.assert_allclose(got, want, atol=1e-11 * np.abs(want).max())
    np.testing.assert_allclose(spectral_scaling(covariance, 0.0) @ A.T, A.T, atol=1e-12)
    null = np.array([1.0, 0, 0, 0, 0, -1.0]) / math.sqrt(2)  # the constant direction
    np.testing.assert_allclose(spectral_scaling(covariance, 0.5) @ null, 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="every centred input is 0"):
        spectral_scaling(np.zeros((3, 3)), 0.5)


# -------------------------------------------------------------- network


def by_hand(X: np.ndarray, net: ADMMNetwork) -> np.ndarray:
    """The inputs a network with the transforms trains on, computed outside
    it: the power and the unit rows by the references, then the network's own
    mean and matrix (checked against a reference below)."""
    T = reference_unit_rows(reference_power(X.astype(net.dtype), 0.5)).astype(net.dtype)
    T = T - net.input_mean_.astype(net.dtype)
    return T @ net.input_basis_.astype(net.dtype)


@pytest.mark.parametrize(
    ("dtype", "rtol", "input_tol"), [("float64", 1e-9, 1e-13), ("float32", 2e-3, 1e-6)]
)
def test_options_train_on_the_transformed_inputs(rng, dtype, rtol, input_tol):
    X, y = data(rng)
    X_val, _ = data(rng, 30)
    net = ADMMNetwork(LAYERS, dtype=dtype, **OPTIONS, **TRANSFORMS).fit(X, y, iterations=6)
    # The mean and matrix are those of the transformed training inputs (in
    # float32 within the rounding of the inputs' float32 transforms).
    T = reference_unit_rows(reference_power(X, 0.5))
    mean = T.mean(axis=0)
    np.testing.assert_allclose(net.input_mean_, mean, rtol=0, atol=input_tol)
    covariance = (T - mean).T @ (T - mean) / T.shape[0]
    expected = spectral_scaling(covariance, 0.5)
    np.testing.assert_allclose(
        net.input_basis_, expected, rtol=0, atol=input_tol * np.abs(expected).max()
    )
    # Training on them by hand gives the same network.
    plain = ADMMNetwork(LAYERS, dtype=dtype, **OPTIONS).fit(by_hand(X, net), y, iterations=6)
    for w, v in zip(net.weights, plain.weights, strict=True):
        np.testing.assert_allclose(w, v, rtol=rtol, atol=rtol * np.abs(v).max())
    want = plain.decision_function(by_hand(X_val, net))
    got = net.decision_function(X_val)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    np.testing.assert_allclose(
        net.hidden_features(X_val), plain.hidden_features(by_hand(X_val, net)), atol=rtol
    )
    net.refit()
    plain.refit()
    for w, v in zip(net.weights, plain.weights, strict=True):
        np.testing.assert_allclose(w, v, rtol=rtol, atol=rtol * np.abs(v).max())


@pytest.mark.parametrize(
    "options",
    [{"input_power": 0.5}, {"normalize_inputs": True}, {"center": True, "spectral_power": 1.0}],
)
def test_each_option_alone_changes_the_result(rng, options):
    X, y = data(rng)
    plain = ADMMNetwork(LAYERS, **OPTIONS, center=True).fit(X, y, iterations=3)
    net = ADMMNetwork(LAYERS, **OPTIONS, **{"center": True, **options}).fit(X, y, iterations=3)
    assert not np.allclose(net.weights[0], plain.weights[0], rtol=1e-3)
    assert (net.input_basis_ is not None) == ("spectral_power" in options)


def test_user_data_is_not_modified(rng):
    X, y = data(rng)
    before = X.copy()
    net = ADMMNetwork(LAYERS, **OPTIONS, **TRANSFORMS).fit(X, y, iterations=2)
    net.predict(X)
    np.testing.assert_array_equal(X, before)


def test_save_load_state_and_resume(rng, tmp_path):
    X, y = data(rng)
    full = ADMMNetwork(LAYERS, **OPTIONS, **TRANSFORMS).fit(X, y, iterations=6)
    part = ADMMNetwork(LAYERS, **OPTIONS, **TRANSFORMS).fit(X, y, iterations=2)
    state = {k: [np.array(v) for v in s] if isinstance(s, list) else s
             for k, s in part.get_state().items()}  # fmt: skip
    assert state["input_basis"].shape == (LAYERS[0], LAYERS[0])
    resumed = ADMMNetwork(LAYERS, **OPTIONS, **TRANSFORMS)
    resumed.set_state(state, X, y)
    resumed.fit(X, y, iterations=6, warm_start=True)
    for w, f in zip(resumed.weights, full.weights, strict=True):
        np.testing.assert_array_equal(w, f)
    part.fit(X, y, iterations=6, warm_start=True)  # keeps its mean and matrix
    np.testing.assert_array_equal(part.weights[0], full.weights[0])
    full.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert int(f["format_version"]) == 5
        assert float(f["input_power"]) == 0.5 and bool(f["normalize_inputs"])
        np.testing.assert_array_equal(f["input_basis"], full.input_basis_)
    back = admm.load(tmp_path / "m.npz")
    for name in ("input_power", "normalize_inputs", "spectral_power", "center"):
        assert getattr(back.config, name) == getattr(full.config, name), name
    np.testing.assert_array_equal(back.decision_function(X), full.decision_function(X))
    # A model without the transforms is still the version 4 file of before.
    ADMMNetwork(LAYERS, **OPTIONS).fit(X, y, iterations=1).save(tmp_path / "old.npz")
    with np.load(tmp_path / "old.npz") as f:
        assert int(f["format_version"]) == 4
        assert not {"input_power", "normalize_inputs", "spectral_power", "input_basis"} & set(f)


def test_state_and_model_without_the_matrix_are_refused(rng, tmp_path):
    X, y = data(rng)
    net = ADMMNetwork(LAYERS, **OPTIONS, **TRANSFORMS).fit(X, y, iterations=1)
    state = dict(net.get_state())
    state["input_basis"] = None
    with pytest.raises(ValueError, match="needs the state's input_basis of shape"):
        ADMMNetwork(LAYERS, **OPTIONS, **TRANSFORMS).set_state(state, X, y)
    plain = dict(ADMMNetwork(LAYERS, **OPTIONS, center=True).fit(X, y, iterations=1).get_state())
    plain["input_basis"] = net.input_basis_
    with pytest.raises(ValueError, match="this network has spectral_power 0"):
        ADMMNetwork(LAYERS, **OPTIONS, center=True).set_state(plain, X, y)
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files if k not in ("input_basis", "sha256")}
    from admm.storage import arrays_sha256

    arrays["sha256"] = np.array(arrays_sha256(arrays))
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match="spectral_power needs an input_basis"):
        admm.load(tmp_path / "cut.npz")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spectral_power": 0.5}, "spectral_power 0.5 needs center"),
        ({"spectral_power": -1.0, "center": True}, "spectral_power must be a non-negative"),
        ({"input_power": 0.0}, "input_power must be a positive number"),
        ({"input_power": float("nan")}, "input_power must be a positive number"),
        ({"normalize_inputs": 1}, "normalize_inputs must be True or False"),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ADMMNetwork(LAYERS, **kwargs)


def test_inputs_that_never_vary_are_named(rng):
    X = np.ones((20, LAYERS[0]))
    net = ADMMNetwork(LAYERS, center=True, spectral_power=0.5)
    with pytest.raises(ValueError, match="spectral_power needs training inputs that vary"):
        net.fit(X, rng.integers(0, 3, 20), iterations=1)


def test_program_flags_and_header(tmp_path):
    from admm.train import parse_args
    from admm.train.args import UsageError

    flags = ["--input-power", "0.5", "--normalize-inputs", "--spectral-power", "0.5"]
    with pytest.raises(UsageError, match=r"--spectral-power 0\.5 needs --center"):
        parse_args(flags)
    args = parse_args([*flags, "--center"])
    assert (args.input_power, args.normalize_inputs, args.spectral_power) == (0.5, True, 0.5)
    config = admm.config.Config(input_power=0.5, normalize_inputs=True, center=True,
                                spectral_power=0.5)  # fmt: skip
    header = " ".join(config.describe(3))
    assert "input power 0.5" in header and "unit-norm inputs" in header
    assert "spectral power 0.5" in header
    assert "input power" not in " ".join(admm.config.Config().describe(3))


# ------------------------------------------------------------------ MPI

PROGRAM = Path(__file__).resolve().parent / "mpi_programs" / "fit_inputs.py"
M, ITERATIONS = 150, 5


@pytest.fixture(scope="module")
def mpi_runs(tmp_path_factory):
    """``fit_inputs.py`` on 1, 2 and 3 ranks, with and without deterministic."""
    return program_runs(tmp_path_factory, PROGRAM, str(M), str(ITERATIONS))


def load_program():
    """``fit_inputs.py`` as a module, for its constants."""
    return load_mpi_program(PROGRAM)


@pytest.mark.mpi
@pytest.mark.parametrize("n", [1, 2, 3])
def test_mpi_matches_one_process(mpi_runs, n):
    # The mean and the matrix are reduced over all ranks' samples: every rank
    # holds the same ones, those of one process on all the data.
    program = load_program()
    result = mpi_runs[n, 0]
    if n > 1:
        assert len(set(result["counts"].tolist())) > 1  # uneven blocks
    one = ADMMNetwork(program.LAYERS, **program.OPTIONS)
    one.fit(result["X"], result["y"], iterations=ITERATIONS)
    for r in range(n):
        np.testing.assert_array_equal(result[f"input_basis_rank{r}"], result["input_basis_rank0"])
        np.testing.assert_array_equal(result[f"input_mean_rank{r}"], result["input_mean_rank0"])
        for l in range(len(program.LAYERS) - 1):
            np.testing.assert_array_equal(result[f"final_{l}_rank{r}"], result[f"final_{l}_rank0"])
    np.testing.assert_allclose(result["input_mean_rank0"], one.input_mean_, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(result["input_basis_rank0"], one.input_basis_, atol=1e-11)
    for l, w in enumerate(one.weights):
        np.testing.assert_allclose(
            result[f"final_{l}_rank0"], w, rtol=1e-9, atol=1e-9 * np.abs(w).max()
        )
    want = one.decision_function(result["X"])
    np.testing.assert_allclose(result["scores"], want, rtol=1e-8, atol=1e-8 * np.abs(want).max())


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3])
def test_mpi_deterministic_is_rank_independent(mpi_runs, n):
    one, many = mpi_runs[1, 1], mpi_runs[n, 1]
    for key in ("input_mean_rank0", "input_basis_rank0", "scores"):
        np.testing.assert_array_equal(many[key], one[key], err_msg=key)
    for l in range(2):
        for r in range(n):
            np.testing.assert_array_equal(many[f"final_{l}_rank{r}"], one[f"final_{l}_rank0"])


FLAGS = ("--input-power", "0.5", "--normalize-inputs", "--center", "--spectral-power", "0.5")


@pytest.mark.mpi
def test_program_names_inputs_that_never_vary(tmp_path):
    # Every rank finds it (the covariance is reduced): one message, status 2, no hang.
    from test_cli import make_npz, train

    np.savez(tmp_path / "const.npz", X_train=np.ones((40, 16)), y_train=np.arange(40) % 3)
    proc = train(2, tmp_path / "const.npz", "--layers", "16,8,3", *FLAGS, "--iterations", "2",
                 check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "admm: error: spectral_power needs training inputs that vary" in proc.stderr
    assert proc.stderr.count("admm: error") == 1
    # On data that are not images: the transforms need none.
    proc = train(2, make_npz(tmp_path / "d.npz"), *FLAGS, "--iterations", "3")
    assert "input power 0.5, unit-norm inputs, spectral power 0.5" in proc.stdout


def test_memory_model_counts_the_copy_and_the_matrix(rng):
    from admm.metrics import memory_breakdown

    X, y = data(rng)
    m, n0 = X.shape
    held = ADMMNetwork(LAYERS, **TRANSFORMS).fit(X, y, iterations=1).allocated_bytes()
    parts = memory_breakdown(LAYERS, m, transform=True, spectral=True)
    # The caller's block, the network's transformed copy, the float64 matrix.
    assert parts["input"] == 2 * held["input"] + n0 * n0 * 8
    assert memory_breakdown(LAYERS, m, transform=True)["input"] == 2 * held["input"]
    assert parts["transient"] >= 6 * n0 * n0 * 8
    plain = memory_breakdown(LAYERS, m)
    assert plain["input"] == held["input"] and parts.keys() == plain.keys()


@pytest.mark.mpi
def test_program_resumes_with_the_saved_matrix(tmp_path):
    # The checkpoint keeps input_basis: a resumed run continues bit for bit.
    from test_cli import make_npz, train

    data = make_npz(tmp_path / "d.npz")
    common = (*FLAGS, "--deterministic", "--block-size", "8")
    train(2, data, *common, "--iterations", "6", "--save", str(tmp_path / "full.npz"))
    train(2, data, *common, "--iterations", "3", "--checkpoint", str(tmp_path / "part"))
    proc = train(2, data, *common, "--iterations", "6", "--resume", str(tmp_path / "part"),
                 "--save", str(tmp_path / "rest.npz"))  # fmt: skip
    assert "at iteration 3" in proc.stdout
    with np.load(tmp_path / "full.npz") as a, np.load(tmp_path / "rest.npz") as b:
        keys = [k for k in a.files if k.startswith("W")] + ["input_mean", "input_basis"]
        assert len(keys) >= 4
        for key in keys:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_overflowing_powers_are_named(rng):
    X, y = data(rng)
    X[5, 3] = 1e4
    with pytest.raises(ValueError, match="input_power 10 overflows an input value of X"):
        ADMMNetwork(LAYERS, dtype="float32", input_power=10.0).fit(X, y, iterations=1)
    covariance = np.diag([1.0, 1e-300, 2.0])
    with pytest.raises(ValueError, match="spectral_power 10000 overflows"):
        spectral_scaling(covariance, 1e4)
    # Integers are powered and normalised as floats.
    np.testing.assert_array_equal(power_normalize(np.array([[4, -9]]), 0.5), [[2.0, -3.0]])
    np.testing.assert_array_equal(normalize_rows(np.array([[3, 4], [0, 0]])), [[0.6, 0.8], [0, 0]])
