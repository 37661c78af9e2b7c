"""scikit-learn estimators: :class:`ADMMClassifier` and :class:`ADMMRegressor`.

``from admm.sklearn import ADMMClassifier, ADMMRegressor`` (scikit-learn is an
optional extra: ``pip install 'admm[sklearn]'``; ``import admm`` does not
import this module). They follow the convention of scikit-learn's
``MLPClassifier``: the input and output widths come from ``fit(X, y)``, only
the hidden widths are given (``hidden_layer_sizes``), and they work in a
``Pipeline``, ``GridSearchCV`` or ``cross_val_score``.

The constructor arguments are derived from the parameter table
:class:`admm.config.Config`: ``hidden_layer_sizes``, then every option of the
table with the table's default (an option added to the table appears here by
itself), then ``fit_intercept`` (a constant input feature, the first layer's
biases), ``max_iter`` (ADMM iterations, 100 like the program), ``refit``
(run :meth:`admm.ADMMNetwork.refit` after the iterations) and ``comm``. The
regressor's ``loss`` defaults to ``"squared"``, its one loss. As in
scikit-learn, ``__init__`` only stores them; ``fit`` validates them (the
table's messages).

``comm=None`` trains on this process alone (``MPI.COMM_SELF``; no
``mpiexec`` needed). With an mpi4py communicator ``fit`` is collective: every
rank passes its own block of samples (at least one), the classes are the
union of all ranks' labels, the number of features must agree, and every
rank ends with the same network; ``predict`` and the rest are local.

Losses and probabilities: the classifier maps the labels to ``0..k-1``
(``classes_``) and trains ``n`` outputs on
``loss.encode_labels(labels, n, dtype)`` (the hinge and cross-entropy take the
labels, least squares their one-hot rows), ``n`` the first width
``loss.outputs_for(k)`` offers: ``k``, or 1 for ``logistic`` on two classes
(whose ``predict`` must then give class 1 for a positive output, as the
decision function's sign). ``predict_proba`` exists only when the loss
defines probabilities: a loss with a method ``proba(scores)`` that maps the
outputs to class probabilities ``(m, k)`` (rows summing to 1, ordered as
``classes_``), as ``cross_entropy`` and ``logistic`` do. The regressor standardises the targets (the mean
and standard deviation over all ranks' samples) and trains least squares on
them, so the default penalties suit any scale of the targets.

A fitted estimator keeps the trained network without its ADMM state
(``network_``, as :func:`admm.load` would read it back): it pickles, and
holds no copy of the training data.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, unique_labels
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # no scikit-learn, or one older than 1.6
    raise ImportError(
        f"admm.sklearn needs scikit-learn >= 1.6: pip install 'admm[sklearn]' ({exc})"
    ) from exc

from . import losses
from ._mpi import Communicator
from .config import Config, options_doc
from .network import ADMMNetwork

__all__ = [
    "EXPECTED_FAILED_CHECKS",
    "REGRESSION_LOSSES",
    "ADMMClassifier",
    "ADMMRegressor",
    "expected_failed_checks",
]

#: The losses the regressor trains with: those whose targets are real arrays.
REGRESSION_LOSSES = ("squared",)

#: Options of the table, in table order.
_OPTIONS = tuple(f.name for f in dataclasses.fields(Config))


# ---------------------------------------------------------------- signature


def _signature(overrides: dict[str, Any]) -> inspect.Signature:
    """``(self, hidden_layer_sizes=(500, 500), *, <table>, fit_intercept=True,
    max_iter=100, refit=False, comm=None)``, the table's defaults replaced by ``overrides``."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter(
            "hidden_layer_sizes", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=(500, 500)
        ),
    ]
    for f in dataclasses.fields(Config):
        params.append(inspect.Parameter(f.name, keyword, default=overrides.get(f.name, f.default)))
    params += [
        inspect.Parameter("fit_intercept", keyword, default=True),
        inspect.Parameter("max_iter", keyword, default=100),
        inspect.Parameter("refit", keyword, default=False),
        inspect.Parameter("comm", keyword, default=None),
    ]
    return inspect.Signature(params)


