"""Training that is never silently wrong: the validation split, non-finite losses,
precision, all-or-nothing fits, and the callbacks protocol."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.validation import check_is_fitted

from seqpipe import (
    LSTMClassifier,
    LSTMRegressor,
    LSTMTransformer,
    NonFiniteLossError,
    runtime,
)
from seqpipe.callbacks import Callback, EarlyStopping, ProgressBar, StopTraining
from seqpipe.onnx import export
from seqpipe.preprocessing import SequenceScaler

FAST = {"hidden_size": 4, "epochs": 3, "random_state": 0}
QUICK = {"verify_batch_sizes": (1, 3), "verify_lengths": (2, 9)}
#: A learning rate that sends the loss to infinity within a few epochs.
DIVERGE = {"optimizer": "sgd", "lr": 1e20}


def _trend(n: int = 40, t: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Windows of a trending series and the next value: later rows sit higher."""
    series = 0.1 * np.arange(n + t) + np.sin(np.arange(n + t) * 0.3)
    X = np.stack([series[i : i + t] for i in range(n)])[:, :, None]
    return X, series[t : t + n]


# --- the validation split -------------------------------------------------------------
@pytest.mark.parametrize("local_scaling", [None, "standard"])
def test_held_out_rows_shape_no_scaling_statistic(local_scaling):
    X, y = _trend()
    n_train = 30  # validation_fraction=0.25 holds out the last 10 rows
    # Early stopping picks its epoch by the held-out rows by design; here it neither
    # stops nor restores, so only a scaler could carry them into training.
    params = dict(
        FAST,
        validation_fraction=0.25,
        local_scaling=local_scaling,
        callbacks=[EarlyStopping(patience=None, restore_best_weights=False)],
    )
    model = LSTMRegressor(**params).fit(X, y)
    X_other, y_other = X.copy(), y.copy()
    X_other[n_train:] = X_other[n_train:] * 3 + 50
    y_other[n_train:] = y_other[n_train:] * 3 + 50
    other = LSTMRegressor(**params).fit(X_other, y_other)
    assert_array_equal(other.predict(X[:n_train]), model.predict(X[:n_train]))
    assert_array_equal(other.x_mean_, model.x_mean_)
    if local_scaling is None:
        assert_allclose(model.x_mean_, [X[:n_train].mean()])
        assert_allclose(model.y_mean_, [y[:n_train].mean()])
    assert "valid_loss" in model.history_[0]


# --- non-finite losses ----------------------------------------------------------------
@pytest.mark.parametrize("validation_fraction", [0.0, 0.25])
def test_a_diverging_fit_stops_with_advice_and_leaves_nothing_fitted(validation_fraction):
    X, y = _trend()
    model = LSTMRegressor(validation_fraction=validation_fraction, **DIVERGE, **FAST)
    with pytest.raises(NonFiniteLossError, match=r"loss became (nan|inf) at epoch [1-3];") as info:
        model.fit(X, y)
    assert isinstance(info.value, ValueError)  # what sklearn's MLP raises for NaN
    message = str(info.value)
    assert "lr=1e+20" in message and "clip_grad_norm" in message
    with pytest.raises(NotFittedError):
        check_is_fitted(model)


@pytest.mark.parametrize("warm_start", [False, True])
def test_a_failed_refit_keeps_the_fitted_model(warm_start):
    X, y = _trend()
    model = LSTMRegressor(warm_start=warm_start, **FAST).fit(X, y)
    before = model.predict(X)
    module, history = model.module_, list(model.history_)
    model.set_params(**DIVERGE)
    with pytest.raises(NonFiniteLossError):
        model.fit(X, y)
    assert_array_equal(model.predict(X), before)
    assert model.module_ is module and model.history_ == history and model.n_epochs_ == 3
    # The optimizer was restored too: training on from here matches a model that
    # never saw the failed fit.
    model.set_params(optimizer="adam", lr=1e-3)
    twin = LSTMRegressor(warm_start=warm_start, **FAST).fit(X, y)
    assert_array_equal(model.fit(X, y).predict(X), twin.fit(X, y).predict(X))


