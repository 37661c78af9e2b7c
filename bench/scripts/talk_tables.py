"""The talk's two tables on this machine: memory per rank and time per iteration vs N.

Runs ``mpiexec -n N python -m admm.train --data mnist`` (784-500-500-10, all
60,000 training images, one BLAS thread per rank) for every N of
``--ranks`` with a few iterations, and reads each run's ``--metrics`` JSON
lines: the predicted bytes per rank of our memory model (start event, plus
the interpreter measured at start-up), the peak resident memory (max over
ranks) and the training time of every iteration (test evaluation is not in
it). Beside them: the talk's memory model ``5.176 + 974.4 / N`` MB and its
published times to convergence (not per iteration: different quantities,
shown for the shape of the curve only).

N above the machine's core count is oversubscribed: the wall time per
iteration then measures time sharing, not the algorithm. Every rank
therefore also times its own iterations in process CPU time, minus the CPU
time spent inside the Allreduce (MPICH busy-polls while it waits), which is
the per-rank compute that the scaling model of ``docs/scaling.md`` predicts.
That timing is an ``admm.PhaseTimer`` around the training run on every rank
(``--rank-probe``): the CPU time of the ``iteration`` phase minus that of
the ``reduce`` phase, averaged over all iterations of the run (before issue
14 this script replaced library methods to time each iteration, and left
iteration 1 out of these means too; the wall time per iteration still
leaves it out).

Also writes the scaling model's prediction for this machine (one-thread GEMM
rate measured here) beside the measured per-rank compute.

    python -m bench.scripts.talk_tables                       # N = 1, 2, 4, 8, 3 iterations
    python -m bench.scripts.talk_tables --ranks 1,2 --dtype float32 --out /tmp/scaling
    python -m bench.scripts.talk_tables --node-model          # the model for 1..64 nodes only

Writes ``talk_tables.md``, ``talk_tables.json``, ``memory_per_rank.png`` and
``time_per_iteration.png`` into ``--out`` (default ``docs/scaling``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import M_TRAIN, REPO, floor_operands, gemm_rate, run_python_mpi
from bench.common import MNIST_LAYERS as LAYERS
from bench.flop_model import iteration_flops_by_term

MB = 1024.0 * 1024.0
# ADMM.md, "The published results to beat" and "Cost per iteration and the
# memory model": time to convergence (s) of the C + GSL + MPI code, and the
# talk's observed memory per node.
PUBLISHED_TIME = {
    1: 2556.77,
    2: 1692.83,
    4: 1275.98,
    8: 1111.96,
    16: 1041.19,
    32: 953.96,
    64: 914.73,
}
PUBLISHED_MEMORY_OBSERVED = {1: 1914.98, 64: 76.35}
# Entry-wise work (z-updates, activations) per sample, float64, one core:
# docs/performance.md measured about 0.13 s for 60,000 samples.
ENTRYWISE_S_PER_SAMPLE = 0.13 / M_TRAIN


def talk_memory_mb(n_ranks: int) -> float:
    """The talk's memory model for one rank in MB: ``5.176 + 974.4 / N``."""
    return 5.176 + 974.4 / n_ranks


# ------------------------------------------------------------ per-rank probe


def rank_probe(out_prefix: str, argv: list[str]) -> int:
    """Run ``admm.train`` with ``argv`` inside an ``admm.PhaseTimer`` on this rank.

    Writes ``{out_prefix}.{rank}.json``: ``iterations`` timed, their total
    ``wall`` and process ``cpu`` seconds, and the part of each spent in the
    sums over samples across ranks (``reduce_wall``, ``reduce_cpu``: the
    Allreduce). Collective (the training run is).
    """
    import admm
    from admm import train
    from mpi4py import MPI

    with admm.PhaseTimer() as timer:
        status = train.main(argv)
    record = {
        "iterations": timer.calls["iteration"],
        "wall": timer.seconds["iteration"],
        "cpu": timer.cpu_seconds["iteration"],
        "reduce_wall": timer.seconds["reduce"],
        "reduce_cpu": timer.cpu_seconds["reduce"],
    }
    Path(f"{out_prefix}.{MPI.COMM_WORLD.Get_rank()}.json").write_text(json.dumps(record))
    return status


