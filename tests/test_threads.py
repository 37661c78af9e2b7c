"""The entry-wise kernels on several threads (admm._threads): same bits on any count.

Every kernel is run through :func:`admm._threads.rowwise` on 1, 2 and 3
threads and compared bit for bit: the updated arrays, and the sums, which
must be the chunks' sums added in chunk order (recomputed here serially from
direct kernel calls). Shapes include arrays that are split into chunks of
equal and unequal row counts, and tiny ones that are not split; a smaller
``MIN_CHUNK`` makes small arrays split into many chunks. A whole ``fit`` must
give the same weights and history on 1 and 2 threads.
"""

from __future__ import annotations

import itertools
import threading

import admm
import numpy as np
import pytest
from admm import ADMMNetwork, _cores, _threads
from admm._threads import MAX_CHUNKS, MIN_CHUNK, parallel_map, row_chunks, rowwise

from admm_core import (
    apply_activation,
    hidden_z_update,
    output_hinge_update,
    output_squared_update,
)

DTYPES = [np.float32, np.float64]
ACTIVATIONS = ["hardsigmoid", "relu"]
THREADS = [1, 2, 3]


@pytest.fixture
def threads():
    """A setter of the thread count, restored after the test."""
    previous = admm.set_num_threads(None)
    admm.set_num_threads(previous)
    yield admm.set_num_threads
    admm.set_num_threads(previous)


#: (rows, columns, MIN_CHUNK): split evenly, unevenly, or not at all.
SHAPES = [
    (1001, 300, MIN_CHUNK),  # 300,300 entries: 4 chunks of 250 and 251 rows
    (600, 700, MIN_CHUNK),  # 4 chunks of 150 rows
    (257, 500, MIN_CHUNK),  # under 2 * MIN_CHUNK: one chunk
    (3, 5, MIN_CHUNK),  # tiny
    (1, 1, MIN_CHUNK),
    (0, 4, MIN_CHUNK),  # no rows
    (37, 11, 64),  # 407 entries at 64 per chunk: 4 chunks of 9 or 10 rows
    (1000, 13, 16),  # many chunks: MAX_CHUNKS of 15 or 16 rows
    (5, 3, 1),  # more chunks asked than rows: 4 chunks of one or two rows
]


def hidden_arrays(rng, rows, cols, dtype):
    z = (rng.standard_normal((rows, cols)) * 1.5 + 0.3).astype(dtype)
    a = rng.uniform(-0.5, 1.5, (rows, cols)).astype(dtype)
    return z, a


def serial_sums(kernel, arrays, args, rows_per_chunk):
    """The chunks' sums by direct kernel calls, added in chunk order, on copies."""
    arrays = [x.copy() for x in arrays]
    total = None
    for chunk in rows_per_chunk:
        result = np.asarray(kernel(*(x[chunk] for x in arrays), *args), dtype=np.float64)
        total = result if total is None else total + result
    return arrays, total


def run_on_threads(threads, kernel, make, args, n_sums, blocks=None):
    """``rowwise`` of ``kernel`` on fresh arrays from ``make()`` for each thread count."""
    outcomes = []
    for n in THREADS:
        threads(n)
        arrays = make()
        sums = rowwise(kernel, arrays, *args, blocks=blocks, n_sums=n_sums)
        outcomes.append((arrays, sums))
    return outcomes


def assert_identical(outcomes):
    (arrays_1, sums_1), *others = outcomes
    for n, (arrays, sums) in zip(THREADS[1:], others, strict=True):
        for i, (x, x1) in enumerate(zip(arrays, arrays_1, strict=True)):
            np.testing.assert_array_equal(x, x1, err_msg=f"array {i}, {n} threads")
        np.testing.assert_array_equal(sums, sums_1, err_msg=f"sums, {n} threads")


# ---------------------------------------------------------------------------
# chunks


