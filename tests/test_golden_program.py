"""``python -m admm.train`` against transcripts of the code before issue 14's redesign.

``tests/golden/<family>/program/`` holds four runs on 2 ranks recorded by
``tests/golden/make_golden.py`` (``run_program``): their stdout, metrics,
saved models and the checkpoint the "half" run wrote at iteration 2. Here
the same commands run again and must give the same output, line for line
and key for key, once the numbers that are not results are masked (times,
memory, the data file's path), and the same weights bit for bit; and the
"full" run resumed from a copy of that checkpoint must end on the same
weights as the uninterrupted one.

``tests/golden/program-flags.json`` (written by running this file, on the
same code as the transcripts) holds every flag with its group, default,
choices and help, the values parsed from a few command lines (presets
applied) and the usage errors of a few bad ones; ``program-failures.json``
the exit status and messages of runs that fail (bad input, an overflow).

Bits are only comparable within one OpenBLAS kernel family (its kernels
round differently), so on a host whose family has no golden folder only the
structure (lines, keys, exit status) is compared, and the weights with a
tolerance.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from golden import make_golden
from mpirun import run_mpi

GOLDEN = Path(__file__).resolve().parent / "golden"
DATA = GOLDEN / "data.npz"
RUNS = ("full", "half", "best", "deterministic32")
TIMEOUT = 120
#: The weights' tolerance on a host of another kernel family (float64 runs).
RTOL_OTHER_FAMILY = 1e-6

#: Metrics values that measure the host, not the training: compared by key only.
UNMEASURED = {
    "time_s",
    "refit_time_s",
    "peak_rss_mb",
    "baseline_rss_mb",
    "predicted_mb",
    "predicted_bytes_per_rank",
}


def _family_folder() -> tuple[Path, bool]:
    """The golden folder to compare with, and whether it is this host's family."""
    own = GOLDEN / make_golden.family() / "program"
    if own.is_dir():
        return own, True
    others = sorted(p for p in GOLDEN.glob("*/program") if p.is_dir())
    return others[0], False


FOLDER, SAME_FAMILY = _family_folder()
COMMANDS: dict[str, list[str]] = json.loads((FOLDER / "command.json").read_text())


def recorded_data_path(args: list[str]) -> str:
    """The ``--data`` path the golden run was given (the recording's checkout)."""
    return args[args.index("--data") + 1]


#: Presets renamed since the record (issue 16: the best preset of the record,
#: which deskews, is ``digits`` now; ``best`` no longer deskews).
RENAMED_PRESETS = {"best": "digits"}
#: Flags that give a preset's record its recorded options back, where the
#: preset changed since (issue 16, ninth round: ``digits`` reads ``W_L``
#: out in its refit).
PRESET_AS_RECORDED = {"digits": ["--readout-iterations", "0"]}


def command(name: str) -> list[str]:
    """The golden run ``name``'s flags, on this checkout's copy of the data
    (and a renamed preset under its new name)."""
    args = list(COMMANDS[name])
    args[args.index("--data") + 1] = str(DATA)
    if "--preset" in args:
        i = args.index("--preset") + 1
        args[i] = RENAMED_PRESETS.get(args[i], args[i])
        args += PRESET_AS_RECORDED.get(args[i], [])
    return args


def _as_recorded(stdout: str) -> str:
    """The header line of a renamed preset under the name of the record."""
    for old, new in RENAMED_PRESETS.items():
        stdout = stdout.replace(f"\n  preset {new}: ", f"\n  preset {old}: ")
    return stdout


def train(name: str, cwd: Path, *extra: str):
    env = {"OPENBLAS_NUM_THREADS": "1", "ADMM_NUM_THREADS": "1"}
    return run_mpi(
        2, ["-m", "admm.train", *command(name), *extra], timeout=TIMEOUT, env=env, cwd=cwd
    )


# Each pattern matches one kind of line only and masks only its measured
# figures; every other character of the line must match the golden one.
_NUM = r"\d+\.\d+"
_MASKS = [
    # Progress line "     1      0.00   9.007567e+01   2.1222e+01    0.3750": time_s.
    (re.compile(rf"^( *\d+ )( *{_NUM})( +\S+e[-+]\d+ +\S+e[-+]\d+ +\S+)$"), r"\1<time>\3"),
    (
        re.compile(
            rf"^(  predicted memory per rank: ){_NUM}( MB \(){_NUM}( MB of arrays \+ ){_NUM}"
            r"( MB interpreter and libraries at start\))$"
        ),
        r"\1<MB>\2<MB>\3<MB>\4",
    ),
    (
        re.compile(rf"^(peak memory per rank: ){_NUM}( MB \(max over ranks; predicted ){_NUM}"),
        r"\1<MB>\2<MB>",
    ),
    (re.compile(rf"^(time to [^:]+: ){_NUM}( s)"), r"\1<s>\2"),
    (re.compile(rf"^(time to .* \(){_NUM}( s per iteration\))"), r"\1<s>\2"),
    (
        re.compile(rf"^(refit: every W_l re-solved on the forward features in ){_NUM}( s)"),
        r"\1<s>\2",
    ),
]


