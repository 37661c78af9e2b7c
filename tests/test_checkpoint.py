"""Checkpoints: resume continues the same trajectory bit for bit; a checkpoint
that cannot be trusted is refused with a message; a failed write never
destroys the last good checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import admm
import numpy as np
import pytest
from admm import checkpoint as ck
from admm._mpi import Communicator
from admm.network import ADMMNetwork
from mpirun import run_mpi
from test_cli import LAYERS, TIMEOUT, assert_clean_error, make_npz, read_metrics, train

CONFIG = {"layers": [6, 5, 2], "seed": 0}
RANK_INFO = {"train_range": [0, 40], "sha256": "x"}


@pytest.fixture(scope="module")
def data_npz(tmp_path_factory) -> Path:
    return make_npz(tmp_path_factory.mktemp("data") / "small.npz")


@pytest.fixture(scope="module")
def image_npz(tmp_path_factory) -> Path:
    """4 x 4 "images" with pixels in [0, 1], for deskewing."""
    return make_npz(tmp_path_factory.mktemp("data") / "images.npz", features=16)


def state_arrays(directory: Path) -> dict[str, np.ndarray]:
    """Every array of every rank's state file, keyed by rank and name."""
    manifest = json.loads((directory / ck.MANIFEST).read_text())
    out = {}
    for entry in manifest["files"]:
        with np.load(directory / entry["file"]) as f:
            for key in f.files:
                if key != "elapsed":
                    out[f"{entry['rank']}/{key}"] = f[key]
    return out


# --------------------------------------------------------------- under MPI


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("ranks", "dtype", "preset"),
    [(2, "float64", "talk"), (3, "float32", "talk"), (2, "float64", "digits")],
)
def test_resume_continues_the_same_trajectory_bit_for_bit(
    tmp_path, data_npz, image_npz, ranks, dtype, preset
):
    # The digits preset adds deskewing, centring and continuation: the resumed
    # run must deskew again, keep the saved mean and pick the penalties up at
    # iteration 5. Deskewing needs square images: 4 x 4 for digits.
    common = ["--preset", preset, "--warmup", "3", "--dtype", dtype]
    if preset == "digits":
        data_npz = image_npz
        common += ["--layers", "16,16,3"]
    full, part, rest = tmp_path / "full", tmp_path / "part", tmp_path / "rest"
    train(
        ranks, data_npz, *common, "--iterations", "10", "--checkpoint", str(full),
        "--save", str(tmp_path / "full.npz"), "--metrics", str(tmp_path / "full.jsonl"),
    )  # fmt: skip
    train(
        ranks, data_npz, *common, "--iterations", "5", "--checkpoint", str(part),
        "--checkpoint-every", "2",
    )  # fmt: skip
    # Checkpoints at 2 and 4 were replaced by the final one at 5.
    manifest = json.loads((part / ck.MANIFEST).read_text())
    assert manifest["iteration"] == 5 and manifest["ranks"] == ranks
    assert sorted(p.name for p in part.glob("state-*")) == [
        ck.state_file_name(5, r) for r in range(ranks)
    ]
    proc = train(
        ranks, data_npz, *common, "--iterations", "10", "--resume", str(part),
        "--checkpoint", str(rest), "--save", str(tmp_path / "rest.npz"),
        "--metrics", str(tmp_path / "rest.jsonl"),
    )  # fmt: skip
    assert "resumed from" in proc.stdout and "at iteration 5" in proc.stdout
    if preset == "digits":  # its ridge decays: the summary gives the first and the last
        done = read_metrics(tmp_path / "rest.jsonl")[-1]
        decay = admm.PRESETS["digits"]
        factor = decay["rho_final"] ** (9 / decay["rho_decay_iterations"])
        np.testing.assert_allclose(done["rho_last"], np.array(done["rho"]) * factor, rtol=1e-12)
        assert "at the last iteration" in proc.stdout

    with np.load(tmp_path / "full.npz") as a, np.load(tmp_path / "rest.npz") as b:
        for key in ("W1", "W2"):
            assert a[key].dtype == np.dtype(dtype)
            np.testing.assert_array_equal(a[key], b[key])
    whole, resumed = state_arrays(full), state_arrays(rest)
    assert whole.keys() == resumed.keys()
    for key in whole:
        np.testing.assert_array_equal(whole[key], resumed[key], err_msg=key)
    # The resumed run reports the iterations it did, with the same objectives.
    steps_full = read_metrics(tmp_path / "full.jsonl")[1:-1]
    steps_rest = read_metrics(tmp_path / "rest.jsonl")[1:-1]
    assert [r["iteration"] for r in steps_rest] == list(range(6, 11))
    assert [r["objective"] for r in steps_rest] == [r["objective"] for r in steps_full[5:]]