@pytest.mark.parametrize(
    ("rows", "cols"),
    [(0, 5), (1, 1), (7, 3), (256, 500), (1001, 300), (60_000, 500), (60_000, 10)],
)
def test_row_chunks_cover_the_rows_in_order(rows, cols):
    chunks = row_chunks(rows, cols)
    assert chunks[0].start == 0 and chunks[-1].stop == rows
    assert all(a.stop == b.start for a, b in itertools.pairwise(chunks))
    count = len(chunks)
    assert count & (count - 1) == 0 and count <= MAX_CHUNKS  # a power of two
    if rows * cols < 2 * MIN_CHUNK:
        assert count == 1
    else:
        assert count > 1
        assert all(c.stop > c.start for c in chunks)
        sizes = {c.stop - c.start for c in chunks}
        assert max(sizes) - min(sizes) <= 1
        assert min(sizes) * cols >= MIN_CHUNK


def test_deterministic_blocks_are_not_split():
    """256-sample blocks of the published network are one chunk each, so the
    sums of ``deterministic=True`` are one kernel call per block, as before."""
    for width in (500, 10):
        assert len(row_chunks(256, width)) == 1
    assert len(row_chunks(60_000, 500)) == MAX_CHUNKS


# ---------------------------------------------------------------------------
# the thread pool


def test_chunks_run_concurrently(threads, monkeypatch):
    """The first two chunks wait for each other: they pass only if two
    threads run them at once (one thread alone breaks the barrier)."""
    threads(2)
    monkeypatch.setattr(_threads, "MIN_CHUNK", 1)  # 8 rows: 8 chunks of one row
    barrier = threading.Barrier(2, timeout=10)
    seen = set()

    def kernel(x):
        seen.add(threading.get_ident())
        if x[0, 0] < 2:
            barrier.wait()
        return (float(x.sum()),)

    x = np.repeat(np.arange(8.0)[:, None], 3, axis=1)
    sums = rowwise(kernel, (x,), n_sums=1)
    assert sums[0, 0] == x.sum()
    assert len(seen) == 2


def test_one_thread_runs_on_the_caller(threads):
    threads(1)
    seen = set()
    parallel_map(lambda i: seen.add(threading.get_ident()), list(range(20)))
    assert seen == {threading.get_ident()}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_errors_are_raised_after_every_chunk_ended(threads, n):
    threads(n)
    running = []

    def fn(i):
        running.append(i)
        if i == 5:
            raise ZeroDivisionError("chunk 5")
        return i

    with pytest.raises(ZeroDivisionError, match="chunk 5"):
        parallel_map(fn, list(range(40)))
    assert 5 in running
    assert parallel_map(fn, [1, 2, 3]) == [1, 2, 3]


# ---------------------------------------------------------------------------
# the kernels: same bits on 1, 2 and 3 threads


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "cols", "min_chunk"), SHAPES)
def test_hidden_z_update(rng, threads, monkeypatch, activation, dtype, rows, cols, min_chunk):
    monkeypatch.setattr(_threads, "MIN_CHUNK", min_chunk)
    z0, a = hidden_arrays(rng, rows, cols, dtype)
    args = (20.0, 0.2, activation)
    outcomes = run_on_threads(
        threads, hidden_z_update, lambda: (z0.copy(), a.copy()), args, n_sums=2
    )
    assert_identical(outcomes)
    (z, _), sums = outcomes[0]
    # Entry-wise: the same z as one call on the whole array.
    whole = z0.copy()
    act, pen = hidden_z_update(whole, a, *args)
    np.testing.assert_array_equal(z, whole)
    # The sums: the chunks' sums in chunk order, close to the single call's.
    chunks = row_chunks(rows, cols)
    _, expected = serial_sums(hidden_z_update, (z0, a), args, chunks)
    np.testing.assert_array_equal(sums[0], expected)
    np.testing.assert_allclose(sums[0], [act, pen], rtol=1e-12)
    if rows * cols >= 2 * min_chunk and rows > 1:
        assert len(chunks) > 1  # the split path was taken


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "cols", "min_chunk"), SHAPES)
@pytest.mark.parametrize("in_place", [False, True])
def test_apply_activation(
    rng, threads, monkeypatch, activation, dtype, rows, cols, min_chunk, in_place
):
    monkeypatch.setattr(_threads, "MIN_CHUNK", min_chunk)
    z, _ = hidden_arrays(rng, rows, cols, dtype)

    def make():
        source = z.copy()
        return (source, source) if in_place else (source, np.full_like(z, np.nan))

    outcomes = run_on_threads(threads, apply_activation, make, (20.0, activation), n_sums=0)
    assert_identical(outcomes)
    (_, out), sums = outcomes[0]
    assert sums.shape == (1, 0)
    np.testing.assert_array_equal(out, apply_activation(z, np.empty_like(z), 20.0, activation))


