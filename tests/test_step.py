"""The public hooks for one iteration and its phases: ``ADMMNetwork.step`` and ``PhaseTimer``."""

from __future__ import annotations

import admm
import numpy as np
import pytest
from admm import ADMMNetwork, PhaseTimer
from admm.timing import phase

LAYERS = (16, 12, 8, 4)


def data(rng: np.random.Generator, m: int = 300) -> tuple[np.ndarray, np.ndarray]:
    return rng.random((m, LAYERS[0])), rng.integers(0, LAYERS[-1], m)


@pytest.mark.parametrize("options", [{}, {"deterministic": True, "block_size": 32}])
def test_step_is_the_loop_body_of_fit(rng, options):
    X, y = data(rng)
    fitted = ADMMNetwork(LAYERS, warmup=1, **options).fit(X, y, iterations=4)
    stepped = ADMMNetwork(LAYERS, warmup=1, **options).fit(X, y, iterations=0)
    assert stepped.n_iter_ == 0 and stepped.history == []
    records = [stepped.step() for _ in range(4)]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]
    assert stepped.history == records
    for a, b in zip(fitted.weights, stepped.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(fitted.history, stepped.history, strict=True):
        assert (a["objective"], a["residual"]) == (b["objective"], b["residual"])
        assert b["val_accuracy"] is None


def test_time_s_counts_the_set_up_of_fit(rng):
    """The set-up (deskewing, centring, the initial forward pass) is training
    time: counted before the first iteration, once per fit."""
    X, y = rng.random((200, 16)), rng.integers(0, 4, 200)
    net = ADMMNetwork((16, 8, 4), deskew=True, center=True).fit(X, y, iterations=0)
    set_up = net.get_state()["elapsed"]
    assert set_up > 0.0
    record = net.step()
    assert record["time_s"] > set_up
    net.fit(X, y, iterations=2, warm_start=True)  # a second fit's set-up is counted too
    assert net.history[-1]["time_s"] > record["time_s"]


def test_step_needs_a_state():
    with pytest.raises(RuntimeError, match="call fit"):
        ADMMNetwork(LAYERS).step()


def test_fit_refuses_negative_iterations(rng):
    X, y = data(rng)
    with pytest.raises(ValueError, match="non-negative integer"):
        ADMMNetwork(LAYERS).fit(X, y, iterations=-1)


def test_phase_timer_records_every_phase_of_a_step(rng):
    X, y = data(rng)
    net = ADMMNetwork(LAYERS, warmup=1, backward_sweep=True).fit(X, y, iterations=1)
    with PhaseTimer() as timer:
        net.step()
        net.refit()
    L = len(LAYERS) - 1
    assert timer.calls["iteration"] == 1
    assert timer.calls["weights"] == L
    # The forward pass of (2) and (3), then the backward sweep's.
    assert timer.calls["activations"] == timer.calls["hidden_z"] == 2 * (L - 1)
    assert timer.calls["output"] == timer.calls["objective"] == 1
    assert timer.calls["refit"] == L
    # L weight sums and the objective's (the input Gram is reduced once, at
    # iteration 1, so not here), plus the refit's L sums.
    assert timer.calls["reduce"] == L + 1 + L
    assert all(v >= 0 for v in timer.seconds.values())
    inner = sum(timer.seconds[p] for p in ("weights", "activations", "hidden_z", "output"))
    assert inner <= timer.seconds["iteration"]
    assert set(timer.cpu_seconds) == set(timer.seconds)


def test_phase_timer_is_quiet_when_inactive_and_nests():
    outer, inner = PhaseTimer(), PhaseTimer()
    with phase("x"):  # nobody listens: nothing to record, no error
        pass
    with outer:
        with phase("a"):
            pass
        with inner, phase("b"):
            pass
    assert dict(outer.calls) == {"a": 1}
    assert dict(inner.calls) == {"b": 1}
    outer.reset()
    assert dict(outer.calls) == {}


def test_public_names():
    assert admm.PhaseTimer is PhaseTimer


def test_options_doc_is_generated_from_the_table():
    from pathlib import Path

    from admm.config import options_markdown

    doc = Path(__file__).resolve().parent.parent / "docs" / "options.md"
    assert doc.read_text() == options_markdown(), "run: python -m admm.config > docs/options.md"