def _make_init(signature: inspect.Signature) -> Callable[..., None]:
    """An ``__init__`` with ``signature`` that stores every argument under its name."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)  # TypeError for unknown names
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if name != "self":
                setattr(self, name, value)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


_HIDDEN_DOC = """hidden_layer_sizes : int or tuple of int, default (500, 500)
    Widths of the hidden layers (the input and output widths come from the
    data); ``()`` for none."""

_OWN_DOC = """fit_intercept : bool, default True
    Append a constant input feature 1, so that the first layer has biases
    (the network itself has none): its weights are the last column of
    ``coefs_[0]``. ``center=True`` would subtract it again (and
    ``normalize_inputs`` or ``input_power`` transform it with the features):
    use one or the other.
max_iter : int, default 100
    ADMM iterations.
refit : bool, default False
    Re-solve every weight layer on the network's own forward features after
    the iterations (:meth:`admm.ADMMNetwork.refit`).
comm : mpi4py communicator or None, default None
    None: train on this process alone. A communicator: ``fit`` is collective
    on it, each rank passing its own block of samples."""


_ATTRIBUTES_DOC = """n_features_in_ : int
    Number of features seen in ``fit`` (``feature_names_in_`` too for a
    DataFrame with string column names).
coefs_ : list of ndarray
    The weights ``W_l``, shape ``(n_l, n_{l-1})``; with ``fit_intercept``
    ``coefs_[0]`` has a last column, the first layer's biases.
input_mean_ : ndarray or None
    The mean training input subtracted with ``center``.
input_basis_ : ndarray or None
    The matrix of ``spectral_power`` (:attr:`admm.ADMMNetwork.input_basis_`).
n_iter_ : int
    ADMM iterations done.
history_ : list of dict
    One record per iteration (:attr:`admm.ADMMNetwork.history`).