@pytest.mark.parametrize("loss", ["hinge", "squared"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "cols", "min_chunk"), [*SHAPES, (20_000, 10, MIN_CHUNK)])
@pytest.mark.parametrize("update_multiplier", [False, True])
def test_output_update(
    rng, threads, monkeypatch, loss, dtype, rows, cols, min_chunk, update_multiplier
):
    monkeypatch.setattr(_threads, "MIN_CHUNK", min_chunk)
    z0 = rng.uniform(-1.0, 2.0, (rows, cols)).astype(dtype)
    lam0 = rng.standard_normal((rows, cols)).astype(dtype)
    if loss == "hinge":
        kernel = output_hinge_update
        targets = rng.integers(0, cols, rows)
    else:
        kernel = output_squared_update
        targets = rng.random((rows, cols)).astype(dtype)
    args = (0.2, update_multiplier)
    outcomes = run_on_threads(
        threads, kernel, lambda: (z0.copy(), lam0.copy(), targets), args, n_sums=3
    )
    assert_identical(outcomes)
    (arrays, sums) = outcomes[0]
    whole_z, whole_lam = z0.copy(), lam0.copy()
    single = kernel(whole_z, whole_lam, targets, *args)
    np.testing.assert_array_equal(arrays[0], whole_z)
    np.testing.assert_array_equal(arrays[1], whole_lam)
    _, expected = serial_sums(kernel, (z0, lam0, targets), args, row_chunks(rows, cols))
    np.testing.assert_array_equal(sums[0], expected)
    np.testing.assert_allclose(sums[0], single, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("min_chunk", [MIN_CHUNK, 512])
def test_blocks_are_summed_separately(rng, threads, monkeypatch, dtype, min_chunk):
    """Per-block sums (``deterministic=True``): each block split on its own,
    the same on any number of threads, and one kernel call per block when the
    block is small (the sums of deterministic mode before threading)."""
    monkeypatch.setattr(_threads, "MIN_CHUNK", min_chunk)
    rows, cols = 1000, 300
    z0, a = hidden_arrays(rng, rows, cols, dtype)
    blocks = [slice(0, 256), slice(256, 512), slice(512, 768), slice(768, 1000)]
    args = (10.0, 1.0, "hardsigmoid")
    outcomes = run_on_threads(
        threads, hidden_z_update, lambda: (z0.copy(), a.copy()), args, n_sums=2, blocks=blocks
    )
    assert_identical(outcomes)
    (z, _), sums = outcomes[0]
    assert sums.shape == (len(blocks), 2)
    for i, block in enumerate(blocks):
        n = block.stop - block.start
        chunks = row_chunks(n, cols)
        assert (len(chunks) == 1) == (min_chunk == MIN_CHUNK)
        copies, expected = serial_sums(hidden_z_update, (z0[block], a[block]), args, chunks)
        np.testing.assert_array_equal(sums[i], expected)
        np.testing.assert_array_equal(z[block], copies[0])
    assert rowwise(hidden_z_update, (z0, a), *args, blocks=[], n_sums=2).shape == (0, 2)


def test_fortran_arrays_are_not_split(rng, threads):
    threads(2)
    z0, a = hidden_arrays(rng, 1000, 300, np.float64)
    z0, a = np.asfortranarray(z0), np.asfortranarray(a)
    z = z0.copy(order="F")
    sums = rowwise(hidden_z_update, (z, a), 20.0, 0.2, "relu", n_sums=2)
    whole = z0.copy(order="F")
    assert tuple(sums[0]) == hidden_z_update(whole, a, 20.0, 0.2, "relu")
    np.testing.assert_array_equal(z, whole)


# ---------------------------------------------------------------------------
# a whole fit


def fit_on(threads, n, layers, X, y, **kwargs):
    threads(n)
    net = ADMMNetwork(layers, beta=0.5, gamma=5.0, warmup=2, seed=4, **kwargs)
    X_val, y_val = X[:50], y[:50]
    net.fit(X, y, iterations=5, X_val=X_val, y_val=y_val)
    history = [{k: v for k, v in r.items() if k != "time_s"} for r in net.history]
    return net.weights, history, net.predict(X)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("activation", "loss", "deterministic", "min_chunk"),
    [
        ("hardsigmoid", "hinge", False, MIN_CHUNK),
        ("relu", "squared", False, 64),
        ("hardsigmoid", "hinge", True, 64),
        ("relu", "hinge", True, MIN_CHUNK),
    ],
)
def test_fit_same_on_one_and_two_threads(
    rng, threads, monkeypatch, dtype, activation, loss, deterministic, min_chunk
):
    monkeypatch.setattr(_threads, "MIN_CHUNK", min_chunk)
    layers = (16, 300, 256, 4)  # at 1,100 samples z_1, z_2 split even at MIN_CHUNK
    m = 1100
    X = rng.random((m, layers[0]))
    y = rng.integers(0, layers[-1], m) if loss == "hinge" else rng.random((m, layers[-1]))
    assert len(row_chunks(m, layers[1])) > 1 and len(row_chunks(m, layers[2])) > 1
    kwargs = dict(activation=activation, loss=loss, dtype=dtype, deterministic=deterministic)
    one = fit_on(threads, 1, layers, X, y, **kwargs)
    two = fit_on(threads, 2, layers, X, y, **kwargs)
    for l, (w1, w2) in enumerate(zip(one[0], two[0], strict=True)):
        np.testing.assert_array_equal(w1, w2, err_msg=f"W_{l + 1}")
    assert one[1] == two[1]
    np.testing.assert_array_equal(one[2], two[2])
    assert np.isfinite(one[1][-1]["objective"])


