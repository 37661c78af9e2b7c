"""The scikit-learn estimators (:mod:`admm.sklearn`): scikit-learn's own
estimator checks, a ``Pipeline`` in ``GridSearchCV``, labels of any type, the
regressor on a smooth function, the signature derived from the parameter
table, and ``fit`` collective over 2 MPI ranks."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from admm.config import Config
from admm.sklearn import ADMMClassifier, ADMMRegressor, expected_failed_checks
from mpirun import run_mpi
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

PROGRAMS = Path(__file__).resolve().parent / "mpi_programs"

# Small networks and few iterations: the checks' data are tiny. The regressor
# needs the width to reach the R^2 of 0.5 check_regressors_train asks for.
SMALL = [
    ADMMClassifier(hidden_layer_sizes=(20,), max_iter=20),
    # predict_proba and its checks
    ADMMClassifier(hidden_layer_sizes=(20,), max_iter=20, loss="cross_entropy"),
    ADMMRegressor(hidden_layer_sizes=(50,), max_iter=20, refit=True),
]


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Tiny problems: BLAS threads on a shared machine only cost time."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@parametrize_with_checks(SMALL, expected_failed_checks=expected_failed_checks)
def test_sklearn_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- signature


@pytest.mark.parametrize("cls", [ADMMClassifier, ADMMRegressor])
def test_parameters_are_the_table(cls):
    """Every option of the table is a constructor argument with the table's
    default (the regressor's loss: least squares), between the hidden widths
    and the estimator's own three."""
    params = inspect.signature(cls).parameters
    table = {f.name: f.default for f in dataclasses.fields(Config)}
    if cls is ADMMRegressor:
        table["loss"] = "squared"
    own = ["fit_intercept", "max_iter", "refit", "comm"]
    assert list(params) == ["hidden_layer_sizes", *table, *own]
    assert {name: params[name].default for name in table} == table
    expected = {"hidden_layer_sizes": (500, 500), **table, "fit_intercept": True, "max_iter": 100}
    expected["refit"] = False
    assert cls().get_params() == {**expected, "comm": None}
    for name in table:
        assert name in cls.__doc__


def test_constructor_rejects_unknown_and_positional_options():
    with pytest.raises(TypeError):
        ADMMClassifier(not_an_option=1)
    with pytest.raises(TypeError):
        ADMMClassifier((10,), "relu")  # only hidden_layer_sizes by position
    est = ADMMClassifier((10,), activation="relu", beta=(0.5, 1.0))
    assert est.get_params()["beta"] == (0.5, 1.0)
    assert clone(est).get_params() == est.get_params()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"beta": -1.0}, "beta must be positive"),
        ({"activation": "nope"}, "unknown activation"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes must be positive"),
        ({"max_iter": 0}, "max_iter must be a positive integer"),
        ({"refit": "yes"}, "refit must be True or False"),
        ({"fit_intercept": 1}, "fit_intercept must be True or False"),
        ({"beta": (1.0, 2.0, 3.0)}, "beta must be a scalar or 2 values"),
    ],
)
def test_fit_validates_the_options(params, match):
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=match):
        ADMMClassifier(**{"hidden_layer_sizes": (4,), "max_iter": 2, **params}).fit(X, y)


def test_regressor_trains_with_a_regression_loss_only():
    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError, match="losses"):
        ADMMRegressor(loss="hinge", max_iter=2).fit(X, X[:, 0])


# ------------------------------------------------------------ in scikit-learn


