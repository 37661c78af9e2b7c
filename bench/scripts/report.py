"""Turn a pytest-benchmark JSON file into the floor / NumPy comparison table.

    python -m bench.scripts.report .benchmarks/.../0001_*.json  # or --benchmark-json output

For each precision: our iteration time, the matrix-multiply floor (the
iteration's flop count divided by the GEMM rate measured in the same run, in
the same precision, through the same BLAS as the iteration), their ratio,
and the time of the plain NumPy reference iteration with its ratio to ours.
Times are the best round (``min``), the least disturbed by other load; the
mean is shown beside it. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _by_name(benchmarks: list[dict]) -> dict[str, dict]:
    return {b["name"]: b for b in benchmarks}


def table(data: dict) -> str:
    """The Markdown table of one benchmark JSON document (``--benchmark-json``)."""
    runs = _by_name(data["benchmarks"])
    reference = runs.get("test_iteration_numpy_reference")
    lines = [
        "| dtype | ours, best (mean) s | GEMM GFLOP/s (best) | floor s | ours / floor "
        "| NumPy reference, best (mean) s | reference / ours |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for dtype in ("float64", "float32"):
        ours = runs.get(f"test_iteration_admm[{dtype}]")
        gemm = runs.get(f"test_gemm_rate[admm_core-{dtype}]")
        if ours is None or gemm is None:
            continue
        flops = ours["extra_info"]["flops"]
        rate = gemm["extra_info"]["flops"] / gemm["stats"]["min"]
        floor = flops / rate
        t_min, t_mean = ours["stats"]["min"], ours["stats"]["mean"]
        ref = "n/a | n/a"
        if reference is not None:
            r_min, r_mean = reference["stats"]["min"], reference["stats"]["mean"]
            ref = f"{r_min:.2f} ({r_mean:.2f}) | {r_min / t_min:.2f}"
        lines.append(
            f"| {dtype} | {t_min:.2f} ({t_mean:.2f}) | {rate / 1e9:.0f} | {floor:.2f} "
            f"| {t_min / floor:.2f} | {ref} |"
        )
    info = data.get("machine_info", {})
    lines.append("")
    lines.append(
        f"Flop count {flops:.3g} per iteration; size {info.get('admm_bench_size')}, "
        f"BLAS threads {info.get('admm_bench_threads')}, CPU {info.get('cpu', {}).get('brand_raw')}, "
        f"run {data.get('datetime')}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="a pytest-benchmark JSON file")
    args = parser.parse_args(argv)
    print(table(json.loads(args.json.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