# ---------------------------------------------------------------------------
# the thread count


def test_set_num_threads(threads):
    threads(3)
    assert admm.get_num_threads() == 3
    assert admm.set_num_threads(1) == 3
    assert admm.get_num_threads() == 1
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="positive integer"):
            admm.set_num_threads(bad)
    assert admm.get_num_threads() == 1


def test_default_thread_count(threads, monkeypatch):
    for name in (_threads.ENV_VAR, *_cores.BLAS_ENV, *_cores.LOCAL_RANKS_ENV):
        monkeypatch.delenv(name, raising=False)
    threads(None)
    monkeypatch.setattr(_cores, "usable_cores", lambda: 8)
    monkeypatch.setattr(_threads, "_blas_threads", lambda: 4)
    assert _threads.default_num_threads() == 4  # the BLAS's count
    assert admm.get_num_threads() == 4
    monkeypatch.setenv("MPI_LOCALNRANKS", "4")  # 4 ranks on 8 cores: 2 each
    assert _threads.default_num_threads() == 2
    monkeypatch.setenv("MPI_LOCALNRANKS", "16")  # more ranks than cores
    assert _threads.default_num_threads() == 1
    monkeypatch.setenv(_threads.ENV_VAR, "3")  # explicit: no cap
    assert _threads.default_num_threads() == 3
    assert admm.get_num_threads() == 4  # decided at first use and kept
    threads(None)
    assert admm.get_num_threads() == 3
    monkeypatch.setenv(_threads.ENV_VAR, "three")
    with pytest.raises(ValueError, match=_threads.ENV_VAR):
        _threads.default_num_threads()
    monkeypatch.delenv(_threads.ENV_VAR)
    monkeypatch.delenv("MPI_LOCALNRANKS")
    monkeypatch.setattr(_threads, "_blas_threads", lambda: None)
    assert _threads.default_num_threads() == 8  # the BLAS would use every core
    monkeypatch.setattr(_cores, "usable_cores", lambda: None)
    assert _threads.default_num_threads() == 1  # nothing known