def test_export_refuses_a_network_with_non_finite_weights(tmp_path):
    X, y = _trend()
    model = LSTMRegressor(**FAST).fit(X, y)
    with torch.no_grad():
        next(model.module_.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"holds NaN or infinity.*Refit it"):
        export(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


# --- precision ------------------------------------------------------------------------
def test_an_offset_of_1e7_loses_no_precision_in_python_or_onnx(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6, 1))
    y = X[:, -3:, 0].sum(axis=1)
    params = dict(FAST, hidden_size=6, epochs=10)
    plain = LSTMRegressor(**params).fit(X, y)
    offset = LSTMRegressor(**params).fit(X + 1e7, y)
    expected = plain.predict(X)
    assert_allclose(offset.predict(X + 1e7), expected, atol=1e-3)
    served = runtime.load(export(offset, tmp_path / "offset.onnx", **QUICK))
    assert served.input_dtype == np.float64  # float32 keeps 1e7 to the nearest unit
    assert_allclose(served.predict(X + 1e7), expected, atol=1e-3)
    assert_allclose(served.predict(list(X[:4, :, 0] + 1e7)), expected[:4], atol=1e-3)
    # Scaling first with SequenceScaler (float64) exports and serves the same numbers.
    pipe = make_pipeline(SequenceScaler(), LSTMRegressor(**params)).fit(X + 1e7, y)
    assert_allclose(pipe.predict(X + 1e7), expected, atol=1e-3)
    served = runtime.load(export(pipe, tmp_path / "pipe.onnx", **QUICK))
    assert_allclose(served.predict(X + 1e7), expected, atol=1e-3)


# --- validate before mutating ---------------------------------------------------------
def test_warm_start_with_other_features_is_an_error_and_changes_nothing():
    X, y = _trend()
    model = LSTMRegressor(warm_start=True, **FAST).fit(X, y)
    before, x_mean = model.predict(X), model.x_mean_
    with pytest.raises(ValueError, match=r"reads 1 feature\(s\) per time step, but X has 2"):
        model.fit(np.concatenate([X, X], axis=2), y)
    assert model.n_features_in_ == 1 and model.x_mean_ is x_mean
    assert_array_equal(model.predict(X), before)


def test_warm_start_with_other_classes_or_targets_is_an_error():
    X, y = _trend()
    labels = np.where(y > np.median(y), "up", "down")
    clf = LSTMClassifier(warm_start=True, **FAST).fit(X, labels)
    with pytest.raises(ValueError, match=r"classes \['down', 'up'\], but y has the classes"):
        clf.fit(X, np.where(labels == "up", "high", "low"))
    assert list(clf.classes_) == ["down", "up"]
    reg = LSTMRegressor(warm_start=True, **FAST).fit(X, y)
    with pytest.raises(ValueError, match=r"outputs are 1 value\(s\) per sequence.*but y needs"):
        reg.fit(X, np.stack([y, y], axis=1))
    assert reg.target_layout_.kind == "single"


# --- one place for targets ------------------------------------------------------------
def test_the_transformer_checks_class_targets_as_the_classifier_does():
    X, y = _trend()
    for model in (LSTMClassifier(**FAST), LSTMTransformer(task="classification", **FAST)):
        with pytest.raises(ValueError, match="inconsistent numbers of samples"):
            model.fit(X, (y > 3)[:-1])
        with pytest.raises(ValueError, match="at least 2 classes"):
            model.fit(X, np.ones(len(X)))


def test_forecast_targets_are_the_next_input_as_the_network_reads_it():
    # With local scaling the network reads each window in its own units; so must the
    # next-step targets be, or a level of 1e6 turns into enormous targets.
    X, _ = _trend()
    params = dict(FAST, local_scaling="standard")
    small = LSTMTransformer(**params).fit(X)
    large = LSTMTransformer(**params).fit(X * 1000 + 1e6)
    assert_allclose(large.transform(X * 1000 + 1e6), small.transform(X), atol=1e-5)


# --- callbacks ------------------------------------------------------------------------
class Recorder(Callback):
    """Records every call; stops after ``stop_at`` epochs (by return or by raising)."""

    def __init__(self, stop_at=None, raise_stop=False):
        self.stop_at = stop_at
        self.raise_stop = raise_stop
        self.calls = []

    def on_train_begin(self, estimator):
        self.calls.append(("begin", len(estimator.history_)))

    def on_epoch_end(self, estimator, record):
        assert estimator.history_[-1] is record and estimator.module_ is not None
        self.calls.append(("epoch", record["epoch"]))
        if self.stop_at is not None and record["epoch"] >= self.stop_at:
            if self.raise_stop:
                raise StopTraining
            return True
        return None

    def on_train_end(self, estimator):
        self.calls.append(("end", len(estimator.history_)))


