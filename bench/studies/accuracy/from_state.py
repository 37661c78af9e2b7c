"""Score a training state saved by ``study --save-state``, and its forward refit.

``python -m bench.studies.accuracy.study --save-state DIR`` pickles, at every
evaluation, the network's configuration and ``ADMMNetwork.get_state()``.
This script rebuilds the network from one of them (``set_state``) on the
split it was trained on (``--train``, ``--val``, ``--split-seed`` must match
it) and prints one JSON line per result, on stdout and in ``--out``: first
the state's own weights, then each experiment.

    OPENBLAS_NUM_THREADS=1 python -m bench.studies.accuracy.from_state STATE.pkl refit \\
        --out /tmp/refits.jsonl

Experiments: ``refit``, the library's ``refit()`` (every layer re-solved on
the forward pass). Round 6 of ``docs/accuracy-study.md`` also tried other
refits (ridge scales, stacked and mixed features, read-out sweeps) and a
forward reset of the hidden state; they were options of the prototype
retired with issue 14 (in the history up to commit 99e7d7d), not of the
library, and are not here.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import admm

from bench.common import MNIST_LAYERS, SHARED_MNIST
from bench.studies.accuracy.study import load, targets


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("state", type=Path, help="a pickle written by study --save-state")
    p.add_argument("experiments", nargs="+", choices=["refit"], metavar="NAME")
    p.add_argument("--train", type=int, default=50000)
    p.add_argument("--val", type=int, default=10000)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=SHARED_MNIST, help="the MNIST IDX files")
    p.add_argument("--out", type=Path, default=None, help="append the JSON lines here too")
    args = p.parse_args(argv)
    with args.state.open("rb") as f:
        saved = pickle.load(f)
    X, y, X_val, y_val, _, _ = load(args.train, args.val, args.split_seed, False, args.data_dir)
    kwargs = saved["kwargs"]
    net = admm.ADMMNetwork(MNIST_LAYERS, **kwargs)
    net.set_state(saved["state"], X, targets(kwargs, y))

    def emit(record: dict) -> None:
        record = {"state": args.state.name, "iteration": net.n_iter_, **record}
        line = json.dumps(record)
        print(line, flush=True)
        if args.out is not None:
            with args.out.open("a") as f:
                f.write(line + "\n")

    emit({"experiment": "none", "val_accuracy": net.score(X_val, y_val),
          "train_accuracy": net.score(X, y)})  # fmt: skip
    for name in args.experiments:
        started = time.perf_counter()
        if name == "refit":
            net.refit()
        emit({"experiment": name, "refit_val_accuracy": net.score(X_val, y_val),
              "refit_train_accuracy": net.score(X, y),
              "seconds": time.perf_counter() - started})  # fmt: skip


if __name__ == "__main__":
    main()
