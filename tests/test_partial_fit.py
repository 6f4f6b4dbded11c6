"""partial_fit: one epoch per call, statistics of the first chunk, all or nothing."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from seqpipe import LSTMClassifier, LSTMRegressor
from seqpipe.callbacks import Callback

SMALL = {"hidden_size": 8, "random_state": 0}


def _toy(rng, n):
    X = rng.normal(size=(n, 8, 2))
    y = X[:, :, 0].sum(axis=1) + 0.5 * X[:, -1, 1] + 5.0
    return X, y


def _chunks(n, size):
    return [slice(start, start + size) for start in range(0, n, size)]


def _flat(state):
    """An optimizer's state_dict as comparable plain values (tensors as lists)."""
    groups = [{k: v for k, v in group.items() if k != "params"} for group in state["param_groups"]]
    moments = {
        (index, key): value.tolist() if torch.is_tensor(value) else value
        for index, values in state["state"].items()
        for key, value in values.items()
    }
    return groups, moments


def _snapshot(model):
    """Everything a failed call must leave as it was."""
    return {
        "weights": {k: v.clone() for k, v in model.module_.state_dict().items()},
        "optimizer": _flat(model.optimizer_.state_dict()),
        "history": [dict(r) for r in model.history_],
        "x_mean": model.x_mean_.copy(),
        "n_features_in": model.n_features_in_,
    }


def _assert_unchanged(model, before):
    after = _snapshot(model)
    for name, value in before["weights"].items():
        assert torch.equal(value, after["weights"][name]), name
    assert before["optimizer"] == after["optimizer"]
    assert before["history"] == after["history"]
    assert_array_equal(before["x_mean"], after["x_mean"])
    assert before["n_features_in"] == after["n_features_in"]


def test_regressor_chunks_reach_the_score_of_fit(rng):
    X, y = _toy(rng, 200)
    X_test, y_test = _toy(rng, 200)
    epochs = 8
    full = LSTMRegressor(epochs=epochs, lr=0.01, **SMALL).fit(X, y)
    incremental = LSTMRegressor(lr=0.01, **SMALL)
    for _ in range(epochs):
        for part in _chunks(len(X), 100):
            incremental.partial_fit(X[part], y[part])
    assert incremental.n_epochs_ == epochs * 2
    # Measured: R^2 0.87 with fit, 0.89 with partial_fit (twice the optimizer steps).
    fit_r2, partial_r2 = full.score(X_test, y_test), incremental.score(X_test, y_test)
    assert partial_r2 > 0.8
    assert partial_r2 > fit_r2 - 0.05


def test_classifier_chunks_reach_the_accuracy_of_fit(rng):
    X, _ = _toy(rng, 160)
    X_test, _ = _toy(rng, 200)
    label = np.array(["down", "up"])
    y, y_test = label[(X[:, :, 0].sum(1) > 0) * 1], label[(X_test[:, :, 0].sum(1) > 0) * 1]
    epochs = 8
    # The class is the series' level, which the default per-series scaling removes.
    params = {**SMALL, "local_scaling": None}
    full = LSTMClassifier(epochs=epochs, **params).fit(X, y)
    incremental = LSTMClassifier(**params)
    for _ in range(epochs):
        for part in _chunks(len(X), 80):
            incremental.partial_fit(X[part], y[part], classes=label)
    assert incremental.classes_.tolist() == ["down", "up"]
    # Measured: accuracy 0.91 with fit, 0.895 with partial_fit.
    fit_acc, partial_acc = full.score(X_test, y_test), incremental.score(X_test, y_test)
    assert partial_acc > 0.85
    assert partial_acc > fit_acc - 0.08


def test_first_call_trains_like_one_epoch_of_fit(rng):
    X, y = _toy(rng, 64)
    params = {**SMALL, "shuffle": False, "lr": 0.01}
    fitted = LSTMRegressor(epochs=1, **params).fit(X, y)
    partial = LSTMRegressor(**params).partial_fit(X, y)
    assert_allclose(partial.predict(X), fitted.predict(X), rtol=1e-6)


def test_scaling_statistics_are_those_of_the_first_chunk(rng):
    X, y = _toy(rng, 120)
    first, later = slice(0, 60), slice(60, 120)
    model = LSTMRegressor(**SMALL).partial_fit(X[first], y[first])
    x_mean, x_scale = model.x_mean_.copy(), model.x_scale_.copy()
    y_mean, y_scale = model.y_mean_.copy(), model.y_scale_.copy()
    assert_allclose(x_mean, X[first].reshape(-1, 2).mean(axis=0))
    assert_allclose(y_mean, [y[first].mean()])
    # A later chunk on another offset trains, but is scaled with the first chunk's statistics.
    model.partial_fit(X[later] + 100.0, y[later] + 100.0)
    assert_array_equal(model.x_mean_, x_mean)
    assert_array_equal(model.x_scale_, x_scale)
    assert_array_equal(model.y_mean_, y_mean)
    assert_array_equal(model.y_scale_, y_scale)


def test_history_grows_by_one_record_per_call_and_the_optimizer_state_persists(rng):
    X, y = _toy(rng, 40)
    model = LSTMRegressor(epochs=3, batch_size=10, **SMALL).fit(X, y)
    model.partial_fit(X[:20], y[:20])
    model.partial_fit(X[20:], y[20:])
    assert [r["epoch"] for r in model.history_] == [1, 2, 3, 4, 5]
    assert model.n_epochs_ == 5
    # Adam's moments continue: 4 batches per fit epoch, 2 per partial_fit call.
    steps = {int(state["step"]) for state in model.optimizer_.state.values()}
    assert steps == {3 * 4 + 2 + 2}


