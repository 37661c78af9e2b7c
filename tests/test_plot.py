"""``python -m admm.plot``: curves of the golden metrics files, and its one-line errors."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from admm import plot
from admm.plot import PlotError, plot_runs, read_metrics

GOLDEN = Path(__file__).resolve().parent / "golden" / "SkylakeX" / "program"
RUNS = [GOLDEN / "full.jsonl", GOLDEN / "half.jsonl", GOLDEN / "deterministic32.jsonl"]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk of a PNG file (checks the signature)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", head
    return struct.unpack(">II", head[16:24])


def run_plot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="TkAgg", DISPLAY="")  # a display backend must not matter
    return subprocess.run(
        [sys.executable, "-m", "admm.plot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_read_metrics_golden():
    run = read_metrics(GOLDEN / "full.jsonl")
    assert run.label == "full" and run.iteration.tolist() == [1, 2, 3, 4]
    assert run.objective[0] == pytest.approx(90.07566579008622)
    assert run.start["event"] == "start" and run.done["stop_reason"] == "iterations"
    assert np.all(np.diff(run.time_s) > 0)
    # null (not measured) becomes NaN
    det = read_metrics(GOLDEN / "deterministic32.jsonl", label="det")
    assert det.label == "det" and np.isnan(det.test_accuracy[0])


def test_plot_runs_writes_a_png_of_the_expected_size(tmp_path):
    out = plot_runs(RUNS, tmp_path / "curves.png", labels=["a", "b", "c"])
    assert out == tmp_path / "curves.png"
    w, h = png_size(out)
    assert (w, h) == (round(plot.FIGSIZE[0] * plot.DPI), round(plot.FIGSIZE[1] * plot.DPI))
    import matplotlib.image

    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (h, w)
    # Something was drawn: many distinct colours, not a blank canvas.
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 50
    small = plot_runs(RUNS[:1], tmp_path / "small.png", figsize=(4, 3), dpi=50)
    assert png_size(small) == (200, 150)


def test_command_line_overlays_runs(tmp_path):
    result = run_plot(*map(str, RUNS), "-o", "c.png", "--label", "x", "--label", "y",
                      "--label", "z", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert png_size(tmp_path / "c.png") == (1200, 700)
    assert "wrote c.png" in result.stdout


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, pattern of the one-line message)."""
    (tmp_path / "not-json.jsonl").write_text('{"event": "start"}\nhello\n')
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "other.jsonl").write_text(json.dumps({"accuracy": 0.5}) + "\n")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00\x81")
    (tmp_path / "folder.jsonl").mkdir()
    return {
        "missing": (tmp_path / "nothing.jsonl", r"nothing\.jsonl: file not found"),
        "not JSON": (tmp_path / "not-json.jsonl", r"not-json\.jsonl: line 2 is not JSON"),
        "empty": (tmp_path / "empty.jsonl", r"empty\.jsonl: no iteration records: not a metrics"),
        "other JSON": (tmp_path / "other.jsonl", r"other\.jsonl: line 1 has no iteration number"),
        "not an object": (tmp_path / "list.jsonl", r"list\.jsonl: line 1 is not a JSON object"),
        "binary": (tmp_path / "binary.jsonl", r"binary\.jsonl: cannot read"),
        "a folder": (tmp_path / "folder.jsonl", r"folder\.jsonl: cannot read: Is a directory"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "not JSON", "empty", "other JSON", "not an object", "binary", "a folder"]
)
def test_bad_metrics_files(tmp_path, case):
    path, pattern = bad_files(tmp_path)[case]
    with pytest.raises(PlotError, match=pattern) as info:
        plot_runs([RUNS[0], path], tmp_path / "out.png")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out.png").exists()


def test_command_line_errors(tmp_path):
    files = bad_files(tmp_path)
    for path, pattern in files.values():
        result = run_plot(str(RUNS[0]), str(path), "-o", "out.png", cwd=tmp_path)
        assert result.returncode == 1, result
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("admm.plot: error: "), result.stderr
        assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "out.png").exists()
    # Labels must match the files; an unwritable output and an unknown format are one line too.
    for args, pattern in (
        ([str(RUNS[0]), "--label", "a", "--label", "b"], "2 labels given for 1 metrics files"),
        ([str(RUNS[0]), "-o", str(tmp_path / "no" / "dir" / "c.png")], "No such file"),
        ([str(RUNS[0]), "-o", "c.notaformat"], r"c\.notaformat: .*not supported"),
    ):
        result = run_plot(*args, cwd=tmp_path)
        lines = result.stderr.splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert re.search(pattern, lines[0]), lines[0]


def test_without_matplotlib(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(PlotError, match=r"needs matplotlib: pip install 'admm\[plot\]'"):
        plot_runs(RUNS[:1], tmp_path / "c.png")