def test_callbacks_see_every_epoch_and_work_on_clones():
    X, y = _trend()
    spec = Recorder()
    model = LSTMRegressor(callbacks=[spec], **FAST).fit(X, y)
    assert spec.calls == []  # the parameter is a spec; fit used a clone
    (used,) = model.callbacks_
    assert used.calls == [("begin", 0), ("epoch", 1), ("epoch", 2), ("epoch", 3), ("end", 3)]
    assert model.get_params()["callbacks"] == [spec]
    copy = clone(model)
    assert copy.callbacks[0] is not spec and copy.callbacks[0].calls == []
    search = GridSearchCV(model, {"hidden_size": [2, 4]}, cv=2).fit(X, y)
    assert search.best_estimator_.callbacks_[0].calls[-1][0] == "end"


@pytest.mark.parametrize("raise_stop", [False, True])
def test_a_callback_stops_training_and_the_others_still_see_that_epoch(raise_stop):
    X, y = _trend()
    stopper, witness = Recorder(stop_at=2, raise_stop=raise_stop), Recorder()
    model = LSTMRegressor(callbacks=[stopper, witness], **FAST).fit(X, y)
    assert model.n_epochs_ == 2
    assert model.callbacks_[1].calls[-2:] == [("epoch", 2), ("end", 2)]


def test_a_failing_callback_leaves_the_estimator_as_it_was():
    class Broken(Callback):
        def on_epoch_end(self, estimator, record):
            raise RuntimeError("disk full")

    X, y = _trend()
    model = LSTMRegressor(callbacks=[Broken()], **FAST)
    with pytest.raises(RuntimeError, match="disk full"):
        model.fit(X, y)
    assert not hasattr(model, "module_") and not hasattr(model, "x_mean_")


def test_callbacks_must_be_callback_instances():
    X, y = _trend()
    with pytest.raises(ValueError, match=r"Callback instances .* item 1 is <built-in function"):
        LSTMRegressor(callbacks=[Recorder(), print], **FAST).fit(X, y)


def test_early_stopping_parameters_build_the_built_in_callback():
    X, y = _trend()
    model = LSTMRegressor(validation_fraction=0.25, patience=3, **FAST).fit(X, y)
    [stopper] = model.callbacks_
    assert isinstance(stopper, EarlyStopping) and stopper.patience == 3
    assert model.best_epoch_ == stopper.best_epoch_
    # One given in callbacks replaces it, and may watch the training loss instead.
    own = EarlyStopping(patience=1, monitor="train_loss")
    model = LSTMRegressor(validation_fraction=0.25, callbacks=[own], **FAST).fit(X, y)
    assert [type(c) for c in model.callbacks_] == [EarlyStopping]
    assert model.callbacks_[0].monitor == "train_loss"
    with pytest.raises(ValueError, match=r"monitors 'valid_loss'.*validation_fraction > 0"):
        LSTMRegressor(callbacks=[EarlyStopping()], **FAST).fit(X, y)
    with pytest.raises(ValueError, match=r"patience must be an int >= 1 or None, got 0"):
        LSTMRegressor(callbacks=[EarlyStopping(patience=0)], **FAST).fit(X, y)


def test_a_fitted_model_with_callbacks_pickles(capsys):
    X, y = _trend()
    params = dict(FAST, validation_fraction=0.25, verbose=1, callbacks=[Recorder()])
    model = LSTMRegressor(**params).fit(X, y)
    assert [type(c) for c in model.callbacks_] == [EarlyStopping, Recorder, ProgressBar]
    loaded = pickle.loads(pickle.dumps(model))
    assert_array_equal(loaded.predict(X), model.predict(X))


def test_verbose_bar_leaves_no_stale_characters(capsys):
    X, y = _trend()
    model = LSTMRegressor(verbose=1, **FAST).fit(X, y)
    err = capsys.readouterr().err
    frames = [frame.rstrip("\n") for frame in err.split("\r") if frame.strip()]
    # Each redraw covers the one before (a shorter line is padded with spaces), so a
    # terminal shows exactly the last frame: the final epoch and its loss.
    assert all(len(b) >= len(a.rstrip()) for a, b in itertools.pairwise(frames))
    last = frames[-1].rstrip()
    assert "3/3" in last
    assert last.endswith(f"train_loss={model.history_[-1]['train_loss']:.5g}]")