def masked(text: str, data_path: str, exact: bool) -> list[str]:
    """The lines of a transcript with the host's measurements and the data path masked.

    Not ``exact`` (another kernel family): every decimal number is masked, since
    that family's rounding shows in the printed results; the rest must still match.
    """
    lines = []
    for line in text.replace(data_path, "<data>").splitlines():
        for pattern, replacement in _MASKS:
            line = pattern.sub(replacement, line)
        if not exact:
            line = re.sub(r"\d+\.\d+(e[-+]\d+)?", "<n>", line)
        lines.append(line)
    return lines


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_event(got: dict, want: dict, data_path: str, exact: bool) -> None:
    """The same keys (a JSON object's order is no part of the format: the run
    configuration now follows the parameter table's order); the same values,
    but for the host's measurements."""
    assert sorted(got) == sorted(want), (got, want)
    for key, value in want.items():
        if key in ("data", "data_source"):
            assert got[key] == (str(DATA) if value == data_path else value), key
        elif key == "predicted_breakdown":
            assert list(got[key]) == list(value), key
        elif key not in UNMEASURED and exact:
            assert got[key] == value, (key, got[key], value)


def assert_same_weights(path: Path, golden: Path, exact: bool) -> None:
    """The model files have the same fields, and the same weights (bit for bit if ``exact``)."""
    with np.load(path) as got, np.load(golden) as want:
        assert sorted(got.files) == sorted(want.files)
        for key in want.files:
            if not (re.fullmatch(r"W\d+", key) or key == "input_mean"):
                continue
            assert got[key].dtype == want[key].dtype, key
            if exact:
                np.testing.assert_array_equal(got[key], want[key], err_msg=key, strict=True)
            else:
                np.testing.assert_allclose(got[key], want[key], rtol=RTOL_OTHER_FAMILY)


def check_run(name: str, cwd: Path, exact: bool) -> None:
    """Run golden run ``name`` in ``cwd`` and compare everything it wrote."""
    proc = train(name, cwd)
    args = COMMANDS[name]
    data_path = recorded_data_path(args)
    want_stdout = (FOLDER / f"{name}.stdout").read_text()
    assert masked(_as_recorded(proc.stdout), str(DATA), exact) == masked(
        want_stdout, data_path, exact
    )
    metrics = args[args.index("--metrics") + 1]
    got, want = read_metrics(cwd / metrics), read_metrics(FOLDER / metrics)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_same_event(g, w, data_path, exact)
    if "--save" in args:
        model = args[args.index("--save") + 1]
        assert_same_weights(cwd / model, FOLDER / model, exact)


def check_resume(cwd: Path, exact: bool) -> None:
    """The "full" run resumed from the "half" run's checkpoint ends on "full"'s weights."""
    shutil.copytree(FOLDER / "checkpoint", cwd / "from-half")
    proc = train("full", cwd, "--resume", "from-half")
    assert "  resumed from from-half at iteration 2\n" in proc.stdout, proc.stdout
    model = "full.npz"
    assert_same_weights(cwd / model, FOLDER / model, exact)


OTHER_FAMILY = (
    f"no golden transcripts for this host's OpenBLAS kernel family "
    f"({make_golden.family()}): compared with {FOLDER.parent.name}'s by structure "
    f"(lines with numbers masked, metrics keys) and weights to rtol {RTOL_OTHER_FAMILY} only"
)
SAME = "this host's kernel family has golden transcripts: compared bit for bit instead"


@pytest.mark.mpi
@pytest.mark.parametrize("name", RUNS)
def test_program_as_recorded(name, tmp_path):
    if not SAME_FAMILY:
        pytest.skip(OTHER_FAMILY)
    check_run(name, tmp_path, exact=True)


@pytest.mark.mpi
def test_resume_as_recorded(tmp_path):
    if not SAME_FAMILY:
        pytest.skip(OTHER_FAMILY)
    check_resume(tmp_path, exact=True)


@pytest.mark.mpi
@pytest.mark.parametrize("name", RUNS)
def test_program_structure_other_family(name, tmp_path):
    if SAME_FAMILY:
        pytest.skip(SAME)
    check_run(name, tmp_path, exact=False)


@pytest.mark.mpi
def test_resume_other_family(tmp_path):
    if SAME_FAMILY:
        pytest.skip(SAME)
    check_resume(tmp_path, exact=False)


