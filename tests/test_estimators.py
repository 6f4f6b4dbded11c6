"""Behaviour users rely on, beyond what scikit-learn's generic checks cover."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import make_pipeline

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer
from seqpipe.preprocessing import SequenceScaler

FAST = {"hidden_size": 8, "epochs": 3, "random_state": 0}


def test_two_d_input_is_one_feature_sequences(rng):
    X = rng.normal(size=(30, 5))
    model = LSTMRegressor(**FAST).fit(X, X.sum(axis=1))
    assert model.n_features_in_ == 1
    assert_allclose(model.predict(X), model.predict(X[:, :, None]))


def test_pandas_and_integer_input(rng):
    X = rng.integers(0, 10, size=(30, 4))
    y = pd.Series(X.sum(axis=1))
    model = LSTMRegressor(**FAST).fit(pd.DataFrame(X), y)
    assert_allclose(model.predict(pd.DataFrame(X)), model.predict(X.astype(float)))


def test_nan_padded_array_equals_list_of_sequences(rng):
    X = rng.normal(size=(20, 6, 2))
    model = LSTMRegressor(bidirectional=True, **FAST).fit(X, X[:, -1, 0])
    ragged = [rng.normal(size=(n, 2)) for n in (6, 3, 1)]
    padded = np.full((3, 6, 2), np.nan)
    for i, seq in enumerate(ragged):
        padded[i, : len(seq)] = seq
    assert_allclose(model.predict(padded), model.predict(ragged))


def test_fit_on_ragged_sequences(rng):
    sequences = [rng.normal(size=(n, 1)) for n in rng.integers(2, 9, size=40)]
    y = np.array([s.sum() for s in sequences])
    model = LSTMRegressor(hidden_size=8, epochs=150, lr=0.01, random_state=0).fit(sequences, y)
    assert model.score(sequences, y) > 0.9


def test_per_step_targets_with_padding_predict_nan_at_padding(rng):
    X = rng.normal(size=(20, 5, 1))
    model = LSTMRegressor(**FAST).fit(X, np.cumsum(X, axis=1))
    out = model.predict([rng.normal(size=(5, 1)), rng.normal(size=(3, 1))])
    assert out.shape == (2, 5, 1)
    assert np.isnan(out[1, 3:]).all() and np.isfinite(out[1, :3]).all()


def test_score_accepts_three_d_targets(rng):
    X = rng.normal(size=(30, 6, 1))
    y = np.cumsum(X, axis=1)
    model = LSTMRegressor(hidden_size=16, epochs=120, lr=0.01, random_state=0).fit(X, y)
    assert model.score(X, y) > 0.9


def test_learns_sklearn_toy_problems():
    # The accuracy half of check_classifiers_train / check_regressors_train, which
    # stop early for us (see test_sklearn_checks.py). local_scaling=None: a blob's
    # two coordinates read as a 2-step series would each z-normalize to +-1, and
    # here the level is the class (the classifier's default suits real series).
    X, y = make_blobs(n_samples=300, random_state=0, n_features=2, cluster_std=0.1)
    params = {"hidden_size": 8, "epochs": 20, "lr": 0.01, "random_state": 0}
    clf = LSTMClassifier(local_scaling=None, **params).fit(X, y)
    assert clf.score(X, y) > 0.83
    string_labels = np.array(["a", "b", "c"])[y]
    clf = LSTMClassifier(local_scaling=None, **params).fit(X, string_labels)
    assert clf.predict(X).dtype.kind == "U" and clf.score(X, string_labels) > 0.83


def test_binary_classifier_probabilities(rng):
    X = rng.normal(size=(60, 5, 1))
    y = X[:, :, 0].sum(axis=1) > 0
    # The class is the series' level, which the default per-series scaling removes.
    clf = LSTMClassifier(hidden_size=8, epochs=40, lr=0.01, random_state=0, local_scaling=None)
    clf.fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (60, 2) and list(clf.classes_) == [False, True]
    assert clf.score(X, y) > 0.9


def test_same_random_state_same_predictions_and_global_rng_untouched(rng):
    import torch

    X = rng.normal(size=(30, 4, 2))
    y = X.sum(axis=(1, 2))
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = LSTMRegressor(dropout=0.2, num_layers=2, **FAST).fit(X, y)
    after = torch.rand(1)
    b = LSTMRegressor(dropout=0.2, num_layers=2, **FAST).fit(X, y)
    assert np.array_equal(a.predict(X), b.predict(X))
    assert torch.equal(before, after)
    c = LSTMRegressor(**{**FAST, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a.predict(X), c.predict(X))


def test_history_early_stopping_restores_best(rng):
    X = rng.normal(size=(60, 5, 1))
    y = rng.normal(size=60)  # unlearnable: validation loss soon stops improving
    model = LSTMRegressor(
        hidden_size=16, epochs=200, lr=0.05, validation_fraction=0.25, patience=3, random_state=0
    ).fit(X, y)
    losses = [h["valid_loss"] for h in model.history_]
    assert model.n_epochs_ < 200
    assert model.best_epoch_ == int(np.argmin(losses)) + 1
    assert model.n_epochs_ - model.best_epoch_ == 3


def test_warm_start_continues_training(rng):
    X = rng.normal(size=(30, 4, 1))
    y = X.sum(axis=(1, 2))
    model = LSTMRegressor(warm_start=True, **FAST).fit(X, y)
    module = model.module_
    model.fit(X, y)
    assert model.module_ is module and model.n_epochs_ == 6
    cold = LSTMRegressor(**FAST).fit(X, y)
    cold.fit(X, y)
    assert cold.n_epochs_ == 3


def test_verbose_progress(rng, capsys):
    X = rng.normal(size=(10, 3, 1))
    LSTMRegressor(hidden_size=4, epochs=2, verbose=2).fit(X, X.sum(axis=(1, 2)))
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "train_loss" in err


def test_large_targets_just_work():
    # Seed S6: y = 15 x; targets in the hundreds need no scaling by the user.
    X = np.arange(1, 21, dtype=float).reshape(20, 1, 1)
    model = LSTMRegressor(hidden_size=32, epochs=400, lr=0.01, random_state=0).fit(
        X, 15 * X[:, 0, 0]
    )
    assert abs(model.predict([[[10.0]]])[0] - 150) < 5


def test_transformer_features_feed_a_downstream_model(rng):
    from sklearn.linear_model import Ridge

    X = rng.normal(size=(80, 6, 1))
    y = X[:, -1, 0] + X[:, -2, 0]
    pipe = make_pipeline(
        LSTMTransformer(hidden_size=16, epochs=60, lr=0.01, random_state=0), Ridge(alpha=1e-3)
    )
    assert pipe.fit(X, y).score(X, y) > 0.8
    encoder = pipe[0]
    assert encoder.task_ == "regression"
    assert list(encoder.get_feature_names_out())[:2] == ["lstmtransformer0", "lstmtransformer1"]


def test_transformer_unsupervised_forecast_task(rng):
    X = rng.normal(size=(20, 6, 2))
    encoder = LSTMTransformer(**FAST).fit(X)
    assert encoder.task_ == "forecast"
    assert encoder.transform(X).shape == (20, 8)


def test_pipeline_grid_search_over_architecture(rng):
    X = rng.normal(size=(60, 5, 2))
    y = X[:, -1, 0] * 2 + X[:, 0, 1]
    pipe = make_pipeline(SequenceScaler(), LSTMRegressor(epochs=5, random_state=0))
    search = GridSearchCV(
        pipe,
        {"lstmregressor__architecture": ["lstm", "gru"], "lstmregressor__hidden_size": [4, 8]},
        cv=TimeSeriesSplit(n_splits=3),
        n_jobs=2,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.predict(X[:3]).shape == (3,)


def test_cuda_request_without_cuda_is_clear(rng):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X = rng.normal(size=(5, 3, 1))
    with pytest.raises(ValueError, match="CUDA is not available"):
        LSTMRegressor(device="cuda", **FAST).fit(X, X.sum(axis=(1, 2)))
    model = LSTMRegressor(device="auto", **FAST).fit(X, X.sum(axis=(1, 2)))
    assert model.device_.type == "cpu"


def _sine_windows(horizon: int):
    series = np.sin(np.arange(300) * 0.1)
    start = np.arange(200)[:, None]
    X = series[start + np.arange(20)][:, :, None]
    Y = series[start + 20 + np.arange(horizon)]
    return X, Y


@pytest.mark.parametrize("architecture", ["lstm", "gru"])
def test_seq2seq_encoder_decoder_forecasts_horizon(architecture):
    # Seed S12: the encoder's final state initialises a decoder emitting 5 steps.
    X, Y = _sine_windows(5)
    model = LSTMRegressor(
        architecture, head="seq2seq", hidden_size=16, epochs=40, lr=0.01, random_state=0
    ).fit(X, Y)
    assert model.predict(X).shape == (200, 5)
    assert model.score(X, Y) > 0.95
    assert model.module_.decoder.hidden_size == model.module_.body.output_size


def test_seq2seq_multiple_targets_and_grid_search():
    X, Y = _sine_windows(3)
    Y3 = np.stack([Y, 2 * Y], axis=2)
    search = GridSearchCV(
        LSTMRegressor(hidden_size=8, epochs=3, random_state=0),
        {"head": ["seq2seq"], "bidirectional": [False, True]},
        cv=TimeSeriesSplit(n_splits=2),
    ).fit(X, Y3)
    assert search.best_estimator_.predict(X[:4]).shape == (4, 3, 2)


def test_seq2seq_needs_horizon_targets():
    X, Y = _sine_windows(3)
    with pytest.raises(ValueError, match=r"head='seq2seq' needs y of shape \(n_samples, horizon\)"):
        LSTMRegressor(head="seq2seq", epochs=1).fit(X, Y[:, 0])


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop"])
def test_named_optimizers_update_all_tensors_at_once(name, sequences):
    # The per-tensor loop torch uses by default on CPU dominates small models' steps.
    y = sequences[:, -1, 0]
    est = LSTMRegressor(hidden_size=4, epochs=2, optimizer=name, random_state=0).fit(sequences, y)
    defaults = est.optimizer_.defaults
    assert defaults.get("fused") or defaults.get("foreach")
    assert np.isfinite(est.history_[-1]["train_loss"])


def test_optimizer_class_gets_lr_and_weight_decay_only(sequences):
    est = LSTMRegressor(
        hidden_size=4, epochs=1, optimizer=torch.optim.Adagrad, lr=0.05, weight_decay=1e-4
    ).fit(sequences, sequences[:, -1, 0])
    assert isinstance(est.optimizer_, torch.optim.Adagrad)
    assert est.optimizer_.defaults["lr"] == 0.05
    assert est.optimizer_.defaults["weight_decay"] == 1e-4