def test_pipeline_in_grid_search_on_digits():
    """A scaler and the classifier in GridSearchCV: it picks among options of
    the table and of the estimator, and generalises on held-out digits."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=600, test_size=300, random_state=0, stratify=y
    )
    pipe = make_pipeline(StandardScaler(), ADMMClassifier(hidden_layer_sizes=(64,), max_iter=15))
    grid = {"admmclassifier__activation": ["hardsigmoid", "relu"], "admmclassifier__refit": [True]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X_train, y_train)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_score_ > 0.85
    assert search.score(X_test, y_test) > 0.85
    fitted = search.best_estimator_[-1]
    assert fitted.n_features_in_ == 64
    # The first layer's weights have a last column for the intercept.
    assert fitted.coefs_[0].shape == (64, 65) and fitted.coefs_[-1].shape == (10, 64)
    assert fitted.n_iter_ == 15 and len(fitted.history_) == 15


def test_cross_val_score_with_string_and_negative_labels():
    """Any label type round-trips through classes_: strings, negative integers."""
    X, y = load_digits(n_class=3, return_X_y=True)
    X = StandardScaler().fit_transform(X)
    for names in (np.array(["zero", "one", "two"]), np.array([-5, 7, 2])):
        labels = names[y]
        clf = ADMMClassifier(hidden_layer_sizes=(32,), max_iter=20, refit=True).fit(X, labels)
        np.testing.assert_array_equal(clf.classes_, np.sort(names))
        predicted = clf.predict(X)
        assert predicted.dtype == labels.dtype
        assert set(predicted) <= set(names)
        assert np.mean(predicted == labels) > 0.97
        assert cross_val_score(clf, X, labels, cv=3).min() > 0.9


@pytest.mark.parametrize("loss", ["hinge", "squared"])
def test_binary_decision_function_agrees_with_predict(loss):
    X, y = load_digits(n_class=2, return_X_y=True)
    labels = np.where(y == 1, "one", "zero")
    clf = ADMMClassifier(hidden_layer_sizes=(8,), max_iter=10, loss=loss).fit(X / 16, labels)
    decision = clf.decision_function(X / 16)
    assert decision.shape == (X.shape[0],)
    np.testing.assert_array_equal(clf.classes_[(decision > 0).astype(int)], clf.predict(X / 16))
    assert clf.score(X / 16, labels) > 0.95


@pytest.mark.parametrize("loss", ["cross_entropy", "logistic"])
def test_predict_proba_where_the_loss_defines_it(loss):
    """Cross-entropy (k outputs) and logistic (one output for two classes)
    give probabilities in the order of classes_, their arg-max the
    prediction; the decision function's sign is the prediction."""
    X, y = load_digits(n_class=2, return_X_y=True)
    labels = np.where(y == 1, "one", "zero")
    clf = ADMMClassifier(hidden_layer_sizes=(8,), max_iter=10, loss=loss).fit(X / 16, labels)
    assert clf.coefs_[-1].shape[0] == (1 if loss == "logistic" else 2)
    proba = clf.predict_proba(X / 16)
    assert proba.shape == (X.shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    predicted = clf.predict(X / 16)
    np.testing.assert_array_equal(clf.classes_[np.argmax(proba, axis=1)], predicted)
    decision = clf.decision_function(X / 16)
    assert decision.shape == (X.shape[0],)
    np.testing.assert_array_equal(clf.classes_[(decision > 0).astype(int)], predicted)
    assert np.mean(predicted == labels) > 0.95


def test_predict_proba_only_where_the_loss_defines_it():
    assert hasattr(ADMMClassifier(loss="cross_entropy"), "predict_proba")
    assert not hasattr(ADMMClassifier(), "predict_proba")
    assert not hasattr(ADMMClassifier(loss="squared"), "predict_proba")


def test_a_loss_that_cannot_fit_the_classes():
    X, y = load_digits(n_class=3, return_X_y=True)
    with pytest.raises(ValueError, match="the logistic loss cannot fit 3 classes"):
        ADMMClassifier(loss="logistic", max_iter=1).fit(X, y)


def test_regressor_fits_a_smooth_function():
    """R^2 on held-out points of a smooth non-linear function, well above the
    best linear fit; the targets' shape ((m,) or (m, k)) is kept."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, (600, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2
    X_train, X_test, y_train, y_test = X[:400], X[400:], y[:400], y[400:]
    reg = ADMMRegressor(hidden_layer_sizes=(100,), max_iter=30, refit=True)
    r2 = reg.fit(X_train, y_train).score(X_test, y_test)
    linear = LinearRegression().fit(X_train, y_train).score(X_test, y_test)
    assert linear < 0.5
    assert r2 > 0.9, (r2, linear)
    assert reg.predict(X_test).shape == (200,)
    Y = np.column_stack([y, 10 * y + 100])  # a scale and an offset of their own
    reg2 = clone(reg).fit(X_train, Y[:400])
    assert reg2.predict(X_test).shape == (200, 2)
    assert reg2.score(X_test, Y[400:]) > 0.9


def test_fitted_estimator_pickles_without_training_data():
    X, y = load_digits(n_class=3, return_X_y=True)
    clf = ADMMClassifier(hidden_layer_sizes=(8,), max_iter=3).fit(X, y)
    blob = pickle.dumps(clf)
    assert len(blob) < X.nbytes  # weights and options, not the data nor ADMM state
    np.testing.assert_array_equal(pickle.loads(blob).predict(X), clf.predict(X))


def test_import_admm_does_not_import_sklearn():
    code = "import sys, admm; admm.ADMMNetwork; assert 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -------------------------------------------------------------------- MPI


@pytest.mark.mpi
def test_fit_is_collective_over_a_communicator(tmp_path):
    """2 ranks, each its own block: classes_ is the union of the ranks'
    labels, every rank holds the same weights, and with deterministic sums
    they are those of one process on all the data, bit for bit. A bad block
    on one rank raises on both."""
    run_mpi(2, [str(PROGRAMS / "sklearn_fit.py"), str(tmp_path)], timeout=120)
    with np.load(tmp_path / "result.npz") as f:
        r = {k: f[k] for k in f.files}
    assert set(r["y"][:64]) == {"a", "b"} and "c" in set(r["y"][64:])
    for rank in (0, 1):
        assert str(r[f"error_{rank}"]).startswith("rank 1: Input X contains NaN")
        np.testing.assert_array_equal(r[f"classes_{rank}"], ["a", "b", "c"])
        assert r[f"n_features_{rank}"] == 5
    alone = ADMMClassifier(
        hidden_layer_sizes=(8,), max_iter=10, deterministic=True, block_size=32
    ).fit(r["X"], r["y"])
    for i, w in enumerate(alone.coefs_):
        np.testing.assert_array_equal(r[f"clf_0_{i}"], r[f"clf_1_{i}"])
        np.testing.assert_array_equal(r[f"clf_0_{i}"], w)
    reg = ADMMRegressor(hidden_layer_sizes=(8,), max_iter=10).fit(r["X"], r["target"])
    for i in range(2):
        np.testing.assert_array_equal(r[f"reg_0_{i}"], r[f"reg_1_{i}"])
    np.testing.assert_array_equal(r["reg_pred_0"], r["reg_pred_1"])
    # Without deterministic sums only rounding separates 2 ranks from one.
    np.testing.assert_allclose(r["reg_pred_0"], reg.predict(r["X"]), rtol=1e-6, atol=1e-8)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