# ------------------------------------------------------------ the flags

#: Command lines whose parsed values (presets applied) are recorded.
ARGVS = (
    [],
    ["--preset", "best"],
    ["--preset", "best", "--beta", "0.5", "--no-refit", "--iterations", "7"],
    ["--beta", "0.5,1,2", "--rho", "1e-3", "--rho-final", "0.5", "--rho-decay-iterations", "4"],
    ["--layers", "16,12,4", "--dtype", "float32", "--deterministic", "--tol", "1e-4"],
)
#: Bad command lines whose one-line usage errors are recorded.
BAD_ARGVS = (
    ["--beta", "0"],
    ["--gamma", "1,x"],
    ["--layers", "16"],
    ["--warmup", "-1"],
    ["--iterations", "0"],
    ["--rho-final", "1.5"],
    ["--rho-final", "0.5"],
    ["--inertia", "1"],
    ["--beta-growth", "0.9"],
    ["--tol", "nan"],
)
# (Not argparse's own messages, such as an invalid choice: their wording
# changes between Python versions.)
FLAGS = GOLDEN / "program-flags.json"


def _renamed_argv(argv: list[str]) -> list[str]:
    """``argv`` with a renamed preset under its new name."""
    return [
        RENAMED_PRESETS.get(a, a) if i and argv[i - 1] == "--preset" else a
        for i, a in enumerate(argv)
    ]


def flags_record() -> dict:
    """Every flag of ``python -m admm.train`` (group, names, type, default, choices,
    help) and the values parsed from :data:`ARGVS`, as JSON-able data."""
    from admm.train import UsageError, build_parser, parse_args

    parser = build_parser()
    flags = []
    for group in parser._action_groups:
        for action in group._group_actions:
            flags.append(
                {
                    "group": group.title,
                    "flags": action.option_strings,
                    "dest": action.dest,
                    "default": repr(action.default),
                    "choices": None if action.choices is None else list(action.choices),
                    "nargs": action.nargs,
                    "metavar": action.metavar,
                    # Python < 3.14's BooleanOptionalAction appends this itself.
                    "help": (action.help or "").replace(" (default: %(default)s)", ""),
                }
            )
    renamed = {f"'{new}'": f"'{old}'" for old, new in RENAMED_PRESETS.items()}
    parsed = [
        {
            key: renamed.get(repr(value), repr(value)) if key == "preset" else repr(value)
            for key, value in sorted(vars(parse_args(_renamed_argv(argv))).items())
        }
        for argv in ARGVS
    ]
    errors = []
    for argv in BAD_ARGVS:
        with pytest.raises(UsageError) as exc:
            parse_args(argv)
        errors.append(str(exc.value))
    return {
        "prog": parser.prog,
        "description": parser.description,
        "flags": flags,
        "parsed": parsed,
        "errors": errors,
    }


#: Flags added since the record, and flags whose help changed (deliberately).
ADDED_FLAGS = {
    "block_size",  # --block-size: the table's option now has its flag
    "data_names",  # names of the arrays in .npz and HDF5 files
    "negative_slope",  # issue 15: leaky_relu's slope
    "resume_if_present",  # issue 17: requeued batch jobs
    "task",  # issue 15: class labels or real targets (regression)
    "validation",  # issue 16: the validation split
    "patience",  # issue 16: early stopping on it
    "refit_every",  # issue 16: the forward refit during training
    "refit_first",  # issue 16: and the iteration of its first refit
    "refit_input_layer",  # issue 16: whether the refit re-solves W_1
    "start_from_targets",  # issue 16: z_L from the targets before iteration 1
    "subset_iterations",  # issue 16: a start trained on a subset of the samples
    "subset_stride",  # issue 16: and which subset
    "readout_iterations",  # issue 16: W_L fitted to the loss in the refits
    "readout_beta",  # issue 16: its penalty
    "readout_ridge",  # issue 16: its ridge
    "label_smoothing",  # the cross-entropy's label smoothing (PyTorch's name)
    "input_power",  # issue 16: power normalisation of the inputs
    "normalize_inputs",  # issue 16: unit-norm input samples
    "spectral_power",  # issue 16: principal directions of the inputs rescaled
}
CHANGED_HELP = {
    "deterministic",  # it names --block-size instead of the default 256
    "data",  # it names .h5 files; its metavar says PATH instead of PATH.npz
    "activation",  # the activations of issue 15
    "loss",  # the losses of issue 15
    "preset",  # issue 16: fast and digits, best without deskewing; issue 15: binary
    "eval_every",  # issue 16: counted from --refit-first
}
#: Flags whose choices grew (deliberately): the old ones must stay.
CHANGED_CHOICES = {"preset", "activation", "loss"}