def test_program_shares_the_cores_among_the_ranks_of_a_node(monkeypatch):
    """What ``python -m admm.train`` does before NumPy loads the BLAS."""
    monkeypatch.setattr(_cores, "usable_cores", lambda: 8)
    env = {"MPI_LOCALNRANKS": "2"}
    assert _cores.share_blas_cores(env) == 4
    assert env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "4"
    env = {"OMPI_COMM_WORLD_LOCAL_SIZE": "16"}  # more ranks than cores
    assert _cores.share_blas_cores(env) == 1 and env["OPENBLAS_NUM_THREADS"] == "1"
    for chosen in _cores.BLAS_ENV:  # the user's choice stands
        env = {"MPI_LOCALNRANKS": "2", chosen: "2"}
        assert _cores.share_blas_cores(env) is None and env == {
            "MPI_LOCALNRANKS": "2",
            chosen: "2",
        }
    env = {}  # not under mpiexec (or one rank): the BLAS's own default
    assert _cores.share_blas_cores(env) is None and env == {}
    monkeypatch.setattr(_cores, "usable_cores", lambda: None)
    assert _cores.share_blas_cores({"MPI_LOCALNRANKS": "2"}) is None


def test_program_lets_idle_blas_threads_sleep_soon():
    """``python -m admm.train`` shortens OpenBLAS's spin unless the user set it."""
    env = {}
    assert _cores.short_blas_spin(env) is True
    assert env == {"OPENBLAS_THREAD_TIMEOUT": str(_cores.SHORT_BLAS_SPIN)}
    for chosen in _cores.BLAS_SPIN_ENV:
        env = {chosen: "28"}
        assert _cores.short_blas_spin(env) is False and env == {chosen: "28"}
    env = {"OPENBLAS_THREAD_TIMEOUT": " "}  # blank counts as unset
    assert _cores.short_blas_spin(env) is True and env["OPENBLAS_THREAD_TIMEOUT"] == "20"


def test_program_keeps_the_mmap_threshold_unless_the_user_set_it():
    """``python -m admm.train`` fixes glibc's mmap threshold (freed large
    temporaries go back to the system) unless ``MALLOC_MMAP_THRESHOLD_`` is set."""
    assert _cores.fixed_mmap_threshold({_cores.MMAP_THRESHOLD_ENV: "65536"}) is False
    import ctypes

    has_mallopt = hasattr(ctypes.CDLL(None), "mallopt")
    assert _cores.fixed_mmap_threshold({}) is has_mallopt  # no glibc: nothing to set


def test_blas_threads_from_environment(monkeypatch):
    """Without threadpoolctl the BLAS's own variables count, in its order."""
    import builtins

    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    for name in _threads._BLAS_ENV:
        monkeypatch.delenv(name, raising=False)
    assert _threads._blas_threads() is None
    monkeypatch.setenv("OMP_NUM_THREADS", "6,2")
    assert _threads._blas_threads() == 6
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert _threads._blas_threads() == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "")
    assert _threads._blas_threads() == 6


def test_blas_threads_follow_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert _threads._blas_threads() == 1