network_ : ADMMNetwork
    The trained network, without its ADMM state (``network_.save(path)``)."""

_CLASSIFIER_ATTRIBUTES = """classes_ : ndarray of shape (k,)
    The class labels (over all ranks' blocks), sorted; output ``j`` is
    ``classes_[j]``."""

_REGRESSOR_ATTRIBUTES = """y_mean_, y_scale_ : ndarray of shape (k,)
    The targets' mean and standard deviation over all ranks' samples (1 for
    a constant target): the network fits ``(y - y_mean_) / y_scale_``."""


def _doc(summary: str, overrides: dict[str, Any], attributes: str) -> str:
    options = options_doc()
    for name, value in overrides.items():
        options = options.replace(
            f"{name} : default {Config.__dataclass_fields__[name].default!r}",
            f"{name} : default {value!r}",
        )
    params = "\n".join((_HIDDEN_DOC, options, _OWN_DOC))
    body = f"Parameters\n----------\n{params}\n\nAttributes\n----------\n{attributes}"
    indented = "\n".join("    " + line if line else line for line in body.splitlines())
    return f"{summary}\n\n{indented}\n"


# ------------------------------------------------------------------ helpers


def _collective(comm: Communicator, action: Callable[[], Any]) -> Any:
    """``action()``; on several ranks an error on any rank raises on all
    (:meth:`Communicator.agreed`), on one rank it is raised as it is."""
    return action() if comm.size == 1 else comm.agreed(action)


def _inputs(X: np.ndarray, intercept: bool) -> np.ndarray:
    """The network's input: ``X`` with a column of ones appended with
    ``intercept``, and copied when read-only (the compiled kernels take
    writable buffers: ``ADMMNetwork`` fails on a read-only memory map)."""
    if intercept:
        return np.hstack([X, np.ones((X.shape[0], 1), dtype=X.dtype)])
    return X if X.flags.writeable else X.copy()


def _loss_has_proba(estimator: Any) -> bool:
    """Whether the estimator's loss defines probabilities (``proba``)."""
    try:
        loss = losses.get(estimator.loss)
    except (KeyError, ValueError, TypeError):
        return False
    return callable(getattr(loss, "proba", None))


class _ADMMBase(BaseEstimator):
    """What the classifier and the regressor share: options, training, prediction."""

    # Stored by __init__ as given (and one attribute per option of the table).
    hidden_layer_sizes: Any
    fit_intercept: Any
    max_iter: Any
    refit: Any
    comm: Any
    loss: Any
    dtype: Any

    def __sklearn_clone__(self) -> Any:
        # Parameters are deep-copied by clone, but an mpi4py communicator
        # (other than the predefined ones) cannot be: it is shared.
        params = self.get_params(deep=False)
        comm = params.pop("comm")
        params = {name: clone(value, safe=False) for name, value in params.items()}
        return type(self)(**params, comm=comm)

    def _config(self) -> Config:
        """The table's options as given, validated (``ValueError``)."""
        return Config(**{name: getattr(self, name) for name in _OPTIONS})

    def _hidden(self) -> tuple[int, ...]:
        """The hidden widths; checks the estimator's own arguments (``ValueError``)."""
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if np.ndim(sizes) == 0 else tuple(sizes)
        if any(
            not isinstance(n, int | np.integer) or isinstance(n, bool | np.bool_) or n < 1
            for n in sizes
        ):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}"
            )
        value = self.max_iter
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"max_iter must be a positive integer, got {value!r}")
        for name in ("refit", "fit_intercept"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        return tuple(int(n) for n in sizes)

    def _communicator(self) -> Communicator:
        """Collective on ``comm``."""
        return Communicator.local() if self.comm is None else Communicator(self.comm)

    def _train(
        self,
        comm: Communicator,
        config: Config,
        hidden: tuple[int, ...],
        X: np.ndarray,
        targets: np.ndarray,
        n_out: int,
    ) -> None:
        """Train the network on this rank's block and keep it without its
        state. Collective on ``comm``."""
        n_features = comm.agree(X.shape[1])
        if len(set(n_features)) > 1:
            raise ValueError(f"the ranks' blocks have different numbers of features: {n_features}")
        X = _inputs(X, bool(self.fit_intercept))
        net = ADMMNetwork((X.shape[1], *hidden, n_out), config=config, comm=comm.mpi_comm)
        net.fit(X, targets, iterations=int(self.max_iter))
        if self.refit:
            net.refit()
        # What a model file holds: no ADMM state, no data, no communicator.
        self.coefs_ = [np.array(w) for w in net.weights]
        self.input_mean_ = net.input_mean_
        self.input_basis_ = net.input_basis_
        self.n_iter_ = net.n_iter_
        self.history_ = list(net.history)
        self._fitted_config = net.config
        self._fitted_intercept = bool(self.fit_intercept)

    @property
    def network_(self) -> ADMMNetwork:
        """The trained network, without its ADMM state (a new
        :class:`admm.ADMMNetwork` on every access, as :func:`admm.load` reads a
        model file): ``estimator.network_.save(path)`` writes a model file.
        With ``fit_intercept`` it takes the features and a last column of ones."""
        check_is_fitted(self)
        layers = (self.coefs_[0].shape[1], *(w.shape[0] for w in self.coefs_))
        net = ADMMNetwork(layers, weights=self.coefs_, config=self._fitted_config)
        net.input_mean_ = self.input_mean_
        net.input_basis_ = self.input_basis_
        net.n_iter_ = self.n_iter_
        return net

    def _loss_part(self) -> losses.Loss:
        """The trained network's loss (:mod:`admm.losses`)."""
        return losses.get(self._fitted_config.loss, self._fitted_config)

    def _scores(self, X: Any) -> np.ndarray:
        """The network's outputs ``(m, n_out)``. Local."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.dtype(self._fitted_config.dtype))
        return self.network_.decision_function(_inputs(X, self._fitted_intercept))


# --------------------------------------------------------------- classifier

_CLASSIFIER_DEFAULTS: dict[str, Any] = {}


class ADMMClassifier(ClassifierMixin, _ADMMBase):
    __init__ = _make_init(_signature(_CLASSIFIER_DEFAULTS))

    def fit(self, X: Any, y: Any) -> ADMMClassifier:
        """Train on ``(X, y)``: ``y`` any labels (numbers, strings). Collective on
        ``comm`` (with one, each rank passes its own block).

        Returns
        -------
        self
        """
        config = self._config()
        hidden = self._hidden()
        comm = self._communicator()
        try:
            X, y = _collective(comm, lambda: self._validate(X, y, config))
            classes = unique_labels(*comm.agree(np.unique(y)))
            if len(classes) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least two classes; "
                    f"got {len(classes)} class ({classes[0]!r})"
                )
            labels = np.searchsorted(classes, y)
            loss = losses.get(config.loss, config)
            widths = loss.outputs_for(len(classes))
            if not widths:
                raise ValueError(
                    f"the {config.loss} loss cannot fit {len(classes)} classes "
                    f"({', '.join(map(repr, classes[:5]))}{', ...' if len(classes) > 5 else ''})"
                )
            targets = loss.encode_labels(labels, widths[0], np.dtype(config.dtype))
            self._train(comm, config, hidden, X, targets, widths[0])
            self.classes_ = classes
        finally:
            comm.free()
        return self

    def _validate(self, X: Any, y: Any, config: Config) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, dtype=np.dtype(config.dtype))
        check_classification_targets(y)
        return X, y

    def decision_function(self, X: Any) -> np.ndarray:
        """The network's outputs: ``(m, k)``, one per class of ``classes_``;
        with two classes ``(m,)``, positive for the second class (the second
        output minus the first, or the one output of a loss that fits two
        classes with one, such as ``logistic``). Local."""
        scores = self._scores(X)
        if scores.shape[1] == 1:
            return scores[:, 0]
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict(self, X: Any) -> np.ndarray:
        """The class of ``classes_`` the loss predicts from the outputs (the
        largest output; by its sign for one output), per sample. Local."""
        scores = self._scores(X)
        return self.classes_[self._loss_part().predict(scores)]

    @available_if(_loss_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(m, k)`` in the order of ``classes_``, from the
        loss's ``proba`` (only for a loss that defines it). Local."""
        scores = self._scores(X)
        return np.asarray(self._loss_part().proba(scores))  # type: ignore[attr-defined]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        tags.target_tags.multi_output = False
        return tags


# ---------------------------------------------------------------- regressor

_REGRESSOR_DEFAULTS: dict[str, Any] = {"loss": "squared"}


class ADMMRegressor(RegressorMixin, _ADMMBase):
    __init__ = _make_init(_signature(_REGRESSOR_DEFAULTS))

    def fit(self, X: Any, y: Any) -> ADMMRegressor:
        """Train on ``(X, y)``, real targets ``(m,)`` or ``(m, k)``. Collective
        on ``comm`` (with one, each rank passes its own block).

        Returns
        -------
        self
        """
        config = self._config()
        if config.loss not in REGRESSION_LOSSES:
            raise ValueError(
                f"{type(self).__name__} trains with one of the losses {REGRESSION_LOSSES}, "
                f"got loss={config.loss!r}"
            )
        hidden = self._hidden()
        comm = self._communicator()
        try:
            X, y = _collective(
                comm,
                lambda: validate_data(
                    self, X, y, dtype=np.dtype(config.dtype), multi_output=True, y_numeric=True
                ),
            )
            shapes = comm.agree(y.shape[1:])
            if len(set(shapes)) > 1:
                raise ValueError(f"the ranks' targets have different shapes: {shapes}")
            Y = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
            k = Y.shape[1]
            sums = comm.sum_values([Y.shape[0], *Y.sum(axis=0), *(Y**2).sum(axis=0)])
            mean = sums[1 : 1 + k] / sums[0]
            var = np.maximum(sums[1 + k :] / sums[0] - mean**2, 0.0)
            scale = np.sqrt(var)
            scale[scale <= 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0
            self.y_mean_, self.y_scale_ = mean, scale
            self._y_1d = y.ndim == 1
            self._train(comm, config, hidden, X, (Y - mean) / scale, k)
        finally:
            comm.free()
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(m,)`` or ``(m, k)``, the shape of the training
        targets, in float64. Local."""
        out = self._scores(X) * self.y_scale_ + self.y_mean_
        return out[:, 0] if self._y_1d else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


ADMMClassifier.__doc__ = _doc(
    "A fully connected classifier trained by ADMM (``MLPClassifier``'s conventions).",
    _CLASSIFIER_DEFAULTS,
    _CLASSIFIER_ATTRIBUTES + "\n" + _ATTRIBUTES_DOC,
)
ADMMRegressor.__doc__ = _doc(
    "A fully connected regressor trained by ADMM, least squares on standardised targets.",
    _REGRESSOR_DEFAULTS,
    _REGRESSOR_ATTRIBUTES + "\n" + _ATTRIBUTES_DOC,
)


# -------------------------------------------------------------------- checks


#: The scikit-learn checks the estimators are expected to fail, by name, with
#: the reason. None as of scikit-learn 1.9: both estimators pass every check
#: (scikit-learn itself skips ``check_array_api_input`` unless
#: ``SCIPY_ARRAY_API=1`` is set, and the pandas checks without pandas; both
#: pass when run).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """The scikit-learn estimator checks ``estimator`` is expected to fail,
    with the reason (:data:`EXPECTED_FAILED_CHECKS`): pass as
    ``expected_failed_checks`` to ``parametrize_with_checks`` or
    ``check_estimator``."""
    return dict(EXPECTED_FAILED_CHECKS)
