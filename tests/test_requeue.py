"""Batch-job habits of the program: requeue with --resume-if-present, a signal
during start-up, test-only evaluation and the live progress line (issue 17)."""

from __future__ import annotations

import io
import signal

import admm
import numpy as np
import pytest
from admm import checkpoint as ck
from admm import data as data_module
from admm.train import UsageError, parse_args, run
from admm.train.report import Report, live_line
from admm.train.stop import StopSignals
from test_cli import LAYERS, make_npz, train
from test_faults import checkpointed, finish, start_training, wait_until


@pytest.fixture(scope="module")
def data_npz(tmp_path_factory):
    return make_npz(tmp_path_factory.mktemp("data") / "small.npz")


@pytest.mark.mpi
def test_requeue_cycle_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, data_npz):
    saved, model, straight = tmp_path / "ck", tmp_path / "model.npz", tmp_path / "straight.npz"
    common = ["--warmup", "3", "--iterations", "300"]
    # The one command line of the batch script, for the first submission and the requeue.
    line = [*common, "--resume-if-present", str(saved), "--checkpoint", str(saved),
            "--checkpoint-every", "1", "--save", str(model)]  # fmt: skip
    proc = start_training(2, "--data", str(data_npz), "--layers", LAYERS, *line)
    wait_until(proc, checkpointed(saved, 3), "checkpoint of iteration 3")
    proc.send_signal(signal.SIGTERM)  # the scheduler's time limit
    status, out, err = finish(proc)
    assert status == 128 + signal.SIGTERM, (status, out, err)
    assert f"no checkpoint in {saved} yet: starting from scratch" in out
    k = ck.read_manifest(saved)["iteration"]
    assert 3 <= k < 300
    again = train(2, data_npz, *line)  # the requeue
    assert again.returncode == 0, again.stderr
    assert f"resumed from {saved} at iteration {k}" in again.stdout
    assert "starting from scratch" not in again.stdout
    assert train(2, data_npz, *common, "--save", str(straight)).returncode == 0
    with np.load(model) as a, np.load(straight) as b:
        for key in ("W1", "W2"):
            np.testing.assert_array_equal(a[key], b[key])
    assert ck.read_manifest(saved)["iteration"] == 300


def test_resume_and_resume_if_present_exclude_each_other():
    with pytest.raises(UsageError, match="exclude each other"):
        parse_args(["--resume", "a", "--resume-if-present", "b"])


def test_a_signal_during_start_up_stops_before_training(tmp_path, data_npz):
    """A signal noted while the data were read (here: before run starts)
    stops the run before its first iteration: nothing trained or written."""
    signals = StopSignals()
    signals.signum = signal.SIGTERM
    model, saved = tmp_path / "m.npz", tmp_path / "ck"
    args = parse_args(["--data", str(data_npz), "--layers", LAYERS, "--iterations", "50",
                       "--save", str(model), "--checkpoint", str(saved)])  # fmt: skip
    done = run(args, signals)
    assert done["stop_reason"] == "signal" and done["signal"] == "SIGTERM"
    assert done["iterations"] == 0 and done["model"] is None and done["checkpoint"] is None
    assert not model.exists()
    assert not (saved / ck.MANIFEST).exists()


def test_evaluation_reads_only_the_test_set(tmp_path, monkeypatch):
    full = data_module.load_dataset("mnist-sample")
    read = []
    real = data_module.read_idx

    def recording(path, *args, **kwargs):
        read.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data_module, "read_idx", recording)
    test_only = data_module.load_dataset("mnist-sample", train=False)
    assert not any("train-images" in p for p in read), read
    assert test_only.X_train.shape == (0, full.n_features)
    np.testing.assert_array_equal(test_only.X_test, full.X_test)
    assert (test_only.n_classes, test_only.n_test) == (full.n_classes, full.n_test)
    # The same for a user's .npz: no training row is read.
    npz = make_npz(tmp_path / "d.npz")
    part = data_module.load_dataset(str(npz), train=False)
    whole = data_module.load_dataset(str(npz))
    assert part.X_train.shape == (0, whole.n_features)
    np.testing.assert_array_equal(part.X_test, whole.X_test)
    # And admm.evaluate asks for no more.
    net = admm.ADMMNetwork((784, 8, 10)).fit(full.X_test[:50], full.y_test[:50], 1)
    net.save(tmp_path / "m.npz")
    read.clear()
    from admm.evaluate import evaluate

    result = evaluate(str(tmp_path / "m.npz"), "mnist-sample", None)
    assert result["n_test"] == full.n_test
    assert not any("train-images" in p for p in read), read


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_progress_line_on_a_terminal_only():
    record = {"iteration": 4, "time_s": 2.0, "objective": 1.0, "residual": 1.0}
    text = live_line(record, 10, 0.9412)
    assert text == "iteration 4 of 10, 0.50 s per iteration, 3 s left, test accuracy 0.9412"
    assert live_line(record, 10, None).endswith("s left")
    screen = Terminal()
    out = Report(0, None, stream=screen)
    out.progress(text)
    out.say("   4      2.00   ...")
    out.progress("iteration 5 of 10")
    shown = screen.getvalue()
    assert shown.startswith("\r" + text)
    # The live line is cleared before a permanent line, then drawn again.
    assert "\r" + " " * len(text) + "\r   4      2.00   ...\n" in shown
    assert shown.endswith("\riteration 5 of 10")
    log = io.StringIO()  # redirected to a file: the plain lines only
    out = Report(0, None, stream=log)
    out.progress(text)
    out.say("line")
    assert log.getvalue() == "line\n"
    quiet = Terminal()  # other ranks print nothing
    Report(1, None, stream=quiet).progress(text)
    assert quiet.getvalue() == ""
