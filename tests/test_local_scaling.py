"""Window-local scaling and learning-rate schedules: what a user relies on."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pytest

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer, runtime
from seqpipe._local_scaling import window_stats
from seqpipe.onnx import export

FAST = {"hidden_size": 6, "epochs": 3, "random_state": 0}
QUICK = {"verify_batch_sizes": (1, 3), "verify_lengths": (2, 9)}


def _trend(n=40, t=8, features=1, seed=0):
    """Windows of trending, differently scaled series: levels from 10 to 1000."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(10, 1000, size=(n, 1, features))
    steps = np.arange(t + 1)[None, :, None]
    series = level * (1 + 0.05 * steps) + rng.normal(size=(n, t + 1, features))
    return series[:, :-1], series[:, -1]


def test_window_stats_ignore_padding_and_never_divide_by_zero():
    X = np.array([[[1.0, 5.0], [3.0, 5.0], [np.nan, np.nan]], [[0.0, 2.0], [0.0, 4.0], [0, 6]]])
    center, scale = window_stats(X)
    np.testing.assert_allclose(center, [[2.0, 5.0], [0.0, 4.0]])
    # constant windows: |center| (5), or 1 when the center is 0 too
    np.testing.assert_allclose(scale, [[1.0, 5.0], [1.0, np.sqrt(8 / 3)]])


def test_predictions_follow_the_window_level():
    """Scaled by its own statistics, a window shifted and stretched gives a forecast
    shifted and stretched the same way (exactly, up to float error)."""
    X, y = _trend()
    model = LSTMRegressor(local_scaling="standard", scale_X=False, scale_y=False, **FAST)
    model.fit(X, y[:, 0])
    base = model.predict(X[:5])
    np.testing.assert_allclose(model.predict(X[:5] * 3.0 + 100.0), base * 3.0 + 100.0, rtol=1e-6)
    assert model.local_target_features_.tolist() == [0]


def test_parallel_series_use_their_own_feature():
    X, y = _trend(features=2)
    model = LSTMRegressor(local_scaling="standard", **FAST).fit(X, y)
    assert model.local_target_features_.tolist() == [0, 1]
    shifted = X[:4].copy()
    shifted[..., 1] = shifted[..., 1] * 2 + 7
    base, moved = model.predict(X[:4]), model.predict(shifted)
    assert moved.shape == (4, 2)
    # After local scaling the network sees the same windows: the first target keeps its
    # units, the second moves with the second feature.
    np.testing.assert_allclose(moved[:, 0], base[:, 0], rtol=1e-5)
    np.testing.assert_allclose(moved[:, 1], base[:, 1] * 2 + 7, rtol=1e-5)


def test_ambiguous_target_units_are_an_error():
    X, y = _trend(features=3)
    with pytest.raises(ValueError, match="ambiguous"):
        LSTMRegressor(local_scaling="standard", **FAST).fit(X, y[:, 0])


@pytest.mark.parametrize("kind", ["single", "vector", "per_step", "horizon", "horizon_1d"])
def test_onnx_reproduces_local_scaling(tmp_path, kind):
    X, y = _trend(n=30, t=8)
    params = dict(FAST, local_scaling="standard")
    if kind == "single":
        target = y[:, 0]
    elif kind == "vector":
        target = np.concatenate([y, y * 1.1], axis=1)
    elif kind == "per_step":
        target = X * 0.5
    elif kind == "horizon":
        target = np.stack([y, y * 1.1], axis=1)  # (n, 2 steps, 1 target)
        params["head"] = "seq2seq"
    else:
        target = np.concatenate([y, y * 1.1], axis=1)  # (n, 2 steps): the next values
        params["head"] = "seq2seq"
    model = LSTMRegressor(**params).fit(X, target)
    loaded = runtime.load(export(model, tmp_path / "m.onnx", **QUICK))
    ragged = X[:4].copy()
    ragged[1, 5:] = np.nan
    for batch in (X[:7], ragged):
        np.testing.assert_allclose(loaded.predict(batch), model.predict(batch), rtol=1e-4)
    network = json.loads(loaded.metadata["seqpipe.network"])
    assert network["local_scaling"] == "standard"


@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMTransformer])
def test_classifier_and_transformer_scale_inputs_only(tmp_path, cls):
    X, y = _trend(n=30)
    labels = np.where(y[:, 0] > np.median(y[:, 0]), "high", "low")
    model = cls(local_scaling="standard", **FAST).fit(X, labels)
    loaded = runtime.load(export(model, tmp_path / "m.onnx", **QUICK))
    output = model.predict_proba if cls is LSTMClassifier else model.transform
    served = loaded.predict_proba if cls is LSTMClassifier else loaded.transform
    np.testing.assert_allclose(served(X), output(X), atol=1e-5)
    # each window by its own statistics: level and spread do not matter
    np.testing.assert_allclose(output(X * 3.0 + 100.0), output(X), atol=1e-5)


def test_classifier_scales_each_series_by_default(tmp_path):
    """The UCR convention: a series' level and amplitude do not change its class, and a
    streaming export says how to get one (local_scaling=None)."""
    from seqpipe.onnx import UnsupportedModelError

    X, _ = _trend(n=8)
    model = LSTMClassifier(**FAST).fit(X, np.arange(len(X)) % 2)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(model.predict_proba(X * 5.0 - 40.0), proba, atol=1e-5)
    with pytest.raises(UnsupportedModelError, match="local_scaling=None"):
        export(model, tmp_path / "s.onnx", streaming=True)
    assert not list(tmp_path.iterdir())
    plain = LSTMClassifier(local_scaling=None, **FAST).fit(X, np.arange(len(X)) % 2)
    assert not np.allclose(plain.predict_proba(X * 5.0 - 40.0), plain.predict_proba(X), atol=1e-5)


