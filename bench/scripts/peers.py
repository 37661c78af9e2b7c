"""Time to accuracy against backprop peers (issue 16), on the same data and cores.

Runs, one after the other on the same machine:

- each ``--admm`` configuration (default ``--preset fast`` and ``--preset
  best``) through the program, ``mpiexec -n RANKS python -m admm.train``
  with ``--metrics``: its per-iteration ``time_s`` (training seconds) and
  ``test_accuracy``; after a ``--refit`` one more point, at the training
  time plus the refit's, with the final test accuracy;
- scikit-learn's ``MLPClassifier`` (ReLU, adam, batch 128, float64; the
  ``peers`` extra), one ``partial_fit`` per epoch on RANKS BLAS threads;
- PyTorch on CPU (ReLU, Adam, batch 128, float32) on RANKS threads when
  ``torch`` is installed (a manual install: ``pip install torch`` from the
  CPU index), skipped with a note otherwise.

Every peer is the same network as the admm runs (``--layers``, default
784-500-500-10), trained on the same training images and evaluated on the
same test images after every epoch, outside its timed training seconds.
Prints, and writes to ``OUT/peers.md``, the training seconds (and the
iteration or epoch) to reach each of ``--targets`` (default 95, 97, 98%)
test accuracy, and draws test accuracy against training seconds, all
trainers on one plot, in ``OUT/peers.png`` (matplotlib); the curves are in
``OUT/peers.jsonl``. Compare the trainers of one run: on a shared machine
absolute seconds move with the load. ``--repeat R`` runs the whole sequence
R times (rounds) and adds a table of the median (and range) over rounds of
each time to target, and of each admm run's ratio to scikit-learn's time in
the same round (the issue's targets are such ratios); the first table, the
plot and the curves are those of round 1 (the curves of every round are in
``OUT/peers.jsonl``, each with its ``round``).

    python -m bench.scripts.peers --data mnist --data-dir /work/shared/data/mnist --out docs/peers
    python -m bench.scripts.peers --data mnist-sample --max-train 3000 --epochs 2 \\
        --iterations 3 --out /tmp/peers      # a smoke run of a minute
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from admm.data import load_dataset

from bench.common import MNIST_LAYERS, run_python_mpi

#: Test accuracies whose time is reported by default.
TARGETS = (0.95, 0.97, 0.98)
#: The admm configurations run by default (program flags).
ADMM_RUNS = ("--preset fast", "--preset best")
#: The peers' mini-batch and learning rate (Adam's default).
BATCH = 128
LEARNING_RATE = 1e-3


@dataclass
class Curve:
    """Test accuracy against cumulative training seconds of one trainer.

    ``steps`` numbers the points (iterations or epochs, ``unit`` says
    which); ``note`` says what the last point is, or why the trainer was
    skipped (then the lists are empty).
    """

    name: str
    unit: str
    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, step: int, seconds: float, accuracy: float) -> None:
        """Append one point."""
        self.steps.append(step)
        self.seconds.append(float(seconds))
        self.accuracy.append(float(accuracy))

    def time_to(self, target: float) -> tuple[float, int] | None:
        """Seconds and step of the first point at or above ``target``, or None."""
        for step, seconds, accuracy in zip(self.steps, self.seconds, self.accuracy, strict=True):
            if accuracy >= target:
                return seconds, step
        return None


@dataclass
class Problem:
    """The data every trainer gets: training and test images, and how to name
    them to the program (``data_args``: its ``--data`` flags)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    data_args: list[str]
    description: str


