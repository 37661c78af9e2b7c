"""The one table of every option of the method: :class:`Config`.

Each option is declared once, as a field of the frozen dataclass
:class:`Config`: its name, type, default, constraint, one line of help and,
for options added after files were first written, the value it had before it
existed. Everything else is derived from the table:

- validation (:meth:`Config.__post_init__`, the same messages for the library
  and the program),
- the command-line flags and their help (:func:`add_flags`),
- the presets, as overrides of it (:mod:`admm.presets`),
- the model file's options (:meth:`Config.to_model_arrays`,
  :meth:`Config.from_model_arrays`),
- the checkpoint's run configuration and its comparison on resume
  (:meth:`Config.run_config`, :func:`run_config_differences`),
- the run header (:meth:`Config.describe`),
- the options section of :class:`admm.ADMMNetwork`'s docstring
  (:func:`options_doc`).

To add an option: add its field here (with ``legacy`` when files written
before it must still load), use it where it acts, and test it. Nothing else
needs to know its name.

Per-layer options (``beta``, ``gamma``, ``rho``, ``beta_max``, ``gamma_max``)
hold what the user gave, a number or a tuple; :meth:`Config.per_layer` gives
one value per weight or hidden layer once the layers are known.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import activations, losses

__all__ = [
    "DTYPES",
    "RHO_RELATIVE",
    "Config",
    "add_flags",
    "options_doc",
    "run_config_differences",
]

DTYPES = ("float64", "float32")

#: Default ridge, relative to the mean diagonal entry of each layer's Gram
#: matrix at initialisation (the Gram scales with the number of samples, so an
#: absolute default would not fit every data set). The same in both
#: precisions, so float32 solves the same problem: its Grams are factored in
#: float64 (on MNIST float32 Grams stay positive definite with it).
RHO_RELATIVE = 1e-6

#: Samples per block of the split-independent sums (``deterministic=True``):
#: ranks must hold whole blocks, so it bounds the load imbalance; smaller
#: blocks cost more tree additions (docs/determinism.md).
BLOCK_SIZE = 256

_NO_LEGACY = object()


# ------------------------------------------------------------- constraints


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


class Constraint:
    """What values an option takes: checks and normalises them, parses a flag."""

    #: ``metavar`` of the flag (None: argparse's default).
    metavar: str | None = None

    def check(self, name: str, value: Any) -> Any:
        """The normalised value, or ``ValueError`` naming ``name`` and the problem."""
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """The value of a command-line argument (``argparse.ArgumentTypeError``)."""
        raise NotImplementedError

    def flag_kwargs(self) -> dict[str, Any]:
        """``add_argument`` keywords besides the flag, default and help."""
        kwargs: dict[str, Any] = {"type": self.parse}
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        return kwargs


def _parse_number(text: str, accept: Callable[[float], bool], what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and accept(value)):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


class Flag(Constraint):
    """True or False; ``--name`` / ``--no-name`` on the command line."""

    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{name} must be True or False, got {value!r}")
        return bool(value)

    def flag_kwargs(self) -> dict[str, Any]:
        return {"action": argparse.BooleanOptionalAction}


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer of at least ``low``."""

    low: int
    metavar: str | None = None

    @property
    def what(self) -> str:
        return "a non-negative integer" if self.low == 0 else "a positive integer"

    def check(self, name: str, value: Any) -> int:
        if not _is_integer(value) or value < self.low:
            raise ValueError(f"{name} must be {self.what}, got {value!r}")
        return int(value)

    def parse(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = self.low - 1
        if value < self.low:
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {text!r}")
        return value


@dataclass(frozen=True)
class Interval(Constraint):
    """A finite number in an interval, ``what`` naming it (``"a number in [0, 1)"``)."""

    accept: Callable[[float], bool]
    what: str
    metavar: str | None = None

    def check(self, name: str, value: Any) -> float:
        if not (_is_number(value) and math.isfinite(float(value)) and self.accept(float(value))):
            raise ValueError(f"{name} must be {self.what}, got {value!r}")
        return float(value)

    def parse(self, text: str) -> float:
        return _parse_number(text, self.accept, self.what)


@dataclass(frozen=True)
class Growth(Constraint):
    """A continuation factor: a positive finite number of at least 1."""

    metavar: str | None = "F"

    def check(self, name: str, value: Any) -> float:
        number = PerLayer("weights").check(name, value)
        if not isinstance(number, float):
            raise ValueError(f"{name} must be a scalar or 1 values, got {value!r}")
        if number < 1.0:
            raise ValueError(f"{name} must be at least 1 (continuation tightens), got {value!r}")
        return number

    def parse(self, text: str) -> float:
        return _parse_number(text, lambda v: v >= 1, "a number >= 1")


@dataclass(frozen=True)
class PerLayer(Constraint):
    """Positive finite numbers: one for every layer of ``kind`` or a scalar for all.

    ``kind`` is ``"weights"`` (``L`` values, ``l = 1..L``) or ``"hidden"``
    (``L - 1`` values); ``optional`` admits None. The value is kept as given
    (a float or a tuple); :meth:`Config.per_layer` checks the count.
    """

    kind: str
    optional: bool = False
    metavar: str | None = None

    def check(self, name: str, value: Any) -> float | tuple[float, ...] | None:
        if value is None and self.optional:
            return None
        try:
            values = np.atleast_1d(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be positive and finite, got {value!r}") from None
        if values.ndim != 1:
            raise ValueError(f"{name} must be a scalar or one value per layer, got {value!r}")
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
        if np.ndim(value) == 0:
            return float(values[0])
        return tuple(float(v) for v in values)

    def parse(self, text: str) -> float | list[float]:
        values = [
            _parse_number(part, lambda v: v > 0, "a positive number") for part in text.split(",")
        ]
        return values[0] if len(values) == 1 else values

    def resolve(
        self, name: str, value: Any, layers: int, given: Any = None
    ) -> tuple[float, ...] | None:
        """One value per layer of this kind, ``layers`` weight layers in all
        (``given``: the value as the user wrote it, for the message)."""
        count = layers if self.kind == "weights" else layers - 1
        if value is None:
            return None
        values = (value,) if isinstance(value, float) else tuple(value)
        if len(values) not in (1, count):
            shown = value if given is None else given
            raise ValueError(f"{name} must be a scalar or {count} values, got {shown!r}")
        return values * count if len(values) == 1 else values


@dataclass(frozen=True)
class Choice(Constraint):
    """One of the names ``names()`` returns (a registry), ``kind`` naming the set."""

    names: Callable[[], Sequence[str]]
    kind: str

    def check(self, name: str, value: Any) -> str:
        choices = tuple(self.names())
        if value not in choices:
            raise ValueError(f"unknown {self.kind} {value!r}; expected one of {choices}")
        return str(value)

    def parse(self, text: str) -> str:
        return text

    def flag_kwargs(self) -> dict[str, Any]:
        return {"choices": tuple(self.names())}


class DType(Constraint):
    """float64 or float32, given as a name or a NumPy dtype; kept as its name."""

    def check(self, name: str, value: Any) -> str:
        try:
            dtype = np.dtype(value).name
        except TypeError:
            dtype = repr(value)
        if dtype not in DTYPES:
            raise ValueError(f"{name} must be one of {DTYPES}, got {value!r}")
        return dtype

    def parse(self, text: str) -> str:
        return text

    def flag_kwargs(self) -> dict[str, Any]:
        return {"choices": DTYPES}


# ------------------------------------------------------------------- table


@dataclass(frozen=True)
class Header:
    """A fragment of the run header: ``text(config)`` (None: nothing), on
    header line ``line`` (1 to 3), at place ``rank`` within it."""

    line: int
    rank: int
    text: Callable[[Config], str | None]


def option(
    default: Any,
    constraint: Constraint,
    help: str,
    *,
    legacy: Any = _NO_LEGACY,
    model: bool = True,
    header: Header | None = None,
    flag: bool = True,
    late_in_checkpoints: bool = False,
    late_in_models: bool = False,
    trajectory: Callable[[Config], Any] | None = None,
) -> Any:
    """A field of the table.

    ``legacy``: the value every run had before the option existed, taken by
    a model file or checkpoint that lacks it. ``model``: saved in model
    files. ``flag``: a command-line flag ``--name-with-dashes``.
    ``late_in_checkpoints``: added after checkpoints existed, so recorded in a
    checkpoint's configuration only when it differs from ``legacy`` (and
    compared as ``legacy`` when absent); ``late_in_models`` likewise for model
    files, so that a model not using the option is the file an older admm
    wrote and reads. ``trajectory(config)``: the value
    recorded for a checkpoint when only part of it decides the run.
    """
    meta = {
        "constraint": constraint,
        "help": help,
        "legacy": legacy,
        "model": model,
        "header": header,
        "flag": flag,
        "late": late_in_checkpoints,
        "late_in_models": late_in_models,
        "trajectory": trajectory,
    }
    return field(default=default, metadata=meta)


def format_floats(value: Any) -> str:
    """``0.2``, ``1,2,3`` or ``auto`` (None): an option as the run header prints it."""
    if value is None:
        return "auto"
    if isinstance(value, float | int):
        return f"{value:g}"
    return ",".join(f"{v:g}" for v in value)


def _ridge(c: Config) -> str:
    text = f"rho-relative {c.rho_relative:g}"
    if c.rho_final != 1.0:
        text += f" falling to x{c.rho_final:g} by iteration {c.rho_decay_iterations}"
    return text


def _unit_interval(metavar: str) -> Interval:
    """A number in [0, 1): a fraction that must stay below one."""
    return Interval(lambda v: 0 <= v < 1, "a number in [0, 1)", metavar=metavar)


def _subset_start(c: Config) -> str | None:
    if not c.subset_iterations:
        return None
    return f"started by {c.subset_iterations} iterations on every {c.subset_stride}th sample"


def _refit_schedule(c: Config) -> str | None:
    if not c.refit_every:
        return None
    text = f"refit every {c.refit_every} iterations"
    if c.refit_first:
        text += f" from iteration {c.refit_first}"
    return text if c.refit_input_layer else text + " (W_1 kept)"


def _readout(c: Config) -> str | None:
    if not c.readout_iterations:
        return None
    return (
        f"read-out by {c.readout_iterations} ADMM iterations (beta {c.readout_beta:g}, "
        f"ridge {c.readout_ridge:g})"
    )


def _continuation(c: Config) -> str:
    def cap(value: Any) -> str:
        return "no cap" if value is None else format_floats(value)

    if c.beta_growth == 1.0 and c.gamma_growth == 1.0:
        return "continuation none"
    return (
        f"continuation beta x{c.beta_growth:g} up to {cap(c.beta_max)}, "
        f"gamma x{c.gamma_growth:g} up to {cap(c.gamma_max)}"
    )


@dataclass(frozen=True)
class Config:
    """Every option of the method, validated. Immutable: use :meth:`replace`.

    ``Config(**options)`` checks each value (``ValueError`` naming the option
    and the problem); unknown names raise ``TypeError``. The defaults are the
    published configuration (``ADMM.md``, the talk).
    """

    activation: str = option(
        "hardsigmoid",
        Choice(activations.names, "activation"),
        "hidden activation: " + activations.summary(),
        header=Header(1, 1, lambda c: f"activation {c.activation}"),
    )
    negative_slope: float = option(
        0.01,
        Interval(lambda v: v >= 0, "a non-negative finite number", metavar="S"),
        "slope of leaky_relu for x <= 0 (PyTorch's name and default)",
        legacy=0.01,
        late_in_checkpoints=True,
        late_in_models=True,
        header=Header(
            1,
            2,
            lambda c: (
                f"negative slope {c.negative_slope:g}" if c.activation == "leaky_relu" else None
            ),
        ),
    )
    loss: str = option(
        "hinge",
        Choice(losses.names, "loss"),
        "output loss: " + losses.summary(),
        header=Header(1, 3, lambda c: f"loss {c.loss}"),
    )
    label_smoothing: float = option(
        0.0,
        _unit_interval("S"),
        "label smoothing of the cross_entropy loss (PyTorch's name): the target of label y "
        "is (1 - S) e_y + S / n_L; 0: one-hot targets",
        legacy=0.0,
        late_in_checkpoints=True,
        late_in_models=True,
        header=Header(
            1,
            4,
            lambda c: f"label smoothing {c.label_smoothing:g}" if c.label_smoothing else None,
        ),
    )
    beta: float | tuple[float, ...] = option(
        0.2,
        PerLayer("weights", metavar="B[,B...]"),
        "weight of each constraint z_l = W_l a_{l-1}: one value, or one per weight layer",
        header=Header(2, 1, lambda c: f"beta {format_floats(c.beta)}"),
    )
    gamma: float | tuple[float, ...] = option(
        20.0,
        PerLayer("hidden", metavar="G[,G...]"),
        "weight of each constraint a_l = h(z_l): one value, or one per hidden layer",
        header=Header(2, 2, lambda c: f"gamma {format_floats(c.gamma)}"),
    )
    rho: float | tuple[float, ...] | None = option(
        None,
        PerLayer("weights", optional=True, metavar="R[,R...]"),
        "ridge added to every Gram matrix before its Cholesky solve; None: "
        "--rho-relative times the mean diagonal of each layer's Gram at initialisation",
        # A model file keeps the ridges used (rho_) under this name instead.
        model=False,
        header=Header(2, 3, lambda c: f"rho {format_floats(c.rho)}"),
    )
    rho_relative: float = option(
        RHO_RELATIVE,
        Interval(lambda v: v > 0, "a positive finite number", metavar="R"),
        "the automatic ridge (without --rho), relative to each Gram's mean diagonal",
        legacy=RHO_RELATIVE,
        header=Header(3, 1, _ridge),
    )
    rho_final: float = option(
        1.0,
        Interval(lambda v: 0 < v <= 1, "a number in (0, 1]", metavar="F"),
        "continuation of the ridge: it falls geometrically to F times its starting "
        "value (--rho or --rho-relative) by iteration --rho-decay-iterations, then stays; "
        "1: a constant ridge",
        legacy=1.0,
        late_in_checkpoints=True,
    )
    rho_decay_iterations: int = option(
        0,
        Integer(0, metavar="T"),
        "the iteration (from 0) at which the ridge reaches --rho-final: the ridge of "
        "iteration t is rho F^(min(t, T)/T)",
        legacy=0,
        late_in_checkpoints=True,
        # Without a decay its length plays no part in the trajectory.
        trajectory=lambda c: c.rho_decay_iterations if c.rho_final != 1.0 else 0,
    )
    inertia: float = option(
        0.0,
        _unit_interval("C"),
        "extrapolate every weight update from iteration 1 on: W_l <- W_l + C (W_l - "
        "W_l of the previous iteration), C in [0, 1); 0: off (ADMM.md)",
        legacy=0.0,
        late_in_checkpoints=True,
        header=Header(3, 6, lambda c: f"inertia {c.inertia:g}" if c.inertia else None),
    )
    backward_sweep: bool = option(
        False,
        Flag(),
        "after the output update, update a_l and z_l once more for l = L-1 .. 1 (exact "
        "block minimisations; about 1.5 times the work per iteration); the objective shown "
        "is then the one before the sweep",
        legacy=False,
        late_in_checkpoints=True,
        header=Header(3, 7, lambda c: "backward sweep" if c.backward_sweep else None),
    )
    refit_every: int = option(
        0,
        Integer(0, metavar="K"),
        "after every K-th iteration, replace the weights by the forward refit of the state "
        "(ADMMNetwork.refit: every W_l re-solved on the network's own forward features, a "
        "little less work than an iteration); the next iteration starts from them. Early "
        "iterations' forward accuracy gains most (docs/accuracy-study.md, issue 16); "
        "0: off",
        legacy=0,
        # How the weights were trained, not how they predict.
        model=False,
        late_in_checkpoints=True,
        header=Header(3, 8, _refit_schedule),
    )
    refit_first: int = option(
        0,
        Integer(0, metavar="F"),
        "with --refit-every K: the first refit after iteration F, the next ones every K "
        "iterations after it (F, F + K, F + 2K, ...); 0: K (after K, 2K, ...)",
        legacy=0,
        model=False,
        late_in_checkpoints=True,
    )
    start_from_targets: bool = option(
        False,
        Flag(),
        "start with the output update (5) applied to the initial forward pass (with "
        "iteration 1's beta_L, no multiplier), so that the targets reach the state before "
        "iteration 1; its weight updates otherwise mostly re-solve the starting weights "
        "(about one iteration saved in --preset fast, docs/accuracy-study.md, issue 16)",
        legacy=False,
        model=False,
        late_in_checkpoints=True,
        header=Header(
            3, 9, lambda c: "started from the targets" if c.start_from_targets else None
        ),
    )
    subset_iterations: int = option(
        0,
        Integer(0, metavar="K"),
        "before iteration 1, train K iterations on every F-th training sample "
        "(--subset-stride) with these options and start from their weights instead of "
        "Glorot's (a cheap start: their time is counted, their iterations are not); 0: off",
        legacy=0,
        model=False,
        late_in_checkpoints=True,
        header=Header(3, 10, _subset_start),
    )
    subset_stride: int = option(
        4,
        Integer(1, metavar="F"),
        "the F of --subset-iterations: the start sees every F-th sample of each rank's "
        "block; with --deterministic F must divide --block-size, and the subset (the "
        "samples whose global index is a multiple of F) is the same on any number of ranks",
        legacy=4,
        model=False,
        late_in_checkpoints=True,
    )
    refit_input_layer: bool = option(
        True,
        Flag(),
        "whether the forward refit (--refit-every, --refit) re-solves W_1 too; "
        "--no-refit-input-layer keeps the iteration's W_1 and refits W_2 .. W_L on its "
        "forward features h(W_1 a_0), formed once (held from the iteration before a "
        "scheduled refit): 0.37 s per refit of 784-500-500-10 on 30,000 images a rank "
        "against 0.87 s, the same accuracy in --preset fast (docs/accuracy-study.md, "
        "issue 16)",
        legacy=True,
        model=False,
        late_in_checkpoints=True,
    )
    readout_iterations: int = option(
        0,
        Integer(0, metavar="K"),
        "in every forward refit (--refit, --refit-every), fit W_L to the loss itself on the "
        "refit's last hidden features f_{L-1} instead of by least squares to z_L: K "
        "iterations of ADMM on the convex sum of C(W_L f_{L-1}) + beta rho ||W_L||^2 "
        "(--readout-beta, --readout-ridge) from the least-squares W_L, on f_{L-1} held whole "
        "and its Gram factored once; an iteration costs two (m, n_{L-1}, n_L) products. "
        "With the hinge loss: a linear SVM on the trained features (docs/method.md, "
        "docs/accuracy-study.md, issue 16); 0: off",
        legacy=0,
        model=False,
        late_in_checkpoints=True,
        header=Header(3, 11, _readout),
    )
    readout_beta: float = option(
        0.1,
        Interval(lambda v: v > 0, "a positive finite number", metavar="B"),
        "the penalty beta of --readout-iterations' ADMM (the constraint z = W_L f_{L-1}); "
        "the regularisation it solves for is beta times --readout-ridge. A small beta "
        "gets most of the gain in a few iterations (docs/accuracy-study.md)",
        legacy=0.1,
        model=False,
        late_in_checkpoints=True,
    )
    readout_ridge: float = option(
        1e-3,
        Interval(lambda v: v > 0, "a positive finite number", metavar="R"),
        "the ridge rho of --readout-iterations, relative to the mean diagonal of the Gram of "
        "f_{L-1} over all samples",
        legacy=1e-3,
        model=False,
        late_in_checkpoints=True,
    )
    beta_growth: float = option(
        1.0,
        Growth(),
        "continuation: beta_l at iteration t (from 0) is min(beta_l F^t, --beta-max)",
        legacy=1.0,
        header=Header(3, 5, _continuation),
    )
    gamma_growth: float = option(
        1.0,
        Growth(),
        "continuation: gamma_l at iteration t (from 0) is min(gamma_l F^t, --gamma-max)",
        legacy=1.0,
    )
    beta_max: float | tuple[float, ...] | None = option(
        None,
        PerLayer("weights", optional=True, metavar="B[,B...]"),
        "cap of the beta continuation, one value or one per weight layer; None: no cap",
        legacy=None,
    )
    gamma_max: float | tuple[float, ...] | None = option(
        None,
        PerLayer("hidden", optional=True, metavar="G[,G...]"),
        "cap of the gamma continuation, one value or one per hidden layer; None: no cap",
        legacy=None,
    )
    center: bool = option(
        False,
        Flag(),
        "subtract the mean training input (over all ranks) in training and prediction",
        # A model file implies it by its input_mean.
        model=False,
        header=Header(3, 3, lambda c: f"centred inputs {'yes' if c.center else 'no'}"),
    )
    deskew: bool = option(
        False,
        Flag(),
        "deskew every image (square images, non-negative pixels) before the centring, in "
        "training and prediction: shear its main axis upright, centre its mass",
        legacy=False,
        late_in_checkpoints=True,
        header=Header(3, 4, lambda c: "deskewed inputs" if c.deskew else None),
    )
    input_power: float = option(
        1.0,
        Interval(lambda v: v > 0, "a positive number", metavar="P"),
        "power normalisation of every input value, x -> sign(x) |x|^P, after the deskewing "
        "and before the centring, in training and prediction; 1: off",
        legacy=1.0,
        late_in_checkpoints=True,
        late_in_models=True,
        header=Header(
            3, 4, lambda c: f"input power {c.input_power:g}" if c.input_power != 1 else None
        ),
    )
    normalize_inputs: bool = option(
        False,
        Flag(),
        "scale every input sample to unit Euclidean norm (an all-zero sample stays zero), "
        "after --input-power and before the centring, in training and prediction",
        legacy=False,
        late_in_checkpoints=True,
        late_in_models=True,
        header=Header(3, 4, lambda c: "unit-norm inputs" if c.normalize_inputs else None),
    )
    spectral_power: float = option(
        0.0,
        Interval(lambda v: v >= 0, "a non-negative number", metavar="Q"),
        "after the centring, scale each principal direction of the training inputs (over "
        "all ranks) by (its variance / the mean variance)^(Q/2), in training and "
        "prediction: under the ridge of W_1, Q > 0 favours the inputs' main directions; "
        "needs --center; 0: off",
        legacy=0.0,
        late_in_checkpoints=True,
        late_in_models=True,
        header=Header(
            3, 4, lambda c: f"spectral power {c.spectral_power:g}" if c.spectral_power else None
        ),
    )
    multiplier: bool = option(
        True,
        Flag(),
        "update the output multiplier lam after the warm-up (equation (6))",
        legacy=True,
        header=Header(3, 2, lambda c: f"multiplier {'on' if c.multiplier else 'off'}"),
    )
    warmup: int = option(
        10,
        Integer(0),
        "iterations (from 0) without a multiplier update; --tol also waits for them. "
        "With --no-multiplier (as in --preset best) that delay of --tol is all it does",
        legacy=0,
        header=Header(2, 4, lambda c: f"warmup {c.warmup}"),
    )
    dtype: str = option(
        "float64",
        DType(),
        "precision of data, activations and weights",
        header=Header(1, 5, lambda c: f"dtype {c.dtype}"),
    )
    seed: int = option(
        0,
        Integer(0),
        "seed of the Glorot-uniform initial weights",
        legacy=0,
        header=Header(2, 5, lambda c: f"seed {c.seed}"),
    )
    deterministic: bool = option(
        False,
        Flag(),
        "results independent of the number of ranks, bit for bit (same machine "
        "type, BLAS and BLAS threads per rank): sums over samples in blocks of "
        "--block-size, added along one fixed tree; see docs/determinism.md",
        model=False,
    )
    block_size: int = option(
        BLOCK_SIZE,
        Integer(1, metavar="B"),
        "samples per block of the sums of --deterministic (ranks hold whole blocks); "
        "part of the result",
        model=False,
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = f.metadata["constraint"].check(f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        if self.subset_iterations and self.subset_stride < 2:
            raise ValueError(
                f"subset_stride must be at least 2 with subset_iterations (every F-th "
                f"sample), got {self.subset_stride}"
            )
        if self.subset_iterations and self.deterministic and self.block_size % self.subset_stride:
            raise ValueError(
                f"subset_stride {self.subset_stride} must divide block_size "
                f"{self.block_size} with deterministic (then the subset and its sums are "
                "the same on any number of ranks)"
            )
        if self.rho_final < 1.0 and self.rho_decay_iterations == 0:
            raise ValueError(
                f"rho_final {self.rho_final:g} needs rho_decay_iterations of at least 1 (the "
                "iteration by which the ridge has fallen to it)"
            )
        if self.refit_first and not self.refit_every:
            raise ValueError(
                f"refit_first {self.refit_first} needs refit_every of at least 1 (the "
                "iterations between refits)"
            )
        if self.spectral_power and not self.center:
            raise ValueError(
                f"spectral_power {self.spectral_power:g} needs center (the principal "
                "directions are those of the centred inputs)"
            )
        if self.label_smoothing and self.loss != "cross_entropy":
            raise ValueError(
                f"label_smoothing {self.label_smoothing:g} needs loss cross_entropy, "
                f"not {self.loss!r}"
            )

    # ------------------------------------------------------------ reading

    def refits_after(self, iteration: int) -> bool:
        """Whether the forward refit of ``refit_every`` runs after ``iteration``
        (counted from 1): after ``F, F + K, F + 2K, ...`` with ``K =
        refit_every`` and ``F = refit_first`` (``K`` when 0); never when ``K``
        is 0."""
        every = self.refit_every
        first = self.refit_first or every
        return bool(every) and iteration >= first and (iteration - first) % every == 0

    def evaluation_due(self, iteration: int, every: int) -> bool:
        """Whether an evaluation every ``every`` iterations falls after
        ``iteration`` (counted from 1): the iterations ``F + j every``, ``F =
        refit_first`` (0 unless set), so that when ``every`` is a multiple of
        ``refit_every`` every evaluation comes right after a refit."""
        return (iteration - self.refit_first) % every == 0

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied, validated."""
        return dataclasses.replace(self, **changes)

    def options(self) -> dict[str, Any]:
        """Every option by name, in table order (constructor keywords)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def per_layer(self, name: str, layers: int, given: Any = None) -> tuple[float, ...] | None:
        """The per-layer option ``name`` with one value per layer, for ``layers``
        weight layers (``L`` values for weight layers, ``L - 1`` for hidden ones;
        None for an unset optional one). Raises ``ValueError`` on a wrong count,
        showing ``given`` (the value as the user wrote it) when given."""
        constraint = _FIELDS[name].metadata["constraint"]
        assert isinstance(constraint, PerLayer)
        if constraint.kind == "hidden" and layers == 1:
            return None if constraint.optional else ()
        return constraint.resolve(name, getattr(self, name), layers, given)

    def describe(self, line: int) -> list[str]:
        """The run header's fragments of ``line`` (1 to 3), in order."""
        fragments = [
            (h.rank, h.text(self))
            for f in dataclasses.fields(self)
            if (h := f.metadata["header"]) is not None and h.line == line
        ]
        return [text for _, text in sorted(fragments, key=lambda x: x[0]) if text is not None]

    # ------------------------------------------------------------- files

    def to_model_arrays(self, layers: int) -> dict[str, np.ndarray]:
        """The options a model file keeps, as arrays (per-layer options
        expanded to one value per layer, an unset one as an empty array)."""
        arrays = {}
        for f in dataclasses.fields(self):
            if not f.metadata["model"]:
                continue
            value = getattr(self, f.name)
            if f.metadata["late_in_models"] and value == f.metadata["legacy"]:
                continue
            if isinstance(f.metadata["constraint"], PerLayer):
                value = self.per_layer(f.name, layers)
                arrays[f.name] = np.array(() if value is None else value, dtype=np.float64)
            else:
                arrays[f.name] = np.array(value)
        return arrays

    @classmethod
    def from_model_arrays(cls, arrays: Mapping[str, np.ndarray], **given: Any) -> Config:
        """The options of a model file's ``arrays``: a missing option takes its
        ``legacy`` value (``KeyError`` for one that every model file has);
        ``given`` adds or overrides options."""
        options: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if not f.metadata["model"] or f.name in given:
                continue
            if f.name not in arrays:
                if f.metadata["legacy"] is _NO_LEGACY:
                    raise KeyError(f.name)
                options[f.name] = f.metadata["legacy"]
                continue
            value = arrays[f.name]
            constraint = f.metadata["constraint"]
            if isinstance(constraint, PerLayer):
                # An empty array: an unset optional option, or none per hidden
                # layer when there is no hidden layer.
                empty = None if constraint.optional else ()
                options[f.name] = tuple(np.atleast_1d(value).tolist()) if value.size else empty
            elif isinstance(constraint, Flag):
                options[f.name] = bool(value)
            elif isinstance(constraint, Integer):
                options[f.name] = int(value)
            elif isinstance(constraint, Interval | Growth):
                options[f.name] = float(value)
            else:
                options[f.name] = str(value)
        return cls(**{**options, **given})

    def run_config(self, layers: int) -> dict[str, Any]:
        """The options as a checkpoint's run configuration records them
        (JSON-able; per-layer options expanded), see :func:`option`."""
        config: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["trajectory"] is not None:
                value = f.metadata["trajectory"](self)
            if isinstance(f.metadata["constraint"], PerLayer):
                resolved = self.per_layer(f.name, layers)
                value = None if resolved is None else list(resolved)
            if f.metadata["late"] and value == f.metadata["legacy"]:
                continue
            config[f.name] = value
        return config


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def run_config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Why the run configuration ``saved`` (a checkpoint's) is not ``current``:
    one ``"key: checkpoint X, now Y"`` per differing key; an option missing
    from either side counts as its ``legacy`` value."""

    def value(config: Mapping[str, Any], key: str) -> Any:
        f = _FIELDS.get(key)
        if key not in config and f is not None and f.metadata["legacy"] is not _NO_LEGACY:
            return f.metadata["legacy"]
        return config.get(key)

    keys = sorted(set(saved) | set(current))
    return [
        f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}"
        for k in keys
        if value(saved, k) != value(current, k)
    ]


def flag_name(name: str) -> str:
    """``--rho-relative`` for ``rho_relative``."""
    return "--" + name.replace("_", "-")


def add_flags(group: Any) -> None:
    """Add a command-line flag for every option of the table to ``group`` (an
    argparse parser or argument group), with the default and help of the table."""
    for f in dataclasses.fields(Config):
        if not f.metadata["flag"]:
            continue
        group.add_argument(
            flag_name(f.name),
            default=f.default,
            help=f.metadata["help"],
            **f.metadata["constraint"].flag_kwargs(),
        )


def flag_names(message: str) -> str:
    """``message`` with every option name written as its flag (``--rho-final``)."""
    for f in dataclasses.fields(Config):
        message = re.sub(rf"\b{f.name}\b", flag_name(f.name), message)
    return message


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The options of the table among parsed command-line ``args``."""
    return {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)
    }


def options_doc() -> str:
    """The options as a numpydoc ``Parameters`` block (one entry each)."""
    lines = []
    for f in dataclasses.fields(Config):
        lines.append(f"{f.name} : default {f.default!r}")
        lines.append(f"    {f.metadata['help']}.")
    return "\n".join(lines)


def options_markdown() -> str:
    """``docs/options.md``: the table as Markdown (``python -m admm.config``)."""
    rows = [
        "# Options",
        "",
        "Generated from the parameter table `admm.config.Config` by "
        "`python -m admm.config > docs/options.md` (a test keeps it current). Every option "
        "is a keyword of `ADMMNetwork` and of `Config`, and a flag of `python -m admm.train` "
        "(the name with dashes; a true/false option also has `--no-NAME`). *Before* is the "
        "value a model file or checkpoint written before the option existed is read with.",
        "",
        "| option | default | values | before | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in dataclasses.fields(Config):
        constraint = f.metadata["constraint"]
        if isinstance(constraint, Choice | DType):
            values = ", ".join(f"`{v}`" for v in constraint.flag_kwargs()["choices"])
        elif isinstance(constraint, Flag):
            values = "true, false"
        elif isinstance(constraint, Integer | Interval):
            values = constraint.what
        elif isinstance(constraint, Growth):
            values = "a number >= 1"
        else:
            assert isinstance(constraint, PerLayer)
            layer = "weight" if constraint.kind == "weights" else "hidden"
            values = f"positive: one, or one per {layer} layer" + (
                "; none" if constraint.optional else ""
            )
        legacy = f.metadata["legacy"]
        before = "" if legacy is _NO_LEGACY else f"`{legacy!r}`"
        help_text = f.metadata["help"].replace("|", "\\|")
        rows.append(f"| `{f.name}` | `{f.default!r}` | {values} | {before} | {help_text} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(options_markdown(), end="")