def test_streaming_with_local_scaling_is_refused(tmp_path):
    from seqpipe.onnx import UnsupportedModelError

    model = LSTMRegressor(local_scaling="standard", **FAST).fit(*_trend(n=8))
    with pytest.raises(UnsupportedModelError, match="local_scaling"):
        export(model, tmp_path / "s.onnx", streaming=True)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_lr_schedule_changes_the_learning_rate(schedule):
    X, _ = _trend(n=32)
    # Nothing to learn: the validation loss stalls (plateau watches it when there is one).
    noise = np.random.default_rng(1).normal(size=32)
    model = LSTMRegressor(
        lr_schedule=schedule,
        lr=0.03,
        hidden_size=4,
        epochs=40,
        validation_fraction=0.5,
        patience=None,
        random_state=0,
    )
    lrs = [record["lr"] for record in model.fit(X, noise).history_]
    assert lrs[0] == 0.03 and lrs[-1] < 0.03
    assert all(b <= a for a, b in itertools.pairwise(lrs))
    if schedule == "plateau":
        assert min(lrs) >= 0.03 / 100


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_warm_start_refits_start_from_lr_again(schedule):
    X, y = _trend(n=16)
    model = LSTMRegressor(
        lr_schedule=schedule, lr=0.01, hidden_size=4, epochs=6, warm_start=True, random_state=0
    )
    model.fit(X, y[:, 0]).fit(X, y[:, 0])
    assert len(model.history_) == 12
    assert model.history_[6]["lr"] == 0.01  # not where the first schedule ended


def test_lr_schedule_is_validated():
    with pytest.raises(ValueError, match="lr_schedule"):
        LSTMRegressor(lr_schedule="step", **FAST).fit(*_trend(n=8))


@pytest.mark.parametrize(
    "X",
    [np.arange(8.0).reshape(8, 1), np.repeat(np.arange(8.0)[:, None, None], 4, axis=1)],
    ids=["one-step", "constant"],
)
def test_local_scaling_warns_when_every_sequence_becomes_zero(X):
    y = np.arange(8) % 2
    with pytest.warns(UserWarning, match="local_scaling=None"):
        LSTMClassifier(**FAST).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LSTMClassifier(local_scaling=None, **FAST).fit(X, y)
        X_varied = np.random.default_rng(0).normal(size=(8, 4, 1))
        LSTMClassifier(**FAST).fit(X_varied, y)


def test_fitted_local_scaling_survives_set_params(tmp_path):
    """What the network was trained with (local_scaling_) drives predict and export;
    set_params changes only what the next fit does."""
    X, y = _trend(n=24)
    model = LSTMRegressor(local_scaling="standard", **FAST).fit(X, y[:, 0])
    before = model.predict(X)
    model.set_params(local_scaling=None)
    assert model.local_scaling_ == "standard"
    np.testing.assert_array_equal(model.predict(X), before)
    loaded = runtime.load(export(model, tmp_path / "m.onnx", **QUICK))
    assert json.loads(loaded.metadata["seqpipe.network"])["local_scaling"] == "standard"
    np.testing.assert_allclose(loaded.predict(X), before, rtol=1e-4)
    # the next fit follows the parameter
    assert model.fit(X, y[:, 0]).local_scaling_ is None


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_more_training_with_other_local_scaling_is_refused(how):
    """Training further on inputs scaled another way would mix two input
    distributions in one network: an error naming both, and the model unchanged."""
    X, y = _trend(n=24)
    model = LSTMRegressor(local_scaling="standard", **FAST)
    if how == "warm_start":
        model.fit(X, y[:, 0])
    else:
        model.partial_fit(X, y[:, 0])
    before = model.predict(X)
    state = {k: v.clone() for k, v in model.module_.state_dict().items()}
    model.set_params(local_scaling=None, warm_start=True)
    with pytest.raises(ValueError, match=r"local_scaling='standard'.*local_scaling=None"):
        if how == "warm_start":
            model.fit(X, y[:, 0])
        else:
            model.partial_fit(X, y[:, 0])
    np.testing.assert_array_equal(model.predict(X), before)
    for k, v in model.module_.state_dict().items():
        assert (v == state[k]).all()
    assert model.local_scaling_ == "standard"


def test_a_new_fit_follows_the_parameter_not_the_last_fit():
    """fit checks its targets against the local_scaling it is about to use: a model
    fitted with "standard" on parallel series refits with None on one target column
    (which "standard" would call ambiguous), and back."""
    X, y = _trend(n=24, features=2)
    model = LSTMRegressor(local_scaling="standard", **FAST).fit(X, y)
    model.set_params(local_scaling=None).fit(X, y[:, 0])
    assert model.local_scaling_ is None and model.local_target_features_ is None
    with pytest.raises(ValueError, match="ambiguous"):
        model.set_params(local_scaling="standard").fit(X, y[:, 0])
    assert model.local_scaling_ is None  # the failed fit left the model as it was
