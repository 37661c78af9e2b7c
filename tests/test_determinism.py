"""Results independent of the number of ranks, bit for bit (``deterministic=True``).

``mpi_programs/fit_determinism.py`` trains 12-16-8-4 on 300 samples in
blocks of 16 (19 blocks, the last one 12 samples) for 20 iterations. The
block counts per rank are uneven on 2, 3 and 4 ranks (10/9, 7/6/6,
5/5/5/4), and one run gives two of four ranks no block at all. Without
``deterministic`` the same runs differ from one rank count to the next
(``test_allreduce_path_differs``): the summation order changes with the
split and the piecewise z-update amplifies the last-bit differences, so the
bit-for-bit comparisons below are not met by accident.
"""

from __future__ import annotations

from pathlib import Path

import admm
import numpy as np
import pytest
from admm import ADMMNetwork
from admm._blocksum import BlockLayout, TreeSum
from admm._mpi import Communicator
from admm.data import block_range
from mpirun import run_mpi

PROGRAM = Path(__file__).resolve().parent / "mpi_programs" / "fit_determinism.py"
M = 300
ITERATIONS = 20
BLOCK = 16  # as in the program
RANKS = (1, 2, 3, 4)
DTYPES = ("float64", "float32")
LAYERS = 3  # weight layers of the program's network
TIMEOUT = 60

mpi = pytest.mark.mpi


