"""predict in chunks: ragged rows in order of length, each chunk cut after its
longest sequence; whatever the chunking, each row gets what it gets alone."""

from __future__ import annotations

import numpy as np
import pytest

import seqpipe._base
from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer


@pytest.fixture
def ragged():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(13, 9, 2))
    lengths = np.array([9, 2, 5, 9, 1, 7, 3, 9, 4, 6, 8, 2, 5])
    for row, length in zip(X, lengths, strict=True):
        row[length:] = np.nan
    return X, lengths


def alone(method, X, lengths):
    """Each row predicted by itself, cut to its own length."""
    return [method(X[i : i + 1, :length])[0] for i, length in enumerate(lengths)]


@pytest.mark.parametrize("chunk_steps", [1, 20, 65536])
@pytest.mark.parametrize(
    "make, method",
    [
        (
            lambda X, y: LSTMClassifier("lstm", epochs=2, random_state=0).fit(X, y > 0),
            "predict_proba",
        ),
        (
            lambda X, y: LSTMClassifier(
                "lstm_fcn", epochs=2, random_state=0, architecture_options={"filters": (4, 4, 4)}
            ).fit(X, y > 0),
            "predict_proba",
        ),
        (lambda X, y: LSTMRegressor("gru", epochs=2, random_state=0).fit(X, y), "predict"),
        (lambda X, y: LSTMTransformer("lstm", epochs=2, random_state=0).fit(X[:4]), "transform"),
    ],
    ids=["classifier-lstm", "classifier-lstm_fcn", "regressor-gru", "transformer"],
)
def test_every_chunking_gives_each_row_its_own_result(
    ragged, monkeypatch, chunk_steps, make, method
):
    X, lengths = ragged
    y = np.nansum(X[:, :, 0], axis=1)
    model = make(X, y)
    monkeypatch.setattr(seqpipe._base, "PREDICT_STEPS", chunk_steps)
    result = getattr(model, method)(X)
    for got, expected in zip(result, alone(getattr(model, method), X, lengths), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk_steps", [1, 20, 65536])
def test_per_step_outputs_keep_the_time_axis_and_nan_padding(ragged, monkeypatch, chunk_steps):
    X, lengths = ragged
    y = np.cumsum(np.nan_to_num(X[:, :, :1]), axis=1)
    y[np.isnan(X[:, :, :1])] = np.nan
    model = LSTMRegressor("lstm", epochs=2, random_state=0).fit(X, y)
    monkeypatch.setattr(seqpipe._base, "PREDICT_STEPS", chunk_steps)
    predicted = model.predict(X)
    assert predicted.shape == (len(X), X.shape[1], 1)
    predicted = predicted[:, :, 0]
    for row, length in zip(predicted, lengths, strict=True):
        assert np.isnan(row[length:]).all() and np.isfinite(row[:length]).all()
    for i, length in enumerate(lengths):
        np.testing.assert_allclose(
            predicted[i, :length],
            model.predict(X[i : i + 1, :length])[0, :, 0],
            rtol=1e-5,
            atol=1e-6,
        )


# --- the exported file: seqpipe.runtime chunks large ragged batches the same way ------


@pytest.fixture
def many_ragged():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 12, 2))
    lengths = rng.integers(2, 13, size=len(X))
    lengths[0] = 12
    for row, length in zip(X, lengths, strict=True):
        row[length:] = np.nan
    return X, lengths


@pytest.mark.parametrize("chunk_steps", [1, 50, 32768])
@pytest.mark.parametrize(
    "make, method",
    [
        (
            lambda X, y: LSTMClassifier("lstm", epochs=2, random_state=0).fit(X, y > 0),
            "predict_proba",
        ),
        (lambda X, y: LSTMClassifier("gru", epochs=2, random_state=0).fit(X, y > 0), "predict"),
        (
            lambda X, y: LSTMRegressor(
                "lstm_fcn", epochs=2, random_state=0, architecture_options={"filters": (4, 4, 4)}
            ).fit(X, y),
            "predict",
        ),
        (lambda X, y: LSTMTransformer("lstm", epochs=2, random_state=0).fit(X), "transform"),
    ],
    ids=["classifier-proba", "classifier-labels", "regressor-lstm_fcn", "transformer"],
)
def test_runtime_chunks_a_large_ragged_batch_like_predict(
    many_ragged, tmp_path, monkeypatch, chunk_steps, make, method
):
    from seqpipe import runtime
    from seqpipe.onnx import export

    X, _ = many_ragged
    model = make(X, np.nansum(X[:, :, 0], axis=1))
    served = runtime.load(export(model, tmp_path / "m.onnx"))
    monkeypatch.setattr(runtime, "RAGGED_CHUNK_STEPS", chunk_steps)
    assert len(X) >= runtime.RAGGED_MIN_ROWS  # the chunked path
    got, expected = getattr(served, method)(X), getattr(model, method)(X)
    if got.dtype.kind in "fc":
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, expected)


def test_runtime_per_step_outputs_keep_nan_padding_when_chunked(many_ragged, tmp_path, monkeypatch):
    from seqpipe import runtime
    from seqpipe.onnx import export

    X, lengths = many_ragged
    y = np.cumsum(np.nan_to_num(X[:, :, :1]), axis=1)
    y[np.isnan(X[:, :, :1])] = np.nan
    model = LSTMRegressor("lstm", epochs=2, random_state=0).fit(X, y)
    served = runtime.load(export(model, tmp_path / "m.onnx"))
    monkeypatch.setattr(runtime, "RAGGED_CHUNK_STEPS", 50)
    got = served.predict(X)
    assert got.shape == (len(X), X.shape[1], 1)
    np.testing.assert_allclose(got, model.predict(X), rtol=1e-4, atol=1e-5)  # NaN where NaN
    for row, length in zip(got[:, :, 0], lengths, strict=True):
        assert np.isnan(row[length:]).all() and np.isfinite(row[:length]).all()


def test_runtime_keeps_one_call_for_little_padding_and_small_batches(
    many_ragged, tmp_path, monkeypatch
):
    from seqpipe import runtime
    from seqpipe.onnx import export

    X, _ = many_ragged
    model = LSTMRegressor("lstm", epochs=1, random_state=0).fit(X, np.nansum(X[:, :, 0], axis=1))
    served = runtime.load(export(model, tmp_path / "m.onnx"))
    calls = []
    run = served._run
    served._run = lambda names, feeds: (
        calls.append(len(feeds[served.input_name])) or run(names, feeds)
    )
    full = np.nan_to_num(X)  # no padding
    nearly = full.copy()
    nearly[0, -1] = np.nan  # one step short in one row: little padding
    for batch in (full, nearly, X[: runtime.RAGGED_MIN_ROWS - 1]):
        calls.clear()
        served.predict(batch)
        assert calls == [len(batch)]
    calls.clear()
    monkeypatch.setattr(runtime, "RAGGED_CHUNK_STEPS", 50)
    served.predict(X)  # ragged and large enough: chunked
    assert len(calls) > 1 and sum(calls) == len(X)
