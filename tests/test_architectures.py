"""One suite for every registered architecture (built-in and plugin) and output mode."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import architecture_cases, case_id
from numpy.testing import assert_allclose
from sklearn.base import clone

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer

CASES = architecture_cases()
FAST = {"epochs": 2, "batch_size": 16, "random_state": 0}


def _targets(mode: str, X: np.ndarray, rng: np.random.Generator):
    n = X.shape[0]
    if mode == "single":
        return X[:, :, 0].sum(axis=1)
    if mode == "vector":
        return np.stack([X[:, -1, 0], X[:, :, 1].mean(axis=1)], axis=1)
    if mode == "per_step":
        return np.cumsum(X[:, :, :1], axis=1)
    if mode == "classifier":
        return np.array(["low", "mid", "high"])[rng.integers(0, 3, size=n)]
    return None  # transformer: self-supervised


def _make(mode: str, name: str, params: dict):
    kwargs = {"architecture": name, **params, **FAST}
    if mode == "classifier":
        return LSTMClassifier(**kwargs)
    if mode == "transformer":
        return LSTMTransformer(**kwargs)
    return LSTMRegressor(**kwargs)


def _output(model, X):
    return model.transform(X) if isinstance(model, LSTMTransformer) else model.predict(X)


MODES = ["single", "vector", "per_step", "classifier", "transformer"]


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("mode", MODES)
def test_fit_predict_roundtrip(case, mode, sequences, rng):
    name, params = case
    X = sequences
    y = _targets(mode, X, rng)
    model = _make(mode, name, params).fit(X, y)
    out = _output(model, X)

    expected_shape = {
        "single": (40,),
        "vector": (40, 2),
        "per_step": (40, 7, 1),
        "classifier": (40,),
    }.get(mode)
    if expected_shape:
        assert out.shape == expected_shape
    if mode == "classifier":
        assert set(out) <= {"low", "mid", "high"}
        proba = model.predict_proba(X)
        assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.isfinite(out.astype(float) if mode != "classifier" else proba).all()

    # Sequences may be longer or shorter at predict time than at fit time.
    longer = np.concatenate([X, X[:, :5]], axis=1)[:5]
    assert _output(model, longer).shape[0] == 5

    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(_output(restored, X), out)

    fresh = clone(model)
    assert not hasattr(fresh, "module_")
    assert fresh.get_params() == model.get_params()


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_ragged_batch_matches_each_sequence_alone(case, rng):
    name, params = case
    X = rng.normal(size=(12, 6, 2))
    model = LSTMRegressor(architecture=name, **params, **FAST).fit(X, X[:, -1, 0])
    sequences = [rng.normal(size=(length, 2)) for length in (6, 2, 9, 1, 4)]
    together = model.predict(sequences)
    alone = np.array([model.predict(seq[None])[0] for seq in sequences])
    assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_same_random_state_same_model(case, sequences):
    name, params = case
    y = sequences[:, :, 0].sum(axis=1)
    first = LSTMRegressor(architecture=name, **params, **FAST).fit(sequences, y)
    second = LSTMRegressor(architecture=name, **params, **FAST).fit(sequences, y)
    assert np.array_equal(first.predict(sequences), second.predict(sequences))


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("mode", ["single", "per_step", "classifier"])
def test_extra_training_padding_trains_the_same_network(case, mode, sequences, rng):
    """Padding past every sequence's end changes nothing in fit, not even rounding:
    each batch is cut after its own longest sequence (so padding costs no time)."""
    name, params = case
    X = sequences.copy()
    for row, length in enumerate(rng.integers(2, 8, size=len(X))):
        X[row, length:] = np.nan
    y = _targets(mode, np.nan_to_num(X), rng)
    if mode == "per_step":
        y[np.isnan(X[:, :, :1])] = np.nan
    padded_X = np.concatenate([X, np.full((len(X), 20, X.shape[2]), np.nan)], axis=1)
    padded_y = y
    if mode == "per_step":
        padded_y = np.concatenate([y, np.full((len(y), 20, 1), np.nan)], axis=1)
    model = _make(mode, name, params).fit(X, y)
    padded = _make(mode, name, params).fit(padded_X, padded_y)
    assert [r["train_loss"] for r in padded.history_] == [r["train_loss"] for r in model.history_]
    if mode == "classifier":
        np.testing.assert_array_equal(padded.predict_proba(X), model.predict_proba(X))
    else:
        np.testing.assert_array_equal(padded.predict(X), model.predict(X))


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("mode", ["single", "classifier", "transformer"])
def test_bf16_mixed_training_follows_float32(case, mode, sequences, rng):
    """precision="bf16-mixed" computes the forward pass in bfloat16 (the losses
    differ from float32's in their low bits) and learns as float32 training does,
    on ragged batches too; the weights and the outputs stay float32."""
    name, params = case
    X = sequences.copy()
    X[::4, 5:] = np.nan
    y = _targets(mode, np.nan_to_num(X), rng)
    settings = {**params, "epochs": 6, "lr": 0.01}
    full = _make(mode, name, settings).fit(X, y)
    mixed = _make(mode, name, {**settings, "precision": "bf16-mixed"}).fit(X, y)
    losses = [np.array([r["train_loss"] for r in m.history_]) for m in (full, mixed)]
    assert not np.array_equal(*losses)
    assert_allclose(losses[1], losses[0], rtol=0.1)
    assert losses[1][-1] < losses[1][0]
    assert {p.dtype for p in mixed.module_.parameters()} == {torch.float32}
    if mode == "classifier":
        assert mixed.predict_proba(X).dtype == full.predict_proba(X).dtype == np.float64
    else:
        assert _output(mixed, X).dtype == _output(full, X).dtype


def test_precision_is_validated(sequences):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="precision"):
        LSTMRegressor(precision="16").fit(sequences, sequences[:, -1, 0])


def test_models_pickled_before_precision_existed_load_as_float32(sequences):
    model = LSTMRegressor(hidden_size=4, epochs=1, random_state=0)
    model.fit(sequences, sequences[:, -1, 0])
    state = model.__getstate__()
    del state["precision"]  # as a pickle written before the parameter existed
    old = LSTMRegressor.__new__(LSTMRegressor)
    old.__setstate__(state)
    assert old.get_params()["precision"] == "32"
    assert np.array_equal(old.predict(sequences), model.predict(sequences))
    clone(old)