def probe_run(
    n_ranks: int,
    dtype: str,
    iterations: int,
    work: Path,
    *,
    threads: int = 1,
    data: str = "mnist",
    data_dir: str | None = None,
    timeout: float = 900.0,
) -> dict[str, Any]:
    """``mpiexec -n n_ranks python -m admm.train --data DATA`` through :func:`rank_probe`.

    ``threads`` BLAS threads per rank; ``data`` is the program's ``--data``
    (``mnist-sample`` for a quick check). Returns the metrics' ``start`` and
    ``done`` events, the wall ``time_per_iteration`` (list, from the
    metrics), and per rank the ``compute`` (process CPU seconds per
    iteration outside the Allreduce) and the ``reduce_wall`` seconds per
    iteration, means over all iterations of the run.
    """
    tag = f"{n_ranks}_{threads}_{dtype}"
    metrics, prefix = work / f"metrics_{tag}.jsonl", work / f"probe_{tag}"
    train_args = [
        "--data", data, "--iterations", str(iterations),
        "--eval-every", str(10 * iterations), "--dtype", dtype,
        "--metrics", str(metrics),
    ]  # fmt: skip
    if data_dir:
        train_args += ["--data-dir", data_dir]
    args = ["-m", "bench.scripts.talk_tables", "--rank-probe", str(prefix), "--", *train_args]
    env = {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    run_python_mpi(n_ranks, args, env=env, timeout=timeout)
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    cumulative = [0.0] + [r["time_s"] for r in lines if "event" not in r]
    probes = [json.loads(Path(f"{prefix}.{r}.json").read_text()) for r in range(n_ranks)]
    return {
        "start": next(r for r in lines if r.get("event") == "start"),
        "done": next(r for r in lines if r.get("event") == "done"),
        "time_per_iteration": [b - a for a, b in itertools.pairwise(cumulative)],
        "compute": [(p["cpu"] - p["reduce_cpu"]) / p["iterations"] for p in probes],
        "reduce_wall": [p["reduce_wall"] / p["iterations"] for p in probes],
    }


# ---------------------------------------------------------------- the driver


def run_one(n_ranks: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One training run on ``n_ranks`` ranks; returns its measured figures."""
    started = time.perf_counter()
    run = probe_run(
        n_ranks,
        args.dtype,
        args.iterations,
        work,
        data=args.data,
        data_dir=args.data_dir,
        timeout=args.timeout,
    )
    elapsed = time.perf_counter() - started
    start, done, per_iter = run["start"], run["done"], run["time_per_iteration"]
    # Iteration 1 (index 0) is left out of the wall time: it includes
    # first-touch page faults. The per-rank figures are means of all.
    keep = slice(1, None) if len(per_iter) > 1 else slice(None)
    return {
        "ranks": n_ranks,
        "samples_per_rank": max(start["samples_per_rank"]),
        "predicted_arrays_mb": start["predicted_bytes_per_rank"] / MB,
        "baseline_mb": start["baseline_rss_mb"],
        "predicted_mb": done["predicted_mb"],
        "talk_model_mb": talk_memory_mb(n_ranks),
        "peak_rss_mb": done["peak_rss_mb"],
        "wall_s_per_iter": statistics.median(per_iter[keep]),
        "compute_s_per_iter_max": max(run["compute"]),
        "compute_s_per_iter_mean": statistics.mean(run["compute"]),
        "allreduce_wall_s_per_iter": max(run["reduce_wall"]),
        "iteration_times": per_iter,
        "run_wall_s": elapsed,
    }


def model_seconds(n_ranks: int, rate: float, entry_s_per_sample: float) -> float:
    """Per-rank compute of one iteration predicted by the scaling model on
    this machine: the flops of the rank's samples and the small solves (the
    rows of ``W_l`` split over the ranks, the factors repeated) at ``rate``
    flop/s, plus the entry-wise work. Local."""
    m_local = -(-M_TRAIN // n_ranks)
    total = sum(iteration_flops_by_term(LAYERS, m_local, n_ranks).values())
    return total / rate + entry_s_per_sample * m_local


# The talk's hardware class, per node (assumptions, stated in docs/scaling.md):
# two 8-core Ivy Bridge E5-2650v2 at 2.6 GHz, 8 double flops per cycle and
# core (AVX add + multiply): 333 GFLOP/s peak; one rank per node with 16 BLAS
# threads.
NODE_PEAK = 2 * 8 * 2.6e9 * 8
NODE_GEMM_FRACTION = 0.6  # large products at 60% of peak
NODE_SMALL_RATES = (50e9, 100e9)  # the redundant n^3 factorisations and W solves
NODE_BANDWIDTH = 80e9  # bytes/s of the entry-wise passes (4 DDR3 channels per socket)
NODE_ALPHA = 2e-6  # Allreduce latency per message step, s
NODE_BETA_BYTES = 5e9  # link bandwidth, bytes/s (InfiniBand FDR class)
NODE_FIXED_S = 5e-3  # Python and kernel-call overhead per iteration
# Bytes per sample and iteration of the entry-wise passes, float64: each
# hidden z-update reads z and a and writes z, each activation reads z and
# writes a, the output update reads and writes z_L and lam.
ENTRYWISE_BYTES_PER_SAMPLE = 8 * (3 * 500 * 2 + 2 * 500 * 2 + 4 * 10)


def allreduce_seconds(n_nodes: int, message_bytes: float) -> float:
    """One Allreduce of ``message_bytes`` on ``n_nodes``: Rabenseifner's
    reduce-scatter + allgather, ``2 log2(N) alpha + 2 (N-1)/N bytes / B``."""
    if n_nodes == 1:
        return 0.0
    steps = 2 * np.log2(n_nodes)
    return float(
        steps * NODE_ALPHA + 2 * (n_nodes - 1) / n_nodes * message_bytes / NODE_BETA_BYTES
    )


def allgather_seconds(n_nodes: int, message_bytes: float) -> float:
    """One Allgather assembling ``message_bytes`` on ``n_nodes`` (recursive
    doubling or ring): ``log2(N) alpha + (N-1)/N bytes / B``."""
    if n_nodes == 1:
        return 0.0
    return float(
        np.log2(n_nodes) * NODE_ALPHA + (n_nodes - 1) / n_nodes * message_bytes / NODE_BETA_BYTES
    )


def node_model(n_nodes: int, small_rate: float) -> dict[str, float]:
    """Predicted seconds per float64 iteration of 784-500-500-10 on all of
    MNIST with ``n_nodes`` nodes of the talk's hardware class, by phase.

    "small solves" is the work that does not scale with the samples: the
    rows of ``W_l`` that this node solves (``ceil(n_l / N)`` of them) and
    what every node repeats (the Gram factors, ``W_2^T W_2``, its factor
    and inverse for the ``a_1`` update)."""
    m_local = -(-M_TRAIN // n_nodes)
    small = sum(iteration_flops_by_term(LAYERS, 0, n_nodes).values())
    scaling = sum(iteration_flops_by_term(LAYERS, m_local, n_nodes).values()) - small
    n = LAYERS
    # One message per layer: the cross term, plus the Gram for l > 1 (the
    # input Gram is reduced once, before the first iteration); then the
    # objective terms and the callback's peak-memory maximum (a few doubles).
    messages = [8 * (n[l] * n[l - 1] + (n[l - 1] ** 2 if l > 1 else 0)) for l in range(1, len(n))]
    parts = {
        "products": scaling / (NODE_GEMM_FRACTION * NODE_PEAK),
        "small solves": small / small_rate,
        "entry-wise": ENTRYWISE_BYTES_PER_SAMPLE * m_local / NODE_BANDWIDTH,
        "Allreduce": sum(allreduce_seconds(n_nodes, b) for b in messages)
        + 2 * allreduce_seconds(n_nodes, 64),
        # One Allgather of the solved rows of each W_l (float64).
        "Allgather": sum(
            allgather_seconds(n_nodes, 8 * n[l] * n[l - 1]) for l in range(1, len(n))
        ),
        "fixed": NODE_FIXED_S,
    }
    parts["total"] = sum(parts.values())
    return parts


def node_model_table() -> str:
    """Markdown: the node model for N = 1..64 beside the talk's speed-ups."""
    nodes = (1, 2, 4, 8, 16, 32, 64)
    lines = [
        "| N | samples / node | products ms | small solves ms (50 / 100 GFLOP/s) | entry-wise ms "
        "| Allreduce ms | Allgather ms | total ms (50 / 100) | speed-up (50 / 100) "
        "| talk's speed-up |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    slow1, fast1 = (node_model(1, r)["total"] for r in NODE_SMALL_RATES)
    for n_nodes in nodes:
        slow, fast = (node_model(n_nodes, r) for r in NODE_SMALL_RATES)
        lines.append(
            f"| {n_nodes} | {-(-M_TRAIN // n_nodes)} | {slow['products'] * 1e3:.1f} "
            f"| {slow['small solves'] * 1e3:.1f} / {fast['small solves'] * 1e3:.1f} "
            f"| {slow['entry-wise'] * 1e3:.1f} | {slow['Allreduce'] * 1e3:.2f} "
            f"| {slow['Allgather'] * 1e3:.2f} "
            f"| {slow['total'] * 1e3:.1f} / {fast['total'] * 1e3:.1f} "
            f"| {slow1 / slow['total']:.1f} / {fast1 / fast['total']:.1f} "
            f"| {PUBLISHED_TIME[1] / PUBLISHED_TIME[n_nodes]:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_outputs(rows: list[dict[str, Any]], rate: float, args: argparse.Namespace) -> str:
    """The two Markdown tables (and the model check); also the PNG plots."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    scale = 4 if args.dtype == "float32" else 8
    entry = ENTRYWISE_S_PER_SAMPLE * scale / 8
    md = [
        f"Memory per rank, {args.dtype}, MB (1 MB = 2^20 bytes). Ours: the program's model "
        "(arrays + the interpreter measured at start); the talk's model is float64 and counts "
        "weights, activations and outputs only.",
        "",
        "| N | samples / rank | our model: arrays | + interpreter | talk's model | observed peak "
        "| observed / our model | talk observed |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        pub = PUBLISHED_MEMORY_OBSERVED.get(r["ranks"])
        md.append(
            f"| {r['ranks']} | {r['samples_per_rank']} | {r['predicted_arrays_mb']:.1f} "
            f"| {r['predicted_mb']:.1f} | {r['talk_model_mb']:.1f} | {r['peak_rss_mb']:.1f} "
            f"| {r['peak_rss_mb'] / r['predicted_mb']:.2f} | {'' if pub is None else f'{pub:.1f}'} |"
        )
    base = rows[0]
    md += [
        "",
        f"Time per iteration, {args.dtype}, one BLAS thread per rank, {cores} cores "
        f"(N > {cores} is oversubscribed: read the per-rank compute column). Wall: median of "
        f"iterations 2..{args.iterations}; compute and Allreduce: mean of all. Published: the talk's time to convergence and its "
        "speed-up (a different quantity, for the shape only).",
        "",
        "| N | wall s / iter | per-rank compute s / iter (max, mean) | Allreduce wall s "
        "| speed-up (compute) | model s | model / measured | published s to conv. "
        "| published speed-up |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        pub = PUBLISHED_TIME.get(r["ranks"])
        model = model_seconds(r["ranks"], rate, entry)
        r["model_s"] = model
        over = " (oversubscribed)" if r["ranks"] > cores else ""
        md.append(
            f"| {r['ranks']}{over} | {r['wall_s_per_iter']:.2f} "
            f"| {r['compute_s_per_iter_max']:.2f}, {r['compute_s_per_iter_mean']:.2f} "
            f"| {r['allreduce_wall_s_per_iter']:.3f} "
            f"| {base['compute_s_per_iter_max'] / r['compute_s_per_iter_max']:.2f} "
            f"| {model:.2f} | {model / r['compute_s_per_iter_max']:.2f} "
            f"| {'' if pub is None else f'{pub:.0f}'} "
            f"| {'' if pub is None else f'{PUBLISHED_TIME[1] / pub:.2f}'} |"
        )
    md += [
        "",
        f"Model: flops of `bench/flop_model.py` for the rank's samples at the one-thread GEMM "
        f"rate measured in this run through the iteration's BLAS ({rate / 1e9:.1f} GFLOP/s, process CPU time), plus "
        f"{entry * 1e6:.2f} us per sample of entry-wise work (docs/performance.md).",
    ]
    text = "\n".join(md) + "\n"
    (out / "talk_tables.md").write_text(text)
    (out / "talk_tables.json").write_text(
        json.dumps({"dtype": args.dtype, "gemm_rate": rate, "rows": rows}, indent=1)
    )
    plot(rows, out, args.dtype)
    return text


def plot(rows: list[dict[str, Any]], out: Path, dtype: str) -> None:
    """``memory_per_rank.png`` and ``time_per_iteration.png`` in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ns = [r["ranks"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, [r["peak_rss_mb"] for r in rows], "o-", label="observed peak (max over ranks)")
    ax.plot(ns, [r["predicted_mb"] for r in rows], "s--", label="our model (+ interpreter)")
    ax.plot(ns, [r["talk_model_mb"] for r in rows], "^:", label="talk's model 5.176 + 974.4/N")
    pub = [(n, v) for n, v in PUBLISHED_MEMORY_OBSERVED.items() if n <= max(ns)]
    if pub:
        ax.plot(*zip(*pub, strict=True), "kx", ms=9, label="talk observed")
    ax.set(xscale="log", xlabel="ranks N", ylabel="MB per rank", xticks=ns, xticklabels=ns)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title(f"Memory per rank, MNIST 784-500-500-10, {dtype}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "memory_per_rank.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, [r["wall_s_per_iter"] for r in rows], "o-", label="wall s / iteration")
    ax.plot(ns, [r["compute_s_per_iter_max"] for r in rows], "s-", label="per-rank compute")
    ax.plot(ns, [r["model_s"] for r in rows], "k--", label="scaling model (this machine)")
    t1 = rows[0]["compute_s_per_iter_max"]
    ax.plot(ns, [t1 / PUBLISHED_TIME[1] * PUBLISHED_TIME[n] for n in ns if n in PUBLISHED_TIME],
            "^:", label="talk, scaled to our N = 1")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="ranks N", ylabel="seconds", xticks=ns)
    ax.set_xticklabels(ns)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks([0.25, 0.5, 1, 2, 4, 8, 16, 32])
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title(f"Time per iteration, {dtype}, 1 BLAS thread per rank")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "time_per_iteration.png", dpi=100)
    plt.close(fig)


def ranks_list(text: str) -> list[int]:
    """``1,2,4,8`` -> ``[1, 2, 4, 8]`` (positive integers)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"need positive integers separated by commas, got {text!r}"
        )
    return values


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--node-model"]:
        print(node_model_table(), end="")
        return 0
    if argv[:1] == ["--rank-probe"]:
        if len(argv) < 3 or argv[2] != "--":
            raise ValueError("usage: --rank-probe PREFIX -- TRAIN_ARGS...")
        return rank_probe(argv[1], argv[3:])
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="--node-model alone prints the model for 1..64 nodes of the talk's hardware.",
    )
    p.add_argument("--ranks", type=ranks_list, default=[1, 2, 4, 8], help="N to run, e.g. 1,2,4,8")
    p.add_argument("--iterations", type=int, default=3, help="per run; the first is left out")
    p.add_argument(
        "--data",
        default="mnist",
        help="the program's --data: mnist, or mnist-sample for a quick check of the script "
        "(the model columns assume full MNIST)",
    )
    p.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--out", default=str(REPO / "docs" / "scaling"), help="output folder")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    p.add_argument(
        "--from-json",
        default=None,
        metavar="PATH",
        help="no runs: redraw the tables and plots from a talk_tables.json written before",
    )
    args = p.parse_args(argv)
    if args.iterations < 2:
        raise ValueError(
            f"--iterations must be at least 2 (iteration 1 is left out), got {args.iterations}"
        )
    if args.from_json is not None:
        saved = json.loads(Path(args.from_json).read_text())
        args.dtype = saved["dtype"]
        args.iterations = len(saved["rows"][0]["iteration_times"])
        print(write_outputs(saved["rows"], saved["gemm_rate"], args))
        return 0
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.ranks:
            rows.append(run_one(n, args, Path(tmp)))
            r = rows[-1]
            print(f"N={n}: wall {r['wall_s_per_iter']:.2f} s/iter, compute "
                  f"{r['compute_s_per_iter_max']:.2f}, peak {r['peak_rss_mb']:.0f} MB "
                  f"(run {r['run_wall_s']:.0f} s)", flush=True)  # fmt: skip
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        # Flop/s of the floor's product, (60000 x 784)(784 x 500), in CPU time.
        rate = gemm_rate(*floor_operands(args.dtype), clock=time.process_time) * 1e9
    print(write_outputs(rows, rate, args))
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
