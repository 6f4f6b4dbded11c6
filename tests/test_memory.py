"""O(n) memory: large inputs are checked, scaled and fed to the network a chunk or a
batch at a time, never copied whole, and give what the all-in-memory path gives.

The chunked paths are forced on small data by shrinking the two thresholds
(``seqpipe._chunks.CHUNK_BYTES``: rows per chunk; ``seqpipe._training.IN_MEMORY_BYTES``:
above it, inputs are computed per batch), so each test compares both paths in one
process on the same data.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer, _base, _chunks, _training
from seqpipe._local_scaling import window_stats
from seqpipe._scaling import feature_stats
from seqpipe._training import LazyInputs
from seqpipe.preprocessing import make_windows

FAST = {"hidden_size": 5, "epochs": 3, "batch_size": 16, "random_state": 0}


@pytest.fixture
def chunked(monkeypatch):
    """Chunks of a few rows and every training input computed per batch."""

    def force(*, chunk_bytes: int | None = 2048, lazy: bool = True) -> None:
        if chunk_bytes is not None:
            monkeypatch.setattr(_chunks, "CHUNK_BYTES", chunk_bytes)
        if lazy:
            monkeypatch.setattr(_training, "IN_MEMORY_BYTES", 0)

    return force


def _series(n=400, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (50 + 0.1 * t + 5 * np.sin(t / 6) + rng.normal(size=n)).astype(dtype)


def _fit_predict(model, X, y, **fit):
    model.fit(X, y, **fit)
    losses = [(r["train_loss"], r.get("valid_loss")) for r in model.history_]
    return model.predict(X), losses


def _batch_sources(monkeypatch) -> list:
    """What each fit's training loop draws batches from (recorded by a spy)."""
    seen = []
    original = _training.batch_source

    def spy(inputs):
        source = original(inputs)
        seen.append(source)
        return source

    monkeypatch.setattr(_base, "batch_source", spy)
    return seen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches_computed_per_step_train_exactly_like_one_tensor(chunked, monkeypatch, dtype):
    """Inputs computed batch by batch from a strided window view: bit for bit the
    same network, training and validation losses and predictions as one
    precomputed tensor, zero-weight rows (dropped from both splits) included."""
    X, y = make_windows(_series(dtype=dtype), 12)
    assert not X.flags.c_contiguous  # a view into the series
    weights = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    weights[[3, 50, len(X) - 5]] = 0  # training rows and a validation row
    params = dict(FAST, local_scaling="standard", validation_fraction=0.2)
    sources = _batch_sources(monkeypatch)
    chunked(lazy=False)  # chunked checks and statistics (a float32 X stays float32)
    expected = _fit_predict(LSTMRegressor(**params), X, y, sample_weight=weights)
    chunked()  # and inputs computed per batch
    got = _fit_predict(LSTMRegressor(**params), X, y, sample_weight=weights)
    assert isinstance(sources[0], torch.Tensor) and isinstance(sources[1], LazyInputs)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]
    assert all(valid is not None for _, valid in got[1])


@pytest.mark.parametrize("local_scaling", [None, "standard"])
def test_chunked_checks_and_statistics_give_the_same_model(chunked, local_scaling):
    """Chunks of a few rows change only the summation order of the scaling
    statistics (two passes over chunks): predictions agree to float32 precision."""
    X, y = make_windows(_series(), 10)
    params = dict(FAST, local_scaling=local_scaling)
    expected = LSTMRegressor(**params).fit(X, y)
    chunked()
    got = LSTMRegressor(**params).fit(X, y)
    np.testing.assert_allclose(got.x_mean_, expected.x_mean_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.x_scale_, expected.x_scale_, rtol=1e-12)
    np.testing.assert_allclose(got.predict(X), expected.predict(X), rtol=1e-4, atol=1e-4)


