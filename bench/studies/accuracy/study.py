"""Run named ADMM variants on MNIST and record accuracy by iteration (issue 5).

Screening uses a random subset of the training images and a disjoint
validation split, also from the training images; the test set is only read
with ``--test``. One JSON line per run goes to ``--out``; ``--plot`` draws
validation accuracy against iteration for every run in that file.

    OPENBLAS_NUM_THREADS=1 python bench/accuracy/study.py --configs talk bias \\
        --train 10000 --val 5000 --iterations 40 --out bench/accuracy/screen.jsonl

Run one configuration at a time on one core: the timings are per process.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from variants import Config, Variant

TALK = Config()


def _c(**kw) -> Config:
    return dataclasses.replace(TALK, **kw)


def _cont(cap: float, **kw) -> Config:
    """Continuation: every beta and gamma starts at 1 and grows x1.1 per iteration up to cap."""
    return _c(
        beta=(1.0,) * 3,
        gamma=(1.0,) * 2,
        beta_growth=1.1,
        gamma_growth=1.1,
        beta_max=(cap,) * 3,
        gamma_max=(cap,) * 2,
        **kw,
    )


CONFIGS: dict[str, Config] = {
    "talk": TALK,
    "taylor": _c(beta=(1.0,) * 3, gamma=(10.0,) * 2),
    "bias": _c(bias=True),
    "center": _c(center=True),
    "bias_center": _c(bias=True, center=True),
    "equal1": _c(beta=(1.0,) * 3, gamma=(1.0,) * 2),
    "equal1_bias": _c(beta=(1.0,) * 3, gamma=(1.0,) * 2, bias=True),
    "relu_equal1_bias": _c(activation="relu", beta=(1.0,) * 3, gamma=(1.0,) * 2, bias=True),
    "cont_bias": _cont(20.0, bias=True),
    "nomult_bias": _c(bias=True, multipliers=False),
    "sq_bias": _c(loss="squared", bias=True),
    "sqhinge_bias": _c(loss="sqhinge", bias=True),
    "rho1e-2_bias": _c(rho_rel=1e-2, bias=True),
    "random_init_bias": _c(init="random", bias=True),
    # Centred inputs as the new base.
    "c_bias": _c(center=True, bias=True),
    "c_rho1e-3": _c(center=True, rho_rel=1e-3),
    "c_rho1e-2": _c(center=True, rho_rel=1e-2),
    "c_rho1e-1": _c(center=True, rho_rel=1e-1),
    "c_relu": _c(center=True, activation="relu"),
    "c_sq": _c(center=True, loss="squared"),
    "c_sqhinge": _c(center=True, loss="sqhinge"),
    "c_nomult": _c(center=True, multipliers=False),
    "c_cont": _cont(20.0, center=True, bias=True),
    "c_beta_hidden5": _c(center=True, beta=(5.0, 5.0, 0.2)),
    "c_gamma2": _c(center=True, gamma=(2.0, 2.0)),
    # Centred inputs and ridge 1e-2 as the base.
    "r2_cont": _cont(100.0, center=True, bias=True, rho_rel=1e-2),
    "r2_bh5": _c(center=True, rho_rel=1e-2, beta=(5.0, 5.0, 0.2)),
    "r2_beta_cont": _c(center=True, rho_rel=1e-2, beta_growth=1.15, beta_max=(20.0, 20.0, 0.2)),
    "r2_bh5_bias": _c(center=True, bias=True, rho_rel=1e-2, beta=(5.0, 5.0, 0.2)),
    # Round 2: the output multiplier, hidden multipliers, inertia, restarts,
    # on the r2_cont base.
    "r2_cont_nomult": _cont(100.0, center=True, bias=True, rho_rel=1e-2, multipliers=False),
    "r2_cont_nomult_c30": _cont(30.0, center=True, bias=True, rho_rel=1e-2, multipliers=False),
    "r2_cont_nomult_c30_nobias": _cont(30.0, center=True, rho_rel=1e-2, multipliers=False),
    # Round 3: the penalties' balance on the r2_cont_nomult_c30 base.
    "nm_c30_bh2": dataclasses.replace(
        _cont(30.0, center=True, bias=True, rho_rel=1e-2, multipliers=False),
        beta=(2.0, 2.0, 1.0),
    ),
    "nm_c30_g05": dataclasses.replace(
        _cont(30.0, center=True, bias=True, rho_rel=1e-2, multipliers=False), gamma=(0.5, 0.5)
    ),
    "nm_c30_r3e-3": _cont(30.0, center=True, bias=True, rho_rel=3e-3, multipliers=False),
    "nm_c30_r3e-2": _cont(30.0, center=True, bias=True, rho_rel=3e-2, multipliers=False),
    "nm_c30_relu": _cont(
        30.0, center=True, bias=True, rho_rel=1e-2, multipliers=False, activation="relu"
    ),
    "nm_c30_sqhinge": _cont(
        30.0, center=True, bias=True, rho_rel=1e-2, multipliers=False, loss="sqhinge"
    ),
    "nm_c30_random_init": _cont(
        30.0, center=True, bias=True, rho_rel=1e-2, multipliers=False, init="random"
    ),
    "nm_c30_growth105": dataclasses.replace(
        _cont(30.0, center=True, bias=True, rho_rel=1e-2, multipliers=False),
        beta_growth=1.05,
        gamma_growth=1.05,
    ),
    "nm_c30_growth103": dataclasses.replace(
        _cont(30.0, center=True, bias=True, rho_rel=1e-2, multipliers=False),
        beta_growth=1.03,
        gamma_growth=1.03,
    ),
    # Constant penalties: with every beta and gamma grown alike, only the
    # output prox step 1/(2 beta_L) changes along the continuation.
    "nm_const1": _c(
        center=True, bias=True, rho_rel=1e-2, multipliers=False, beta=(1.0,) * 3, gamma=(1.0,) * 2
    ),
    "nm_const1_out05": _c(
        center=True,
        bias=True,
        rho_rel=1e-2,
        multipliers=False,
        beta=(1.0, 1.0, 0.5),
        gamma=(1.0,) * 2,
    ),
    "nm_const1_out025": _c(
        center=True,
        bias=True,
        rho_rel=1e-2,
        multipliers=False,
        beta=(1.0, 1.0, 0.25),
        gamma=(1.0,) * 2,
    ),
    "nm_const1_g2": _c(
        center=True, bias=True, rho_rel=1e-2, multipliers=False, beta=(1.0,) * 3, gamma=(2.0,) * 2
    ),
    "r2_cont_warm30": _cont(100.0, center=True, bias=True, rho_rel=1e-2, warmup=30),
    "r2_cont_hm": _cont(100.0, center=True, bias=True, rho_rel=1e-2, hidden_multipliers=True),
    "r2_cont_inert3": _cont(100.0, center=True, bias=True, rho_rel=1e-2, inertia=0.3),
    "r2_cont_restart5": _cont(100.0, center=True, bias=True, rho_rel=1e-2, restart_every=5),
    "r2_nm_hm_c30": _cont(
        30.0, center=True, bias=True, rho_rel=1e-2, multipliers=False, hidden_multipliers=True
    ),
    "r2_nm_hm_i3_c30": _cont(
        30.0,
        center=True,
        bias=True,
        rho_rel=1e-2,
        multipliers=False,
        hidden_multipliers=True,
        inertia=0.3,
    ),
    "r3e-3": _c(center=True, rho_rel=3e-3),
    "r3e-2": _c(center=True, rho_rel=3e-2),
}

# Round 4, on the library's --preset best without growth (centred, ridge 1e-2,
# every beta and gamma 1, no output multiplier, no bias units): the output
# penalty, ReLU, a proximal weight update instead of most of the ridge, and
# the ridge per layer; run with --forward-refit (and --augment for shifts).
R4 = _c(center=True, rho_rel=1e-2, multipliers=False, beta=(1.0,) * 3, gamma=(1.0,) * 2)
R4_BEST = dataclasses.replace(
    R4, beta_growth=1.03, gamma_growth=1.03, beta_max=(30.0,) * 3, gamma_max=(30.0,) * 2
)
CONFIGS.update(
    {
        "r4_base": R4,
        "r4_out01": dataclasses.replace(R4, beta=(1.0, 1.0, 0.1)),
        "r4_out005": dataclasses.replace(R4, beta=(1.0, 1.0, 0.05)),
        "r4_relu_out01": dataclasses.replace(R4, beta=(1.0, 1.0, 0.1), activation="relu"),
        "r4_r3e-3_out01": dataclasses.replace(R4, beta=(1.0, 1.0, 0.1), rho_rel=3e-3),
        "r4_prox": dataclasses.replace(R4, rho_rel=1e-4, prox_rel=1e-2),
        "r4_rho_3e-2_1e-2_1e-2": dataclasses.replace(R4, rho_rel=(3e-2, 1e-2, 1e-2)),
        "r4_rho_1e-2_1e-3_1e-3": dataclasses.replace(R4, rho_rel=(1e-2, 1e-3, 1e-3)),
        "r4_rho_1e-3_1e-2_1e-2": dataclasses.replace(R4, rho_rel=(1e-3, 1e-2, 1e-2)),
        # The library's --preset best (x1.03 growth, cap 30), for the refit.
        "r4_preset_best": R4_BEST,
        # A decaying ridge: 1e-2 at first (fast), down to 2e-3 / 1e-3 (a better
        # fit of 50,000 images) by iteration 70.
        "r4_rho_decay_2e-3": dataclasses.replace(
            R4_BEST, rho_decay=0.2 ** (1 / 70), rho_floor=0.2
        ),
        "r4_rho_decay_1e-3": dataclasses.replace(
            R4_BEST, rho_decay=0.1 ** (1 / 70), rho_floor=0.1
        ),
        # Round 5 on the decaying ridge: acceleration (inertia) and a backward
        # sweep of the hidden a/z updates after the output update.
        "r5_decay_inert3": dataclasses.replace(
            R4_BEST, rho_decay=0.2 ** (1 / 70), rho_floor=0.2, inertia=0.3
        ),
        "r5_decay_backward": dataclasses.replace(
            R4_BEST, rho_decay=0.2 ** (1 / 70), rho_floor=0.2, backward_sweep=True
        ),
        "r5_decay_reverse": dataclasses.replace(
            R4_BEST, rho_decay=0.2 ** (1 / 70), rho_floor=0.2, reverse_sweep=True
        ),
        "r5_decay_inert5": dataclasses.replace(
            R4_BEST, rho_decay=0.2 ** (1 / 70), rho_floor=0.2, inertia=0.5
        ),
        "r5_decay_backward_inert3": dataclasses.replace(
            R4_BEST, rho_decay=0.2 ** (1 / 70), rho_floor=0.2, backward_sweep=True, inertia=0.3
        ),
        "r5_decay_backward_inert5": dataclasses.replace(
            R4_BEST, rho_decay=0.2 ** (1 / 70), rho_floor=0.2, backward_sweep=True, inertia=0.5
        ),
        # After round 5, for the next step: two backward passes, bias units.
        "r5_decay_backward2_inert3": dataclasses.replace(
            R4_BEST, rho_decay=0.2 ** (1 / 70), rho_floor=0.2, backward_sweep=2, inertia=0.3
        ),
        "r5_decay_backward_inert3_bias": dataclasses.replace(
            R4_BEST,
            rho_decay=0.2 ** (1 / 70),
            rho_floor=0.2,
            backward_sweep=True,
            inertia=0.3,
            bias=True,
        ),
        "r5_decay1e-3_backward_inert3": dataclasses.replace(
            R4_BEST, rho_decay=0.1 ** (1 / 70), rho_floor=0.1, backward_sweep=True, inertia=0.3
        ),
        # Round 6: the three small gains of round 5 stacked.
        "r6_backward2_inert5_bias": dataclasses.replace(
            R4_BEST,
            rho_decay=0.2 ** (1 / 70),
            rho_floor=0.2,
            backward_sweep=2,
            inertia=0.5,
            bias=True,
        ),
    }
)


def load(train: int, val: int, seed: int, test: bool):
    """Training subset, validation split (both from MNIST's training images), test set."""
    from admm.data import load_dataset

    ds = load_dataset("mnist", "/work/shared/data/mnist", download=False)
    perm = np.random.default_rng(seed).permutation(ds.X_train.shape[0])
    if train + val > perm.size:
        raise ValueError(f"train + val = {train + val} exceeds {perm.size} training images")
    tr, va = perm[:train], perm[train : train + val]
    out = [ds.X_train[tr], ds.y_train[tr], ds.X_train[va], ds.y_train[va]]
    out += [ds.X_test, ds.y_test] if test else [None, None]
    return out


def augment_shifts(X: np.ndarray, y: np.ndarray, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` followed by ``copies`` (1-4) copies shifted by one pixel (down, up, right, left).

    28 x 28 images; the pixels shifted in are 0.
    """
    images = X.reshape(-1, 28, 28)
    out = [X]
    for axis, step in ((1, 1), (1, -1), (2, 1), (2, -1))[:copies]:
        shifted = np.roll(images, step, axis=axis)
        edge: list[slice | int] = [slice(None)] * 3
        edge[axis] = 0 if step == 1 else -1
        shifted[tuple(edge)] = 0.0
        out.append(shifted.reshape(len(X), -1))
    return np.concatenate(out), np.concatenate([y] * len(out))


def run(
    name: str,
    cfg: Config,
    data,
    iterations: int,
    eval_every: int,
    refit: int = 0,
    forward_refit: bool = False,
    save_state: Path | None = None,
) -> dict:
    """Train one configuration; return its JSON record.

    With ``refit`` > 0, every evaluation also scores a copy of the network
    whose output layer was re-solved on its own forward features for that
    many sweeps (``Variant.refit_readout``): keys ``refit_*``. With
    ``forward_refit``, a copy whose every layer was re-solved on the forward
    pass (``Variant.forward_refit``): keys ``fwd_refit_*``. With
    ``save_state``, the whole training state is pickled at every evaluation
    to ``save_state / f"{name}-it{iteration}.pkl"`` (for experiments that
    start from it, such as other refits).
    """
    X, y, Xv, yv, Xt, yt = data
    started = time.perf_counter()
    v = Variant(cfg, X, y)
    evals = []
    for it in range(1, iterations + 1):
        rec = v.fit_step()
        if it % eval_every == 0 or it == iterations:
            rec["val_accuracy"] = v.score(Xv, yv) if len(yv) else None
            rec["train_accuracy"] = v.score(X, y)
            rec["state_accuracy"] = v.train_state_score()
            if Xt is not None:
                rec["test_accuracy"] = v.score(Xt, yt)
            if refit:
                r = copy.deepcopy(v)
                r.refit_readout(refit)
                rec["refit_val_accuracy"] = r.score(Xv, yv) if len(yv) else None
                rec["refit_train_accuracy"] = r.score(X, y)
                if Xt is not None:
                    rec["refit_test_accuracy"] = r.score(Xt, yt)
                del r
            if forward_refit:
                r = copy.deepcopy(v)
                r.forward_refit()
                rec["fwd_refit_val_accuracy"] = r.score(Xv, yv) if len(yv) else None
                rec["fwd_refit_train_accuracy"] = r.score(X, y)
                if Xt is not None:
                    rec["fwd_refit_test_accuracy"] = r.score(Xt, yt)
                del r
            if save_state is not None:
                save_state.mkdir(parents=True, exist_ok=True)
                with (save_state / f"{name}-it{it}.pkl").open("wb") as f:
                    pickle.dump(v, f, protocol=pickle.HIGHEST_PROTOCOL)
            rec["beta"] = v.beta.tolist()
            rec["gamma"] = v.gamma.tolist()
            evals.append(rec)
            print(
                f"{name} it {it:3d} val {rec['val_accuracy']} train {rec['train_accuracy']:.4f} "
                f"state {rec['state_accuracy']:.4f} test {rec.get('test_accuracy')} "
                f"refit {rec.get('refit_val_accuracy')} "
                f"fwd refit {rec.get('fwd_refit_val_accuracy')} "
                f"res {rec['residual']:.3g} t {rec['time_s']:.1f}s",
                flush=True,
            )
        if not np.all(np.isfinite(v.W[-1])):
            break
    return {
        "name": name,
        "config": dataclasses.asdict(cfg),
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
        "--refit",
        type=int,
        default=0,
        help="also score a copy with the output layer re-solved on forward features (sweeps)",
    )
    p.add_argument(
        "--forward-refit",
        action="store_true",
        help="also score a copy with every layer re-solved on the forward pass",
    )
    p.add_argument(
        "--augment",
        type=int,
        default=0,
        choices=range(5),
        help="append this many one-pixel-shifted copies of the training images (0-4)",
    )
    p.add_argument(
        "--deskew",
        action="store_true",
        help="deskew every image (train, validation, test) before training",
    )
    p.add_argument(
        "--save-state",
        type=Path,
        default=None,
        metavar="DIR",
        help="pickle the training state at every evaluation into DIR (about 1 GB each at 50,000)",
    )
    p.add_argument("--out", type=Path, default=Path("bench/accuracy/screen.jsonl"))
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
    data = load(args.train, args.val, args.split_seed, args.test)
    if args.deskew:
        from admm.preprocessing import deskew

        for i in (0, 2, 4):
            if data[i] is not None:
                data[i] = deskew(data[i])
    if args.augment:
        data[0], data[1] = augment_shifts(data[0], data[1], args.augment)
    for name in args.configs:
        label = f"{name}+aug{args.augment}" if args.augment else name
        label += "+deskew" if args.deskew else ""
        record = run(
            label,
            CONFIGS[name],
            data,
            args.iterations,
            args.eval_every,
            args.refit,
            args.forward_refit,
            args.save_state,
        )
        record["refit"] = args.refit
        record["augment"] = args.augment
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")
    if args.plot:
        plot(args.out, args.plot, args.plot_key)


if __name__ == "__main__":
    main()
