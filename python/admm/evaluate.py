"""``python -m admm.evaluate MODEL.npz``: test accuracy of a saved model.

Runs on one process and needs no MPI: it reads the model with
:func:`admm.load`, loads the whole test set of ``--data`` and prints the
accuracy (with ``--json`` a JSON object). A problem with the model or the
data ends it with a one-line message and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._checks import width_mismatch
from ._cli import add_data_flags, report_error
from .data import load_dataset
from .metrics import regression_scores, regression_sums
from .network import load

PROG = "python -m admm.evaluate"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m admm.evaluate``."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Print the test accuracy of a model written by `python -m admm.train --save`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL.npz", help="model file")
    add_data_flags(p, "X_test and y_test")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a sentence")
    p.add_argument("--debug", action="store_true", help="print the Python traceback of an error")
    return p


def evaluate(
    model: str,
    data: str | None,
    data_dir: str | None,
    names: dict[str, str] | None = None,
    task: str = "auto",
) -> dict[str, Any]:
    """Scores of the model file on the test set of ``data``. Local.

    Returns ``n_test``, ``model``, ``data`` (the data set's name),
    ``source``, ``layers``, ``task`` and either ``accuracy`` and
    ``n_correct`` (class labels) or ``rmse`` and ``r2`` (real targets,
    ``task`` ``"regression"``). Raises ``ValueError`` (``DataError``) naming
    the problem.
    """
    net = load(model)
    # The test set only: the training images are neither read nor kept.
    dataset = load_dataset(
        data, data_dir, rank=0, size=1, dtype=net.dtype.name, names=names, train=False, task=task
    )
    if dataset.X_test is None or dataset.y_test is None or dataset.n_test == 0:
        raise ValueError(f"the data {dataset.name} ({dataset.source}) has no test set")
    regression = dataset.task == "regression"
    mismatch = width_mismatch(
        net.layers,
        dataset.n_features,
        dataset.n_targets if regression else dataset.n_classes,
        net.loss,
        what="targets" if regression else "classes",
    )
    if mismatch:
        raise ValueError(f"model {model} does not fit the data {dataset.name}: {mismatch}")
    result: dict[str, Any] = {"task": dataset.task}
    if regression:
        sums = regression_sums(net.decision_function(dataset.X_test), dataset.y_test)
        result["rmse"], result["r2"] = regression_scores(sums)
    else:
        n_correct = int((net.predict(dataset.X_test) == dataset.y_test).sum())
        result |= {"accuracy": n_correct / dataset.n_test, "n_correct": n_correct}
    return {
        **result,
        "n_test": dataset.n_test,
        "model": os.fspath(model),
        "data": dataset.name,
        "source": dataset.source,
        "layers": list(net.layers),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m admm.evaluate`` (and ``admm-evaluate``)."""
    args = build_parser().parse_args(argv)
    try:
        result = evaluate(args.model, args.data, args.data_dir, args.data_names, args.task)
    except Exception as exc:  # any failure: one line, the traceback only with --debug
        return report_error("admm.evaluate", exc, args.debug)
    if args.json:
        print(json.dumps(result))
    elif "rmse" in result:
        print(
            f"test RMSE {result['rmse']:.4e}, R^2 {result['r2']:.4f} ({result['n_test']} samples) "
            f"of {result['model']} on {result['data']} ({result['source']})"
        )
    else:
        print(
            f"test accuracy {result['accuracy']:.4f} ({result['n_correct']}/{result['n_test']}) "
            f"of {result['model']} on {result['data']} ({result['source']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