def load_problem(args: argparse.Namespace, work: Path) -> Problem:
    """The data set of ``--data`` (the first ``--max-train`` training images;
    then written to an .npz in ``work`` for the program)."""
    data = load_dataset(args.data, args.data_dir, download=False)
    if data.X_test is None or data.y_test is None or data.n_test == 0:
        raise SystemExit(f"peers: {args.data} has no test set")
    X, y = data.X_train, data.y_train
    data_args = ["--data", args.data] + (["--data-dir", args.data_dir] if args.data_dir else [])
    m = X.shape[0] if args.max_train is None else min(args.max_train, X.shape[0])
    if m < X.shape[0]:
        X, y = X[:m], y[:m]
        path = work / "data.npz"
        np.savez(path, X_train=X, y_train=y, X_test=data.X_test, y_test=data.y_test)
        data_args = ["--data", str(path)]
    description = f"{data.name}: {m} training images, {data.n_test} test images"
    return Problem(X, y, data.X_test, data.y_test, data_args, description)


def run_admm(
    index: int, flags: str, problem: Problem, args: argparse.Namespace, work: Path
) -> Curve:
    """One admm configuration through the program under mpiexec."""
    metrics = work / f"admm-{index}.jsonl"
    extra = shlex.split(flags)
    command = [
        "-m",
        "admm.train",
        *problem.data_args,
        "--layers",
        ",".join(map(str, args.layers)),
        *extra,
        "--metrics",
        str(metrics),
    ]
    if args.iterations is not None:
        command += ["--iterations", str(args.iterations)]
    print(f"  admm.train {' '.join(command[2:])}", flush=True)
    run_python_mpi(args.ranks, command, timeout=args.timeout)
    return admm_curve(f"admm {flags}, {args.ranks} ranks", metrics)


def admm_curve(name: str, metrics: Path) -> Curve:
    """The curve of a program's ``--metrics`` file."""
    curve = Curve(name, "iteration")
    events = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    for event in events:
        if "event" not in event and event.get("test_accuracy") is not None:
            curve.add(event["iteration"], event["time_s"], event["test_accuracy"])
    done = next((e for e in events if e.get("event") == "done"), None)
    if done is not None and done.get("refit") and done.get("final_test_accuracy") is not None:
        curve.add(
            done["iterations"], done["time_s"] + done["refit_time_s"], done["final_test_accuracy"]
        )
        curve.note = "last point: after the forward refit"
    return curve


def run_sklearn(problem: Problem, args: argparse.Namespace) -> Curve:
    """scikit-learn's MLPClassifier, one ``partial_fit`` (an epoch) at a time."""
    curve = Curve("scikit-learn MLPClassifier, ReLU, adam, batch 128, float64", "epoch")
    try:
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits
    except ImportError:
        curve.note = "skipped: scikit-learn is not installed (pip install 'admm[peers]')"
        return curve
    X = problem.X_train.astype(np.float64)
    X_test = problem.X_test.astype(np.float64)
    classes = np.arange(args.layers[-1])
    model = MLPClassifier(
        hidden_layer_sizes=tuple(args.layers[1:-1]),
        activation="relu",
        solver="adam",
        batch_size=BATCH,
        learning_rate_init=LEARNING_RATE,
        random_state=0,
    )
    elapsed = 0.0
    with threadpool_limits(args.ranks):
        for epoch in range(1, args.epochs + 1):
            started = time.perf_counter()
            model.partial_fit(X, problem.y_train, classes=classes)
            elapsed += time.perf_counter() - started
            curve.add(epoch, elapsed, float(np.mean(model.predict(X_test) == problem.y_test)))
            _progress(curve)
    return curve


def run_torch(problem: Problem, args: argparse.Namespace) -> Curve:
    """PyTorch on CPU, when installed: Adam on shuffled mini-batches."""
    curve = Curve("PyTorch CPU, ReLU, Adam, batch 128, float32", "epoch")
    try:
        import torch
    except ImportError:
        curve.note = "skipped: PyTorch is not installed (a manual install, CPU build)"
        return curve
    torch.manual_seed(0)
    torch.set_num_threads(args.ranks)
    widths = list(args.layers)
    modules: list = []
    for n_in, n_out in itertools.pairwise(widths[:-1]):
        modules += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*modules, torch.nn.Linear(widths[-2], widths[-1]))
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    X = torch.from_numpy(problem.X_train.astype(np.float32))
    y = torch.from_numpy(problem.y_train.astype(np.int64))
    X_test = torch.from_numpy(problem.X_test.astype(np.float32))
    y_test = problem.y_test
    elapsed = 0.0
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        model.train()
        for batch in torch.randperm(X.shape[0]).split(BATCH):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(X[batch]), y[batch]).backward()
            optimizer.step()
        elapsed += time.perf_counter() - started
        model.eval()
        with torch.no_grad():
            predicted = model(X_test).argmax(dim=1).numpy()
        curve.add(epoch, elapsed, float(np.mean(predicted == y_test)))
        _progress(curve)
    return curve