def test_flags_as_recorded():
    got, want = flags_record(), json.loads(FLAGS.read_text())
    flags = [f for f in got["flags"] if f["dest"] not in ADDED_FLAGS]
    for f in flags:
        if f["dest"] in CHANGED_HELP:
            old = next(w for w in want["flags"] if w["dest"] == f["dest"])
            f["help"], f["metavar"] = old["help"], old["metavar"]
        if f["dest"] in CHANGED_CHOICES:
            old = next(w for w in want["flags"] if w["dest"] == f["dest"])
            assert set(old["choices"]) <= set(f["choices"]), f["dest"]
            f["choices"] = old["choices"]
    parsed = [{k: v for k, v in p.items() if k not in ADDED_FLAGS} for p in got["parsed"]]
    assert {**got, "flags": flags, "parsed": parsed} == want


# ---------------------------------------------------------- the failures

_COMMON = ["--data", "{data}", "--layers", "16,12,8,4", "--warmup", "2", "--iterations", "3"]
#: Runs that fail: bad input (exit status 2) and a numerical failure (3).
#: ``{data}`` is tests/golden/data.npz; ``{tmp}`` the run's folder, which also
#: holds the data of :func:`derived_data`.
FAILURES = {
    "layers_mismatch": ["--data", "{data}", "--layers", "10,4"],
    "not_square_for_deskew": ["--data", "{tmp}/f20.npz", "--layers", "20,4", "--deskew"],
    "missing_data": ["--data", "{tmp}/nope.npz", "--layers", "16,4"],
    "save_folder_missing": [*_COMMON, "--save", "no/such/dir/model.npz"],
    "metrics_is_a_folder": [*_COMMON, "--metrics", "."],
    "checkpoint_is_a_file": [*_COMMON, "--checkpoint", "{data}"],
    "bad_value": [*_COMMON, "--beta", "-1"],
    "beta_per_layer_count": [*_COMMON, "--beta", "0.5,1"],
    "resume_missing": [*_COMMON, "--resume", "nothing-here"],
    "overflow": [
        "--data", "{tmp}/huge.npz", "--layers", "16,8,4", "--activation", "relu", "--loss",
        "squared", "--beta", "1e30", "--gamma", "1e30", "--rho", "1", "--warmup", "3",
        "--iterations", "8", "--checkpoint", "ck", "--checkpoint-every", "1", "--save",
        "model.npz", "--metrics", "run.jsonl",
    ],
}  # fmt: skip
FAILURES_FILE = GOLDEN / "program-failures.json"


def derived_data(folder: Path) -> None:
    """Data made from tests/golden/data.npz: 20 features (not a square image) and
    entries near 1e150 (the third multiplier update overflows)."""
    with np.load(DATA) as f:
        d = dict(f)
    wide = {k: np.hstack([d[k], d[k][:, :4]]) for k in ("X_train", "X_test")}
    np.savez(folder / "f20.npz", **{**d, **wide})
    huge = {k: d[k] * 1e150 for k in ("X_train", "X_test")}
    np.savez(folder / "huge.npz", **{**d, **huge})


def failure_record(name: str, folder: Path) -> dict:
    """Exit status, stdout, stderr and last metrics event of failing run ``name``
    in ``folder``, with paths and every decimal number of stdout masked."""
    derived_data(folder)
    args = [a.format(data=DATA, tmp=folder) for a in FAILURES[name]]
    env = {"OPENBLAS_NUM_THREADS": "1", "ADMM_NUM_THREADS": "1"}
    proc = run_mpi(
        2, ["-m", "admm.train", *args], timeout=TIMEOUT, env=env, cwd=folder, check=False
    )

    def clean(text: str) -> list[str]:
        return masked(text.replace(str(folder), "<tmp>"), str(DATA), exact=False)

    metrics = folder / "run.jsonl"
    last = read_metrics(metrics)[-1] if metrics.exists() else None
    return {
        "status": proc.returncode,
        "stdout": clean(proc.stdout),
        "stderr": clean(proc.stderr),
        "last_event": last,
    }


@pytest.mark.mpi
@pytest.mark.parametrize("name", FAILURES)
def test_failure_as_recorded(name, tmp_path):
    assert failure_record(name, tmp_path) == json.loads(FAILURES_FILE.read_text())[name]


if __name__ == "__main__":
    # Record the flags and the failures (only on the code the others are held to).
    import tempfile

    FLAGS.write_text(json.dumps(flags_record(), indent=1) + "\n")
    failures = {}
    for name in FAILURES:
        with tempfile.TemporaryDirectory() as folder:
            failures[name] = failure_record(name, Path(folder))
    FAILURES_FILE.write_text(json.dumps(failures, indent=1) + "\n")