def test_every_call_runs_at_lr_whatever_the_schedule(rng):
    X, y = _toy(rng, 40)
    labels = (y > y.mean()).astype(int)
    model = LSTMClassifier(lr=0.02, lr_schedule="cosine", epochs=2, **SMALL).fit(X, labels)
    assert model.history_[-1]["lr"] < 0.02  # cosine annealed within fit
    for _ in range(3):
        model.partial_fit(X, labels)
    assert [r["lr"] for r in model.history_[2:]] == [0.02] * 3


def test_classes_are_required_on_the_first_call(rng):
    X, y = _toy(rng, 20)
    model = LSTMClassifier(**SMALL)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        model.partial_fit(X, (y > y.mean()).astype(int))
    with pytest.raises(NotFittedError):
        model.predict(X)
    assert not hasattr(model, "classes_")


def test_a_chunk_may_miss_classes_but_not_hold_unknown_ones(rng):
    X, _ = _toy(rng, 30)
    model = LSTMClassifier(**SMALL).partial_fit(X, np.repeat([0, 1, 0], 10), classes=[2, 0, 1])
    assert model.classes_.tolist() == [0, 1, 2]
    assert model.predict_proba(X).shape == (30, 3)
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"label\(s\) \[5\] that are not in classes_"):
        model.partial_fit(X, np.repeat([0, 5, 2], 10))
    with pytest.raises(ValueError, match="is not the same as on last call"):
        model.partial_fit(X, np.repeat([0, 1, 2], 10), classes=[0, 1, 2, 3])
    _assert_unchanged(model, before)
    model.partial_fit(X, np.repeat([2, 1, 0], 10), classes=[0, 1, 2])  # the same: accepted


def test_after_fit_partial_fit_continues_with_the_fitted_classes(rng):
    X, y = _toy(rng, 30)
    labels = np.where(y > y.mean(), "b", "a")
    model = LSTMClassifier(epochs=1, **SMALL).fit(X, labels)
    model.partial_fit(X[:10], np.full(10, "a"))  # classes_ come from fit
    with pytest.raises(ValueError, match=r"\['c'\] that are not in classes_"):
        model.partial_fit(X[:10], np.full(10, "c"))


def test_another_feature_count_is_an_error_and_changes_nothing(rng):
    X, y = _toy(rng, 30)
    model = LSTMRegressor(**SMALL).partial_fit(X, y)
    before = _snapshot(model)
    with pytest.raises(ValueError, match="X has 1 features, but LSTMRegressor is expecting 2"):
        model.partial_fit(X[:, :, :1], y)
    _assert_unchanged(model, before)


def test_another_target_layout_is_an_error_and_changes_nothing(rng):
    X, y = _toy(rng, 30)
    model = LSTMRegressor(**SMALL).partial_fit(X, y)
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"outputs are 1 value\(s\) per sequence .* y needs 2"):
        model.partial_fit(X, np.column_stack([y, y]))
    _assert_unchanged(model, before)


def test_validation_fraction_is_refused(rng):
    X, y = _toy(rng, 30)
    model = LSTMRegressor(validation_fraction=0.2, **SMALL)
    with pytest.raises(ValueError, match=r"validation_fraction=0\.2"):
        model.partial_fit(X, y)
    assert not hasattr(model, "module_")


def test_pickle_and_clone_after_partial_fit(rng):
    X, y = _toy(rng, 40)
    model = LSTMRegressor(**SMALL).partial_fit(X[:20], y[:20])
    restored = pickle.loads(pickle.dumps(model))
    assert_array_equal(restored.predict(X), model.predict(X))
    # The restored model continues exactly as the original does.
    model.partial_fit(X[20:], y[20:])
    restored.partial_fit(X[20:], y[20:])
    assert_array_equal(restored.predict(X), model.predict(X))
    assert restored.n_epochs_ == 2
    fresh = clone(model)
    assert not hasattr(fresh, "module_")
    assert fresh.partial_fit(X, y).n_epochs_ == 1


class _FailOnEpoch(Callback):
    """Raises at the end of the given epoch, after the weights were trained in place."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, estimator, record):
        if record["epoch"] == self.epoch:
            raise RuntimeError("interrupted")


def test_a_call_that_fails_during_training_restores_the_network(rng):
    X, y = _toy(rng, 30)
    model = LSTMRegressor(callbacks=[_FailOnEpoch(2)], **SMALL).partial_fit(X, y)
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match="interrupted"):
        model.partial_fit(X, y)
    _assert_unchanged(model, before)
    model.set_params(callbacks=None).partial_fit(X, y)
    assert model.n_epochs_ == 2


@pytest.mark.parametrize("cls", ["regressor", "classifier"])
def test_sample_weight_zero_drops_and_two_duplicates_in_one_call(cls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 6, 2))
    if cls == "regressor":
        y, make, extra = X[:, -1, 0], LSTMRegressor, {}
    else:
        y, make, extra = (X[:, -1, 0] > 0).astype(int), LSTMClassifier, {"classes": [0, 1]}
    params = {"hidden_size": 4, "batch_size": 64, "shuffle": False, "random_state": 0}
    weights = np.ones(12)
    weights[[2, 5]] = 0.0
    weights[7] = 2.0
    weighted = make(**params).partial_fit(X, y, sample_weight=weights, **extra)
    rows = [i for i in range(12) if weights[i] > 0] + [7]
    rows.sort()
    explicit = make(**params).partial_fit(X[rows], y[rows], **extra)
    out = "predict" if cls == "regressor" else "predict_proba"
    np.testing.assert_allclose(
        getattr(weighted, out)(X), getattr(explicit, out)(X), rtol=1e-5, atol=1e-6
    )