@pytest.mark.mpi
def test_resume_refuses_what_it_cannot_trust(tmp_path, data_npz):
    saved = tmp_path / "ck"
    train(2, data_npz, "--iterations", "3", "--checkpoint", str(saved))

    proc = train(3, data_npz, "--iterations", "6", "--resume", str(saved), check=False)
    assert_clean_error(proc, "written by 2 ranks")
    proc = train(
        2, data_npz, "--iterations", "6", "--seed", "1", "--resume", str(saved), check=False
    )
    assert_clean_error(proc, "seed: checkpoint 0, now 1")
    proc = train(
        2, data_npz, "--iterations", "6", "--rho-final", "0.5", "--rho-decay-iterations", "2",
        "--resume", str(saved), check=False,
    )  # fmt: skip
    assert_clean_error(proc, "rho_final: checkpoint None, now 0.5")
    other = make_npz(tmp_path / "other.npz", n_train=300)
    with np.load(other) as f:
        arrays = dict(f)
    arrays["X_train"] = arrays["X_train"][::-1].copy()
    np.savez(other, **arrays)
    proc = train(2, other, "--iterations", "6", "--resume", str(saved), check=False)
    assert_clean_error(proc, "training block differs")
    proc = train(2, data_npz, "--iterations", "6", "--resume", str(tmp_path / "none"), check=False)
    assert_clean_error(proc, "no checkpoint in")

    # A damaged file of one rank: only that rank sees it, every rank stops.
    rank1 = saved / ck.state_file_name(3, 1)
    raw = bytearray(rank1.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    rank1.write_bytes(bytes(raw))
    proc = train(2, data_npz, "--iterations", "6", "--resume", str(saved), check=False)
    assert_clean_error(proc, "rank 1: checkpoint file")
    assert "corrupt" in proc.stderr and "admm.train:" not in proc.stdout

    manifest = json.loads((saved / ck.MANIFEST).read_text())
    manifest["format_version"] = 99
    (saved / ck.MANIFEST).write_text(json.dumps(manifest))
    proc = train(2, data_npz, "--iterations", "6", "--resume", str(saved), check=False)
    assert_clean_error(proc, "checkpoint format 99")


@pytest.mark.mpi
def test_unwritable_checkpoint_folder_fails_before_training(tmp_path, data_npz):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_mpi(
        2,
        ["-m", "admm.train", "--data", str(data_npz), "--layers", LAYERS,
         "--checkpoint", str(blocker / "ck")],
        timeout=TIMEOUT,
        check=False,
    )  # fmt: skip
    assert_clean_error(proc, "cannot write to checkpoint folder")
    assert "admm.train:" not in proc.stdout


# ------------------------------------------------------------ one process


def small_problem(rng):
    X = rng.random((40, 6))
    y = rng.integers(0, 2, 40)
    return X, y


def test_checkpoint_round_trip_continues_in_process(tmp_path, rng):
    X, y = small_problem(rng)
    comm = Communicator()
    straight = ADMMNetwork((6, 5, 2), warmup=1).fit(X, y, iterations=6)
    first = ADMMNetwork((6, 5, 2), warmup=1).fit(X, y, iterations=3)
    ck.save_checkpoint(tmp_path, comm, first.get_state(), CONFIG, RANK_INFO)
    state = ck.load_checkpoint(tmp_path, comm, CONFIG, RANK_INFO)
    assert state["n_iter"] == 3 and len(state["history"]) == 3
    resumed = ADMMNetwork((6, 5, 2), warmup=1)
    resumed.set_state(state, X, y)
    resumed.fit(X, y, iterations=6, warm_start=True)
    for a, b in zip(straight.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [r["objective"] for r in straight.history] == [r["objective"] for r in resumed.history]


def test_failed_manifest_write_keeps_the_last_good_checkpoint(tmp_path, rng, monkeypatch):
    X, y = small_problem(rng)
    comm = Communicator()
    net = ADMMNetwork((6, 5, 2), warmup=1).fit(X, y, iterations=3)
    ck.save_checkpoint(tmp_path, comm, net.get_state(), CONFIG, RANK_INFO)
    good = ck.load_checkpoint(tmp_path, comm, CONFIG, RANK_INFO)
    net.fit(X, y, iterations=5, warm_start=True)

    def crash(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "atomic_write_text", crash)
    with pytest.raises(ck.CheckpointError, match="No space left"):
        ck.save_checkpoint(tmp_path, comm, net.get_state(), CONFIG, RANK_INFO)
    monkeypatch.undo()
    # The manifest still names iteration 3, whose file was not removed.
    again = ck.load_checkpoint(tmp_path, comm, CONFIG, RANK_INFO)
    assert again["n_iter"] == 3
    for a, b in zip(good["z"], again["z"], strict=True):
        np.testing.assert_array_equal(a, b)
    # The next good write cleans up the orphan of iteration 5.
    net.fit(X, y, iterations=6, warm_start=True)
    ck.save_checkpoint(tmp_path, comm, net.get_state(), CONFIG, RANK_INFO)
    assert sorted(p.name for p in tmp_path.glob("state-*")) == [ck.state_file_name(6, 0)]


def test_reader_refuses_config_rank_data_and_damage(tmp_path, rng):
    X, y = small_problem(rng)
    comm = Communicator()
    net = ADMMNetwork((6, 5, 2)).fit(X, y, iterations=2)
    ck.save_checkpoint(tmp_path, comm, net.get_state(), CONFIG, RANK_INFO)
    with pytest.raises(ck.CheckpointError, match="seed: checkpoint 0, now 3"):
        ck.load_checkpoint(tmp_path, comm, {**CONFIG, "seed": 3}, RANK_INFO)
    with pytest.raises(ck.CheckpointError, match="training block differs"):
        ck.load_checkpoint(tmp_path, comm, CONFIG, {**RANK_INFO, "sha256": "y"})
    (tmp_path / ck.state_file_name(2, 0)).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ck.CheckpointError, match="corrupt"):
        ck.load_checkpoint(tmp_path, comm, CONFIG, RANK_INFO)
    (tmp_path / ck.MANIFEST).write_text("{not json")
    with pytest.raises(ck.CheckpointError, match="cannot read checkpoint manifest"):
        ck.load_checkpoint(tmp_path, comm, CONFIG, RANK_INFO)


def test_checkpoint_records_label_smoothing_and_old_ones_have_none(tmp_path, rng):
    """A checkpoint's configuration holds a nonzero label smoothing, resume
    compares it, and one without it (as every older checkpoint) is s = 0."""
    from admm.config import Config

    X, y = small_problem(rng)
    comm = Communicator()
    (tmp_path / "s").mkdir()
    (tmp_path / "p").mkdir()
    smooth = Config(loss="cross_entropy", label_smoothing=0.2).run_config(2)
    plain = Config(loss="cross_entropy").run_config(2)
    assert smooth["label_smoothing"] == 0.2 and "label_smoothing" not in plain
    net = ADMMNetwork((6, 5, 2), loss="cross_entropy", label_smoothing=0.2).fit(X, y, 2)
    ck.save_checkpoint(tmp_path / "s", comm, net.get_state(), smooth, RANK_INFO)
    assert ck.load_checkpoint(tmp_path / "s", comm, smooth, RANK_INFO)["n_iter"] == 2
    with pytest.raises(ck.CheckpointError, match=r"label_smoothing: checkpoint 0\.2, now None"):
        ck.load_checkpoint(tmp_path / "s", comm, plain, RANK_INFO)
    net = ADMMNetwork((6, 5, 2), loss="cross_entropy").fit(X, y, 2)
    ck.save_checkpoint(tmp_path / "p", comm, net.get_state(), plain, RANK_INFO)
    assert ck.load_checkpoint(tmp_path / "p", comm, {**plain, "label_smoothing": 0.0}, RANK_INFO)
    with pytest.raises(ck.CheckpointError, match=r"label_smoothing: checkpoint None, now 0\.2"):
        ck.load_checkpoint(tmp_path / "p", comm, smooth, RANK_INFO)