def test_ragged_classifier_and_forecasting_transformer_in_chunks(chunked):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 9, 2))
    lengths = rng.integers(3, 10, size=60)
    X[np.arange(9)[None, :] >= lengths[:, None]] = np.nan
    y = (np.nanmean(X[:, :, 0], axis=1) > 0).astype(int)
    clf, fc = LSTMClassifier(**FAST).fit(X, y), LSTMTransformer(task="forecast", **FAST).fit(X)
    expected = clf.predict_proba(X), fc.transform(X)
    chunked()
    clf, fc = LSTMClassifier(**FAST).fit(X, y), LSTMTransformer(task="forecast", **FAST).fit(X)
    np.testing.assert_allclose(clf.predict_proba(X), expected[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fc.transform(X), expected[1], rtol=1e-4, atol=1e-5)


def test_partial_fit_reads_lazy_inputs(chunked, monkeypatch):
    X, y = make_windows(_series(), 8)
    sources = _batch_sources(monkeypatch)
    chunked(lazy=False)
    expected = LSTMRegressor(**FAST).partial_fit(X, y).partial_fit(X, y).predict(X)
    chunked()
    got = LSTMRegressor(**FAST).partial_fit(X, y).partial_fit(X, y).predict(X)
    assert [type(s) for s in sources] == [torch.Tensor] * 2 + [LazyInputs] * 2
    np.testing.assert_array_equal(got, expected)


def test_forecast_targets_are_filled_chunk_by_chunk(chunked):
    """The forecast task's targets (the next step of the network's inputs) are the
    same whether computed whole or a chunk at a time."""
    X = np.random.default_rng(0).normal(size=(40, 6, 2))
    expected = LSTMTransformer(task="forecast", **FAST).fit(X).transform(X)
    chunked()
    got = LSTMTransformer(task="forecast", **FAST).fit(X).transform(X)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("poison", "message"),
    [
        (lambda X: X.__setitem__((37, 2, 0), np.inf), "infinity at sample 37, step 2"),
        (lambda X: X.__setitem__((41, 1, 1), np.nan), "some features at sample 41, step 1"),
        (lambda X: X.__setitem__((53, slice(None)), np.nan), "NaN everywhere in sample 53"),
        (lambda X: X.__setitem__((45, 0), np.nan), "NaN inside sample 45: step 0"),
        (lambda X: X.__setitem__((58, 3, 0), 1e300), "too large for float32 at sample 58, step 3"),
    ],
)
def test_chunked_validation_names_the_right_sample(chunked, poison, message):
    """A bad value in a later chunk is reported at its sample in the whole X."""
    X = np.random.default_rng(0).normal(size=(60, 6, 2))
    poison(X)
    chunked(chunk_bytes=96 * 2)  # two rows per chunk
    with pytest.raises(ValueError, match=message):
        LSTMRegressor(**FAST).fit(X, np.zeros(60))


def test_padding_found_in_any_chunk_gives_lengths(chunked):
    X = np.random.default_rng(0).normal(size=(30, 5, 1)).astype(np.float32)
    X[17, 3:] = np.nan
    chunked(chunk_bytes=40 * 3)
    model = LSTMRegressor(**FAST).fit(X, np.arange(30.0))
    ragged = model.predict(X)
    alone = model.predict(X[17:18, :3])
    np.testing.assert_allclose(ragged[17], alone[0], rtol=1e-5)


def test_feature_stats_in_two_passes_match_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(1e6, 3.0, size=(50, 7, 3))
    X[4, 5:] = np.nan
    weights = rng.uniform(0, 3, 50)
    weights[[2, 9]] = 0
    expected = [feature_stats(X), feature_stats(X, weights), feature_stats(X, None, np.sqrt)]
    monkeypatch.setattr(_chunks, "CHUNK_BYTES", 7 * 3 * 8 * 4)  # 4 rows per chunk
    got = [feature_stats(X), feature_stats(X, weights), feature_stats(X, None, np.sqrt)]
    for (mean, scale), (mean0, scale0) in zip(got, expected, strict=True):
        np.testing.assert_allclose(mean, mean0, rtol=1e-13)
        np.testing.assert_allclose(scale, scale0, rtol=1e-9)


def test_window_stats_in_chunks_are_exact(monkeypatch):
    X = np.random.default_rng(0).normal(size=(50, 7, 3))
    X[4, 5:] = np.nan
    expected = window_stats(X)
    monkeypatch.setattr(_chunks, "CHUNK_BYTES", 7 * 3 * 8 * 4)
    for got, want in zip(window_stats(X), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_fit_and_predict_on_windows_never_copy_them_whole():
    """numpy's allocations (traced by tracemalloc) during fit and predict on the
    windows of a 300,000-step series stay far below one float copy of the windows
    (73 MiB as float64): a few chunks and batches, plus O(n) targets."""
    series = _series(300_000)
    X, y = make_windows(series, 32)
    windows_mib = X.size * 8 / 2**20
    model = LSTMRegressor(hidden_size=2, epochs=1, batch_size=8192, local_scaling="standard")
    model.fit(X[:50], y[:50])  # first-use imports are not what is measured
    tracemalloc.start()
    try:
        model.fit(X, y)
        _, fit_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        model.predict(X)
        _, predict_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert windows_mib > 70
    assert fit_peak / 2**20 < 30, f"fit peak {fit_peak / 2**20:.1f} MiB"
    assert predict_peak / 2**20 < 30, f"predict peak {predict_peak / 2**20:.1f} MiB"
