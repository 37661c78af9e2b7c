"""Run named configurations of ``admm.ADMMNetwork`` on MNIST and record accuracy by iteration.

The accuracy study of issue 5 (``docs/accuracy-study.md``). Screening uses
a random subset of the training images and a disjoint validation split,
also from the training images; the test set is only read with ``--test``.
One JSON line per run goes to ``--out``; ``--plot`` draws validation
accuracy against iteration for every run in that file.

    OPENBLAS_NUM_THREADS=1 python -m bench.studies.accuracy.study --configs talk center \
        --train 10000 --val 5000 --iterations 40 --out /tmp/screen.jsonl

Run one configuration at a time on one core: the timings are per process.

The study's rounds 1-6 ran a prototype outside the library
(``bench/accuracy/variants.py``, retired with issue 14; it is in the
history up to commit 99e7d7d). Its options that worked are now options of
``ADMMNetwork``, and this driver trains the library: ``CONFIGS`` keeps the
configurations the library can express, under the names they had, and
leaves out those that needed prototype-only options (bias units, the
squared hinge, random initialisation, hidden-layer multipliers, restarts,
proximal weights, a ridge per layer, several or reversed backward passes).
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import time
from pathlib import Path
from typing import Any

import admm
import numpy as np
from admm.data import load_dataset
from admm.network import NumericalError

from bench.common import MNIST_LAYERS, SHARED_MNIST

#: The published configuration: the class defaults (``admm.PRESETS["talk"]``).
TALK: dict[str, Any] = dict(admm.PRESETS["talk"])


def _c(**kw: Any) -> dict[str, Any]:
    """``TALK`` with ``kw`` changed: the keyword arguments of one ``ADMMNetwork``."""
    return {**TALK, **kw}


def _cont(cap: float, **kw: Any) -> dict[str, Any]:
    """Continuation: every beta and gamma starts at 1 and grows x1.1 per iteration up to cap."""
    return _c(
        beta=1.0, gamma=1.0, beta_growth=1.1, gamma_growth=1.1, beta_max=cap, gamma_max=cap, **kw
    )


#: Round 4's base (centred, ridge 1e-2, every beta and gamma 1, no output
#: multiplier) and ``--preset best`` without deskewing or decay (x1.03, cap 30).
R4 = _c(center=True, rho_relative=1e-2, multiplier=False, beta=1.0, gamma=1.0)
R4_BEST = {**R4, "beta_growth": 1.03, "gamma_growth": 1.03, "beta_max": 30.0, "gamma_max": 30.0}
#: Round 5's decaying ridge: 1e-2 down to 2e-3 by iteration 70.
R5 = {**R4_BEST, "rho_final": 0.2, "rho_decay_iterations": 70}

CONFIGS: dict[str, dict[str, Any]] = {
    # Round 1.
    "talk": TALK,
    "taylor": _c(beta=1.0, gamma=10.0),
    "center": _c(center=True),
    "equal1": _c(beta=1.0, gamma=1.0),
    "c_rho1e-3": _c(center=True, rho_relative=1e-3),
    "c_rho1e-2": _c(center=True, rho_relative=1e-2),
    "c_rho1e-1": _c(center=True, rho_relative=1e-1),
    "c_relu": _c(center=True, activation="relu"),
    "c_sq": _c(center=True, loss="squared"),
    "c_nomult": _c(center=True, multiplier=False),
    "c_beta_hidden5": _c(center=True, beta=(5.0, 5.0, 0.2)),
    "c_gamma2": _c(center=True, gamma=(2.0, 2.0)),
    "r2_bh5": _c(center=True, rho_relative=1e-2, beta=(5.0, 5.0, 0.2)),
    "r2_beta_cont": _c(
        center=True, rho_relative=1e-2, beta_growth=1.15, beta_max=(20.0, 20.0, 0.2)
    ),
    "r3e-3": _c(center=True, rho_relative=3e-3),
    "r3e-2": _c(center=True, rho_relative=3e-2),
    # Round 2: without the output multiplier.
    "r2_cont_nomult_c30_nobias": _cont(30.0, center=True, rho_relative=1e-2, multiplier=False),
    # Round 4: the output penalty, ReLU, the library's --preset best of then.
    "r4_base": R4,
    "r4_out01": {**R4, "beta": (1.0, 1.0, 0.1)},
    "r4_out005": {**R4, "beta": (1.0, 1.0, 0.05)},
    "r4_relu_out01": {**R4, "beta": (1.0, 1.0, 0.1), "activation": "relu"},
    "r4_r3e-3_out01": {**R4, "beta": (1.0, 1.0, 0.1), "rho_relative": 3e-3},
    "r4_preset_best": R4_BEST,
    "r4_rho_decay_2e-3": R5,
    "r4_rho_decay_1e-3": {**R5, "rho_final": 0.1},
    # Round 5: inertia and the backward sweep on the decaying ridge.
    "r5_decay_inert3": {**R5, "inertia": 0.3},
    "r5_decay_inert5": {**R5, "inertia": 0.5},
    "r5_decay_backward": {**R5, "backward_sweep": True},
    "r5_decay_backward_inert3": {**R5, "backward_sweep": True, "inertia": 0.3},
    "r5_decay_backward_inert5": {**R5, "backward_sweep": True, "inertia": 0.5},
    "r5_decay1e-3_backward_inert3": {
        **R5,
        "rho_final": 0.1,
        "backward_sweep": True,
        "inertia": 0.3,
    },
}


def load(train: int, val: int, seed: int, test: bool, data_dir: Path = SHARED_MNIST) -> list:
    """Training subset, validation split (both from MNIST's training images), test set."""
    ds = load_dataset("mnist", data_dir, download=False)
    perm = np.random.default_rng(seed).permutation(ds.X_train.shape[0])
    if train + val > perm.size:
        raise ValueError(f"train + val = {train + val} exceeds {perm.size} training images")
    tr, va = perm[:train], perm[train : train + val]
    out = [ds.X_train[tr], ds.y_train[tr], ds.X_train[va], ds.y_train[va]]
    out += [ds.X_test, ds.y_test] if test else [None, None]
    return out


def targets(kwargs: dict[str, Any], y: np.ndarray) -> np.ndarray:
    """What ``fit`` takes: the labels, or one-hot rows for the squared loss."""
    if kwargs.get("loss") == "squared":
        return np.eye(MNIST_LAYERS[-1])[y]
    return y


def state_accuracy(net: admm.ADMMNetwork, y: np.ndarray) -> float:
    """How often the arg-max of ``W_L a_{L-1}`` over the ADMM *state* is the label."""
    state = net.get_state()
    scores = state["a"][-1] @ np.asarray(state["weights"][-1]).T
    return float(np.mean(np.argmax(scores, axis=1) == y))


def refitted(net: admm.ADMMNetwork, kwargs: dict[str, Any], X, y) -> admm.ADMMNetwork:
    """A copy of ``net`` (a second network on a copy of its state) after ``refit()``."""
    copy_net = admm.ADMMNetwork(MNIST_LAYERS, **kwargs)
    copy_net.set_state(copy.deepcopy(net.get_state()), X, targets(kwargs, y))
    return copy_net.refit()


def run(
    name: str,
    kwargs: dict[str, Any],
    data: list,
    iterations: int,
    eval_every: int,
    forward_refit: bool = False,
    save_state: Path | None = None,
) -> dict:
    """Train one configuration with ``ADMMNetwork.step()``; return its JSON record.

    Every ``eval_every`` iterations and at the last: the forward pass's
    accuracy on the validation, training (and with ``--test`` test) images,
    the state's accuracy (:func:`state_accuracy`), and the penalties in
    force. With ``forward_refit``, also a copy after ``refit()`` (keys
    ``fwd_refit_*``). With ``save_state``, ``{"name", "kwargs", "state"}``
    (``get_state()``) is pickled at every evaluation to
    ``save_state / f"{name}-it{iteration}.pkl"`` for ``from_state``.
    """
    X, y, Xv, yv, Xt, yt = data
    started = time.perf_counter()
    net = admm.ADMMNetwork(MNIST_LAYERS, **kwargs)
    net.fit(X, targets(kwargs, y), iterations=0)
    evals = []
    for it in range(1, iterations + 1):
        try:
            rec = dict(net.step())
        except NumericalError as exc:
            print(f"{name}: {exc}", flush=True)
            break
        if it % eval_every == 0 or it == iterations:
            rec["val_accuracy"] = net.score(Xv, yv) if len(yv) else None
            rec["train_accuracy"] = net.score(X, y)
            rec["state_accuracy"] = state_accuracy(net, y)
            if Xt is not None:
                rec["test_accuracy"] = net.score(Xt, yt)
            if forward_refit:
                r = refitted(net, kwargs, X, y)
                rec["fwd_refit_val_accuracy"] = r.score(Xv, yv) if len(yv) else None
                rec["fwd_refit_train_accuracy"] = r.score(X, y)
                if Xt is not None:
                    rec["fwd_refit_test_accuracy"] = r.score(Xt, yt)
                del r
            if save_state is not None:
                save_state.mkdir(parents=True, exist_ok=True)
                with (save_state / f"{name}-it{it}.pkl").open("wb") as f:
                    saved = {"name": name, "kwargs": kwargs, "state": net.get_state()}
                    pickle.dump(saved, f, protocol=pickle.HIGHEST_PROTOCOL)
            beta, gamma = net.penalties(it - 1)
            rec["beta"], rec["gamma"] = list(beta), list(gamma)
            evals.append(rec)
            print(
                f"{name} it {it:3d} val {rec['val_accuracy']} train {rec['train_accuracy']:.4f} "
                f"state {rec['state_accuracy']:.4f} test {rec.get('test_accuracy')} "
                f"fwd refit {rec.get('fwd_refit_val_accuracy')} "
                f"res {rec['residual']:.3g} t {rec['time_s']:.1f}s",
                flush=True,
            )
        if not np.all(np.isfinite(net.weights[-1])):
            break
    return {
        "name": name,
        "config": kwargs,
        "train": len(y),
        "val": len(yv),
        "test": Xt is not None,
        "iterations": iterations,
        "wall_s": time.perf_counter() - started,
        "evals": evals,
    }


def plot(jsonl: Path, png: Path, key: str = "val_accuracy") -> None:
    """Accuracy against iteration for every run in ``jsonl`` (last run of a name wins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        runs[r["name"]] = r
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.set_prop_cycle(color=plt.cm.tab20.colors)
    for name, r in runs.items():
        ev = [e for e in r["evals"] if e.get(key) is not None]
        ax.plot([e["iteration"] for e in ev], [e[key] for e in ev], marker=".", label=name)
    ax.axhline(0.97, color="k", ls=":", lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel(key.replace("_", " "))
    ax.set_ylim(0.8, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def table(jsonl: Path, key: str = "val_accuracy") -> str:
    """A Markdown table: accuracy every 5 iterations, the best, seconds per iteration."""
    runs = {}
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        runs[r["name"]] = r
    its = sorted({e["iteration"] for r in runs.values() for e in r["evals"]})
    head = "| configuration | " + " | ".join(str(i) for i in its) + " | best | s/iter |"
    rows = [head, "|---" * (len(its) + 3) + "|"]
    for name, r in runs.items():
        by_it = {e["iteration"]: e.get(key) for e in r["evals"]}
        cells = [f"{by_it[i]:.4f}" if by_it.get(i) is not None else "" for i in its]
        best = max((v for v in by_it.values() if v is not None), default=float("nan"))
        per = r["evals"][-1]["time_s"] / r["evals"][-1]["iteration"]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {best:.4f} | {per:.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS))
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--val", type=int, default=5000)
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--test", action="store_true", help="also evaluate on the 10,000 test images")
    p.add_argument(
        "--forward-refit",
        action="store_true",
        help="also score a copy after refit() (every layer re-solved on the forward pass)",
    )
    p.add_argument(
        "--deskew",
        action="store_true",
        help="deskew every image (ADMMNetwork's deskew=True, so prediction deskews too)",
    )
    p.add_argument("--data-dir", type=Path, default=SHARED_MNIST, help="the MNIST IDX files")
    p.add_argument(
        "--save-state",
        type=Path,
        default=None,
        metavar="DIR",
        help="pickle the training state at every evaluation into DIR (about 1 GB each at 50,000)",
    )
    p.add_argument("--out", type=Path, required=True, help="append the JSON lines here")
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--plot-key", default="val_accuracy")
    p.add_argument(
        "--table", action="store_true", help="print the Markdown table of --out and exit"
    )
    args = p.parse_args(argv)
    if args.table:
        print(table(args.out, args.plot_key))
        if args.plot:
            plot(args.out, args.plot, args.plot_key)
        return
    unknown = [n for n in args.configs if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configurations {unknown}; known: {sorted(CONFIGS)}")
    data = load(args.train, args.val, args.split_seed, args.test, args.data_dir)
    for name in args.configs:
        kwargs = {**CONFIGS[name], "deskew": args.deskew}
        label = name + ("+deskew" if args.deskew else "")
        record = run(
            label,
            kwargs,
            data,
            args.iterations,
            args.eval_every,
            args.forward_refit,
            args.save_state,
        )
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")
    if args.plot:
        plot(args.out, args.plot, args.plot_key)


if __name__ == "__main__":
    main()