def run(tmp: Path, ranks: int, deterministic: bool, split: str = "even") -> dict:
    """Both dtypes' results of one run, keyed by dtype, each with ``counts``."""
    tmp.mkdir(parents=True, exist_ok=True)
    dtypes = ",".join(DTYPES)
    args = [
        str(PROGRAM),
        str(tmp),
        str(M),
        str(ITERATIONS),
        dtypes,
        str(int(deterministic)),
        split,
    ]
    run_mpi(ranks, args, timeout=TIMEOUT)
    with np.load(tmp / "result.npz") as f:
        return {
            dtype: {k[len(dtype) + 1 :]: f[k] for k in f.files if k.startswith(dtype)}
            | {"counts": f["counts"]}
            for dtype in DTYPES
        }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Deterministic runs on 1-4 ranks in both precisions, keyed (dtype, ranks)."""
    results = {}
    for n in RANKS:
        both = run(tmp_path_factory.mktemp(f"det{n}"), n, True)
        results.update({(dtype, n): both[dtype] for dtype in DTYPES})
    return results


def weights(result: dict, rank: int = 0) -> list[np.ndarray]:
    return [result[f"w{l}_rank{rank}"] for l in range(LAYERS)]


@mpi
@pytest.mark.parametrize("dtype", DTYPES)
def test_splits_are_uneven_block_counts(runs, dtype):
    blocks = {n: -(-runs[dtype, n]["counts"] // BLOCK) for n in RANKS}
    assert blocks[2].tolist() == [10, 9]
    assert blocks[3].tolist() == [7, 6, 6]
    assert blocks[4].tolist() == [5, 5, 5, 4]
    assert runs[dtype, 4]["counts"].tolist() == [80, 80, 80, 60]  # last block: 12 samples


@mpi
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", RANKS[1:])
def test_weights_bit_identical_for_every_rank_count(runs, dtype, n):
    serial, result = runs[dtype, 1], runs[dtype, n]
    assert weights(serial)[0].dtype == np.dtype(dtype)
    for r in range(n):
        for l, (w, w1) in enumerate(zip(weights(result, r), weights(serial), strict=True)):
            assert np.array_equal(w, w1), f"W_{l + 1} on rank {r} of {n} differs from 1 rank"


@mpi
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", RANKS[1:])
def test_history_bit_identical_for_every_rank_count(runs, dtype, n):
    serial, result = runs[dtype, 1], runs[dtype, n]
    assert len(result["objective"]) == ITERATIONS
    for key in ("objective", "residual", "val_accuracy", "rho"):
        assert np.array_equal(result[key], serial[key]), key


@mpi
def test_allreduce_path_differs(tmp_path):
    # The same runs without deterministic: 1 and 3 ranks disagree, in both
    # precisions, so the bit-identical results above are the tree's doing.
    plain = {n: run(tmp_path / str(n), n, False) for n in (1, 3)}
    for dtype in DTYPES:
        one, three = plain[1][dtype], plain[3][dtype]
        assert not all(
            np.array_equal(a, b) for a, b in zip(weights(one), weights(three), strict=True)
        ), dtype
        assert not np.array_equal(one["objective"], three["objective"]), dtype


@mpi
def test_ranks_without_blocks(tmp_path, runs):
    # Ranks 0 and 2 hold nothing: the root of the tree lives on rank 1.
    both = run(tmp_path, 4, True, split="0,7,0,12")
    for dtype in DTYPES:
        result, serial = both[dtype], runs[dtype, 1]
        assert result["counts"].tolist() == [0, 112, 0, 188]
        for r in range(4):
            for w, w1 in zip(weights(result, r), weights(serial), strict=True):
                assert np.array_equal(w, w1), (dtype, r)
        assert np.array_equal(result["objective"], serial["objective"]), dtype


@mpi
def test_split_not_in_whole_blocks_is_refused(tmp_path):
    proc = run_mpi(
        2,
        [str(PROGRAM), str(tmp_path), str(M), "2", "float64", "1", "rows:150,150"],
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode != 0
    assert "rank 0 holds global samples 0..149" in proc.stderr
    assert "whole blocks of block_size=16" in proc.stderr


# ------------------------------------------------------- in-process checks


def reference_tree(values: list[float]) -> float:
    """The fixed tree of admm._blocksum over block values, written out."""
    n = len(values)
    levels = max(n - 1, 0).bit_length()

    def node(k: int, j: int) -> np.float32:
        if k == 0:
            return np.float32(values[j])
        left = node(k - 1, 2 * j)
        if (2 * j + 1) << (k - 1) >= n:
            return left
        return np.float32(left + node(k - 1, 2 * j + 1))

    return node(levels, 0)


@pytest.mark.parametrize("n_blocks", [1, 2, 3, 5, 8, 13])
def test_tree_sum_follows_the_fixed_tree(n_blocks):
    # float32 values of very different sizes, so that another order rounds
    # differently: the tree sum must equal the written-out tree exactly.
    rng = np.random.default_rng(n_blocks)
    values = (rng.standard_normal(n_blocks) * 10.0 ** rng.integers(-6, 7, n_blocks)).astype(
        np.float32
    )
    layout = BlockLayout([n_blocks * 4], rank=0, block_size=4)
    assert layout.n_blocks == n_blocks and layout.misaligned() is None
    out = np.empty(1, np.float32)
    TreeSum(layout, Communicator())(lambda b, buf: buf.fill(values[b]), out)
    assert out[0] == reference_tree(list(values))


def test_tree_sum_is_not_left_to_right():
    # float32: left to right, 1e8 + 1 rounds to 1e8 and the sum ends at 1;
    # the tree adds (1e8 + 1) + (-1e8 + 1) = 1e8 - 1e8 = 0.
    values = np.array([1e8, 1.0, -1e8, 1.0], np.float32)
    out = np.empty(1, np.float32)
    tree = TreeSum(BlockLayout([4], rank=0, block_size=1), Communicator())
    tree(lambda b, buf: buf.fill(values[b]), out)
    assert out[0] == 0.0 == reference_tree(list(values))
    assert ((values[0] + values[1]) + values[2]) + values[3] == 1.0


def test_layout_refuses_splits_that_cut_a_block():
    assert BlockLayout([32, 32, 20], rank=1, block_size=16).misaligned() is None
    assert BlockLayout([0, 48, 0, 4], rank=0, block_size=16).misaligned() is None
    message = BlockLayout([20, 44], rank=0, block_size=16).misaligned()
    assert message is not None and "rank 0 holds global samples 0..19" in message
    message = BlockLayout([32, 20, 12], rank=2, block_size=16).misaligned()
    assert message is not None and "rank 1 holds global samples 32..51" in message


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 300])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
def test_block_range_gives_aligned_splits(n, size):
    ranges = [block_range(n, r, size, block=BLOCK) for r in range(size)]
    counts = [stop - start for start, stop in ranges]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(ranges[r][1] == ranges[r + 1][0] for r in range(size - 1))
    assert BlockLayout(counts, rank=0, block_size=BLOCK).misaligned() is None
    blocks = [-(-c // BLOCK) for c in counts]
    assert max(blocks) - min(blocks) <= 1


def test_one_rank_deterministic_matches_its_own_blocks():
    # On one rank the option changes only the summation order: the result
    # stays close to the plain path's.
    rng = np.random.default_rng(0)
    X = rng.random((100, 6))
    y = rng.integers(0, 3, 100)
    nets = [
        ADMMNetwork((6, 5, 3), rho=1e-3, deterministic=d, block_size=8).fit(X, y, 3)
        for d in (False, True)
    ]
    for a, b in zip(nets[0].weights, nets[1].weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_predictions_do_not_depend_on_the_split(dtype):
    """A sample's outputs are the same bit for bit on whichever rank holds its
    block: with ``deterministic`` no BLAS call crosses a block boundary.
    One call on all local rows failed this in float32 (OpenBLAS's Haswell
    kernels round a row by its place in the call)."""
    rng = np.random.default_rng(1)
    X = rng.random((300, 12)).astype(dtype)
    y = rng.integers(0, 4, 300)
    net = ADMMNetwork((12, 16, 8, 4), dtype=dtype, deterministic=True, block_size=BLOCK)
    net.fit(X, y, 2)
    X_test = rng.random((1100, 12)).astype(dtype)  # more than one 1,024-row chunk
    whole = net.decision_function(X_test)
    for start in (BLOCK, 3 * BLOCK, 10 * BLOCK, 64 * BLOCK + BLOCK):
        np.testing.assert_array_equal(net.decision_function(X_test[start:]), whole[start:])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"deterministic": "yes"}, "deterministic must be True or False"),
        ({"block_size": 0}, "block_size must be a positive integer"),
        ({"block_size": 2.5}, "block_size must be a positive integer"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ADMMNetwork((3, 2), **kwargs)


@mpi
def test_program_flag_gives_the_same_model_on_any_rank_count(tmp_path):
    # 1000 samples: 4 blocks of BLOCK_SIZE (256) samples, the last 232; on 3
    # ranks the program deals them out 2/1/1.
    rng = np.random.default_rng(11)
    X = rng.random((1100, 20))
    y = np.argmax(X @ rng.standard_normal((20, 3)), axis=1)
    data = tmp_path / "data.npz"
    np.savez(data, X_train=X[:1000], y_train=y[:1000], X_test=X[1000:], y_test=y[1000:])
    models = {}
    for n in (1, 3):
        model = tmp_path / f"model{n}.npz"
        run_mpi(
            n,
            [
                "-m",
                "admm.train",
                "--data",
                str(data),
                "--layers",
                "20,16,3",
                "--iterations",
                "12",
                "--deterministic",
                "--save",
                str(model),
            ],
            timeout=TIMEOUT,
        )
        models[n] = admm.load(model).weights
    for w1, w3 in zip(models[1], models[3], strict=True):
        assert np.array_equal(w1, w3)