def _progress(curve: Curve) -> None:
    print(
        f"    {curve.unit} {curve.steps[-1]}: {curve.seconds[-1]:.1f} s, "
        f"test accuracy {curve.accuracy[-1]:.4f}",
        flush=True,
    )


def _cell(curve: Curve, target: float) -> str:
    if not curve.steps:
        return "-"
    reached = curve.time_to(target)
    if reached is None:
        return f"not in {curve.steps[-1]} {curve.unit}s"
    seconds, step = reached
    return f"{seconds:.1f} s ({curve.unit} {step})"


def table(curves: Sequence[Curve], targets: Sequence[float]) -> str:
    """The Markdown table: time to each target and the last accuracy, per trainer."""
    head = ["trainer", *(f"{100 * t:g}%" for t in targets), "last test accuracy", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for curve in curves:
        last = (
            f"{100 * curve.accuracy[-1]:.2f}% ({curve.unit} {curve.steps[-1]}, "
            f"{curve.seconds[-1]:.1f} s)"
            if curve.steps
            else "-"
        )
        cells = [curve.name, *(_cell(curve, t) for t in targets), last, curve.note]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(curves: Sequence[Curve], targets: Sequence[float], path: Path, title: str) -> None:
    """Test accuracy against training seconds, every trainer on one plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for curve in curves:
        if curve.steps:
            ax.plot(curve.seconds, [100 * a for a in curve.accuracy], marker=".", label=curve.name)
    for target in targets:
        ax.axhline(100 * target, color="0.8", linewidth=0.8, zorder=0)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("test accuracy (%)")
    # The targets' range: the first iterations of admm (near chance) fall below it.
    low = min(targets) - 0.07
    ax.set_ylim(100 * low, 100)
    ax.set_title(f"{title} (points below {100 * low:g}% are off the plot)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The script's command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="mnist", help="the program's --data (default mnist)")
    p.add_argument("--data-dir", default=None, help="folder of the IDX files")
    p.add_argument("--max-train", type=int, default=None, help="only the first M training images")
    p.add_argument(
        "--layers",
        type=lambda s: tuple(int(v) for v in s.split(",")),
        default=MNIST_LAYERS,
        help="layer widths (default 784,500,500,10)",
    )
    p.add_argument("--ranks", type=int, default=2, help="MPI ranks of admm, threads of peers")
    p.add_argument(
        "--admm",
        action="append",
        default=None,
        metavar="FLAGS",
        help="program flags of one admm run (repeatable; default: "
        + " and ".join(repr(a) for a in ADMM_RUNS)
        + ")",
    )
    p.add_argument(
        "--iterations", type=int, default=None, help="admm iterations (default: the preset's)"
    )
    p.add_argument("--epochs", type=int, default=10, help="peers' epochs (default 10)")
    p.add_argument(
        "--targets",
        type=lambda s: tuple(float(v) / 100 for v in s.split(",")),
        default=TARGETS,
        help="test accuracies in %% (default 95,97,98)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of the whole sequence; >1 adds medians over rounds (default 1)",
    )
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    p.add_argument("--out", type=Path, default=Path("peers-out"), help="output folder")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per admm run")
    return p.parse_args(argv)


def run_round(problem: Problem, args: argparse.Namespace, work: Path) -> list[Curve]:
    """Every trainer once, in order: the admm runs, scikit-learn, PyTorch."""
    curves = [
        run_admm(i, flags, problem, args, work) for i, flags in enumerate(args.admm or ADMM_RUNS)
    ]
    print("  scikit-learn", flush=True)
    curves.append(run_sklearn(problem, args))
    if args.no_torch:
        curves.append(Curve("PyTorch CPU", "epoch", note="skipped: --no-torch"))
    else:
        print("  PyTorch", flush=True)
        curves.append(run_torch(problem, args))
    return curves


def _spread(values: Sequence[float], unit: str, digits: int) -> str:
    """``median (min-max)`` of the values, or ``-`` when there are none."""
    if not values:
        return "-"
    low, mid, high = min(values), float(np.median(values)), max(values)
    return f"{mid:.{digits}f}{unit} ({low:.{digits}f}-{high:.{digits}f}, {len(values)} rounds)"


def repeats_table(rounds: Sequence[Sequence[Curve]], targets: Sequence[float]) -> str:
    """The Markdown table over rounds: per trainer and target, the median and
    range of the seconds to reach it (in the rounds that did), and for the
    admm runs the median and range of their seconds over scikit-learn's of
    the same round (a ratio measured within one round)."""
    head = ["trainer", *(f"{100 * t:g}%" for t in targets)]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    sklearn = [next((c for c in r if c.name.startswith("scikit-learn")), None) for r in rounds]
    for i, curve in enumerate(rounds[0]):
        if not curve.steps:
            continue
        cells = [curve.name]
        for target in targets:
            reached = [r[i].time_to(target) for r in rounds]
            seconds = [t[0] for t in reached if t is not None]
            cell = _spread(seconds, " s", 1)
            if curve.name.startswith("admm"):
                ratios = []
                for t, peer in zip(reached, sklearn, strict=True):
                    theirs = peer.time_to(target) if peer is not None else None
                    if t is not None and theirs is not None:
                        ratios.append(t[0] / theirs[0])
                if ratios:
                    cell += "; x scikit-learn " + _spread(ratios, "", 2)
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Curve]:
    """Run every trainer, print and write the table, the curves and the plot."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "work"
    work.mkdir(exist_ok=True)
    problem = load_problem(args, work)
    host = os.uname().nodename
    print(
        f"peers: {problem.description}; {args.ranks} ranks / threads on {host} "
        f"({os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if args.repeat < 1:
        raise SystemExit(f"peers: --repeat must be at least 1, got {args.repeat}")
    rounds = []
    for r in range(args.repeat):
        if args.repeat > 1:
            print(f" round {r + 1} of {args.repeat}", flush=True)
        rounds.append(run_round(problem, args, work))
    curves = rounds[0]
    text = table(curves, args.targets)
    if args.repeat > 1:
        text += (
            f"\n\nOver {args.repeat} rounds (median, range; admm runs also as a multiple of "
            "scikit-learn's time in the same round):\n\n" + repeats_table(rounds, args.targets)
        )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = (
        f"Time to test accuracy ({problem.description}, layers "
        f"{'-'.join(map(str, args.layers))}, {args.ranks} ranks / threads, {host}, {stamp}; "
        f"load average {os.getloadavg()[0]:.1f} at the end). Training seconds only.\n\n"
        f"    python -m bench.scripts.peers {' '.join(map(shlex.quote, argv))}\n"
    )
    print(text)
    (args.out / "peers.md").write_text(header + "\n" + text + "\n")
    with open(args.out / "peers.jsonl", "w") as f:
        for number, round_curves in enumerate(rounds, start=1):
            for curve in round_curves:
                f.write(json.dumps({**asdict(curve), "round": number}) + "\n")
    try:
        plot(curves, args.targets, args.out / "peers.png", problem.description)
    except ImportError:
        print("peers: no plot (matplotlib is not installed)")
    return curves


if __name__ == "__main__":
    main()
