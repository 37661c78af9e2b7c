"""Experiments that start from a saved training state of ``study.py`` (round 6).

``study.py --save-state DIR`` pickles a :class:`variants.Variant` at every
evaluation. From one of them this script scores other forward refits, or
continues training with the hidden state reset to the forward pass, on the
split the state was trained on (``--train``, ``--val``, ``--split-seed`` must
match it). One JSON line per result on stdout and in ``--out``.

    OPENBLAS_NUM_THREADS=1 python bench/accuracy/from_state.py STATE.pkl \\
        refit scale=0.3 stack=1 readout=200 --out bench/accuracy/screen6-refits.jsonl
    OPENBLAS_NUM_THREADS=1 python bench/accuracy/from_state.py STATE.pkl \\
        reset=15 --out bench/accuracy/screen6-refits.jsonl

Experiments (``NAME`` or ``NAME=VALUE``):

- ``refit``: ``Variant.forward_refit`` (the library's ``refit()``);
- ``scale=S``: the same with every ridge times ``S``;
- ``outscale=S``: the same with the output layer's ridge times ``S``;
- ``stack=S``: regress ``z_l`` on the forward features and, with weight
  ``S``, on the state's ``a_{l-1}`` together (two stacked least squares);
- ``mix=S``: regress ``z_l`` on ``(1 - S) f_{l-1} + S a_{l-1}``;
- ``readout=N``: the refit, then ``N`` ADMM sweeps of the read-out's own
  hinge problem on the forward features (``Variant.refit_readout``);
- ``reset=K``: ``K`` more iterations, each after resetting the hidden
  ``a_l``, ``z_l`` to the forward pass of the current weights (``z_L``, the
  fit of the labels, is kept); scored with the refit every 5 iterations.
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from study import load
from variants import Variant


def refit(v: Variant, **options: float) -> Variant:
    """A copy of ``v`` after ``Variant.forward_refit(**options)``."""
    r = copy.deepcopy(v)
    r.forward_refit(**options)
    return r


def forward_reset(v: Variant) -> None:
    """Set the hidden ``a_l``, ``z_l`` of ``v`` to the forward pass; keep ``z_L``."""
    f = v.a[0]
    for l in range(1, v.L):
        v.z[l - 1] = np.ascontiguousarray(v._affine(l, f))
        f = np.ascontiguousarray(v.h(v.z[l - 1]))
        v.a[l] = f


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("state", type=Path, help="a pickle written by study.py --save-state")
    p.add_argument("experiments", nargs="+", metavar="NAME[=VALUE]")
    p.add_argument("--train", type=int, default=50000)
    p.add_argument("--val", type=int, default=10000)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument(
        "--deskew", action="store_true", help="the state was trained on deskewed images"
    )
    p.add_argument("--out", type=Path, default=None, help="append the JSON lines here too")
    args = p.parse_args(argv)
    with args.state.open("rb") as f:
        state: Variant = pickle.load(f)
    X, y, X_val, y_val, _, _ = load(args.train, args.val, args.split_seed, False)
    if args.deskew:
        from admm.preprocessing import deskew

        X, X_val = deskew(X), deskew(X_val)

    def emit(record: dict) -> None:
        record = {"state": args.state.name, "iteration": state.t, **record}
        line = json.dumps(record)
        print(line, flush=True)
        if args.out is not None:
            with args.out.open("a") as f:
                f.write(line + "\n")

    emit({"experiment": "none", "val_accuracy": state.score(X_val, y_val),
          "train_accuracy": state.score(X, y)})  # fmt: skip
    for item in args.experiments:
        name, _, value = item.partition("=")
        started = time.perf_counter()
        if name == "reset":
            v = copy.deepcopy(state)
            for k in range(int(value)):
                forward_reset(v)
                v.fit_step()
                if (k + 1) % 5 == 0 or k + 1 == int(value):
                    r = refit(v)
                    emit({"experiment": item, "after": v.t, "val_accuracy": v.score(X_val, y_val),
                          "refit_val_accuracy": r.score(X_val, y_val),
                          "refit_train_accuracy": r.score(X, y)})  # fmt: skip
            continue
        if name == "refit":
            r = refit(state)
        elif name == "scale":
            r = refit(state, scale=float(value))
        elif name == "outscale":
            r = refit(state, out_scale=float(value))
        elif name == "stack":
            r = refit(state, stack=float(value))
        elif name == "mix":
            r = refit(state, mix=float(value))
        elif name == "readout":
            r = refit(state)
            r.refit_readout(int(value))
        else:
            raise SystemExit(f"unknown experiment {item!r}")
        emit({"experiment": item, "refit_val_accuracy": r.score(X_val, y_val),
              "refit_train_accuracy": r.score(X, y),
              "seconds": time.perf_counter() - started})  # fmt: skip


if __name__ == "__main__":
    main()
