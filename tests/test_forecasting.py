"""Recursive and direct multi-step forecasting (seed S13): values, shapes, Pipelines, errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from seqpipe import LSTMRegressor
from seqpipe.forecasting import RecursiveForecaster, recursive_forecast
from seqpipe.preprocessing import SequenceScaler, make_windows

RAMP = np.arange(10.0, 100.0, 10.0)  # 10, 20, ..., 90
TWO_RAMPS = np.column_stack([RAMP, 2 * RAMP + 1])


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # Tiny models train fastest on one thread, and the test machine is shared.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Trend3D(RegressorMixin, BaseEstimator):
    """Takes 3-D windows and extrapolates the last difference: exact on ramps, no
    training. Optional ``horizon`` > 1 returns the next k steps flattened."""

    def __init__(self, horizon: int = 1, shape: str = "auto") -> None:
        self.horizon = horizon
        self.shape = shape

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[2]
        self.calls_ = 0
        return self

    def predict(self, X):
        X = np.asarray(X)
        assert X.ndim == 3, "3-D windows expected"
        self.calls_ += 1
        last, step = X[:, -1], X[:, -1] - X[:, -2]
        out = last[:, None] + step[:, None] * np.arange(1, self.horizon + 1)[None, :, None]
        if self.shape == "3d":
            return out
        if self.shape == "1d" or (self.horizon == 1 and X.shape[2] == 1):
            return out[:, 0, 0]
        return out.reshape(len(X), -1)


def _ramp_after(series: np.ndarray, steps: int) -> np.ndarray:
    step = series[-1] - series[-2]
    return series[-1] + step * np.arange(1, steps + 1).reshape(-1, *([1] * (series.ndim - 1)))


# --- values ------------------------------------------------------------------------------
def test_linear_model_continues_ramp_far_past_horizon():
    X, y = make_windows(RAMP, 3)
    model = LinearRegression().fit(X[:, :, 0], y)
    forecast = recursive_forecast(model, RAMP, 25)  # lookback 3 read from n_features_in_
    np.testing.assert_allclose(forecast, np.arange(100.0, 350.0, 10.0), atol=1e-6)


def test_lstm_sine_recursive_is_near_exact_past_horizon():
    t = np.arange(160)
    series = np.sin(2 * np.pi * t / 20)
    model = LSTMRegressor(hidden_size=16, epochs=60, lr=0.01, random_state=0)
    forecaster = RecursiveForecaster(model, lookback=20).fit(series[:120])
    forecast = forecaster.forecast(40)  # two full periods, trained horizon is 1
    assert forecast.shape == (40,)
    assert np.abs(forecast - series[120:]).max() < 0.1


def test_multivariate_flat_windows_are_time_major():
    X, y = make_windows(TWO_RAMPS, 3)
    model = LinearRegression().fit(X.reshape(len(X), -1), y)
    forecast = recursive_forecast(model, TWO_RAMPS, 5)
    np.testing.assert_allclose(forecast, _ramp_after(TWO_RAMPS, 5), atol=1e-6)


@pytest.mark.parametrize("shape", ["auto", "3d"])
def test_horizon_k_feeds_back_k_predictions_per_round(shape):
    model = Trend3D(horizon=3, shape=shape).fit(TWO_RAMPS[None])
    forecast = recursive_forecast(model, TWO_RAMPS, 7, lookback=4)
    np.testing.assert_allclose(forecast, _ramp_after(TWO_RAMPS, 7))
    assert model.calls_ == 3  # ceil(7 / 3) rounds; the surplus 2 values are dropped


def test_univariate_horizon_k_from_2d_output():
    X, y = make_windows(RAMP, 3, horizon=4)
    model = LinearRegression().fit(X[:, :, 0], y)
    np.testing.assert_allclose(recursive_forecast(model, RAMP, 10), _ramp_after(RAMP, 10))


# --- shapes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("history", "expected"),
    [
        pytest.param(RAMP, (6,), id="1-D"),
        pytest.param(RAMP[:, None], (6, 1), id="(T, 1)"),
        pytest.param(TWO_RAMPS, (6, 2), id="(T, F)"),
        pytest.param(np.stack([TWO_RAMPS, TWO_RAMPS + 3, -TWO_RAMPS]), (3, 6, 2), id="batch"),
    ],
)
def test_output_shape_follows_history(history, expected):
    n_series = 1 if np.ndim(history) == 1 else np.shape(history)[-1]
    batch = np.asarray(history).reshape(-1, len(RAMP), n_series)
    model = Trend3D().fit(batch)
    forecast = recursive_forecast(model, history, 6, lookback=2)
    assert forecast.shape == expected
    truth = np.stack([_ramp_after(h, 6) for h in batch])
    np.testing.assert_allclose(forecast.reshape(truth.shape), truth)
    assert model.calls_ == 6  # one predict call per step, for the whole batch


def test_batch_histories_are_independent_and_input_is_untouched():
    histories = np.stack([RAMP, RAMP[::-1], np.full(9, 7.0)])[:, :, None]
    before = histories.copy()
    model = Trend3D().fit(histories)
    forecast = recursive_forecast(model, histories, 3, lookback=3)
    np.testing.assert_allclose(forecast[:, :, 0], [[100, 110, 120], [0, -10, -20], [7, 7, 7]])
    np.testing.assert_array_equal(histories, before)


def test_pandas_history():
    model = Trend3D().fit(TWO_RAMPS[None])
    frame = pd.DataFrame(TWO_RAMPS, columns=["a", "b"])
    np.testing.assert_allclose(
        recursive_forecast(model, frame, 2, lookback=3), _ramp_after(TWO_RAMPS, 2)
    )


# --- pipelines and the meta-estimator ------------------------------------------------------
def test_flat_pipeline_infers_lookback():
    X, y = make_windows(RAMP, 4)
    pipe = make_pipeline(StandardScaler(), LinearRegression()).fit(X[:, :, 0], y)
    np.testing.assert_allclose(recursive_forecast(pipe, RAMP, 3), [100, 110, 120], atol=1e-6)


def test_sequence_pipeline_gets_3d_windows():
    X, y = make_windows(TWO_RAMPS, 3)
    pipe = make_pipeline(SequenceScaler(), LSTMRegressor(hidden_size=4, epochs=2, random_state=0))
    pipe.fit(X, y)
    forecast = recursive_forecast(pipe, TWO_RAMPS, 4, lookback=3)
    assert forecast.shape == (4, 2) and np.isfinite(forecast).all()
    forecaster = RecursiveForecaster(pipe, lookback=3).fit(TWO_RAMPS)
    assert not forecaster.flatten_
    assert forecaster.forecast(4).shape == (4, 2)


def test_forecaster_around_a_grid_search_keeps_3d_windows():
    search = GridSearchCV(
        LSTMRegressor(hidden_size=4, epochs=2, random_state=0), {"lr": [1e-3, 1e-2]}, cv=2
    )
    forecaster = RecursiveForecaster(search, lookback=3).fit(TWO_RAMPS)
    # Flattened (n, 6) windows would silently reach the LSTM as one 6-step feature.
    assert not forecaster.flatten_
    assert forecaster.estimator_.best_estimator_.n_features_in_ == 2
    assert forecaster.forecast(3).shape == (3, 2)


def test_recursive_forecaster_is_a_plain_sklearn_estimator():
    forecaster = RecursiveForecaster(Ridge(alpha=1e-9), lookback=3, horizon=2)
    assert clone(forecaster).get_params()["lookback"] == 3
    forecaster.fit(pd.Series(RAMP))
    assert forecaster.flatten_ and forecaster.n_series_ == 1
    np.testing.assert_allclose(forecaster.forecast(5), [100, 110, 120, 130, 140], atol=1e-4)
    # Another history instead of the end of the training series; batch shape kept.
    other = forecaster.forecast(2, history=np.array([[50.0], [60.0], [70.0]]))
    np.testing.assert_allclose(other, [[80.0], [90.0]], atol=1e-4)


def test_direct_strategy_is_one_predict_call():
    forecaster = RecursiveForecaster(Trend3D(horizon=4), lookback=3, horizon=4)
    # Trend3D ignores y, so fit accepts the (n, 4 * 2) flattened targets unchanged.
    forecaster.fit(TWO_RAMPS)
    np.testing.assert_allclose(forecaster.forecast(4), _ramp_after(TWO_RAMPS, 4))
    assert forecaster.estimator_.calls_ == 1


def test_forecast_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        RecursiveForecaster(Ridge()).forecast(3)


# --- errors --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flat_model():
    X, y = make_windows(RAMP, 3)
    return LinearRegression().fit(X[:, :, 0], y)


@pytest.mark.parametrize("steps", [0, -2, 1.5, True, "3"])
def test_bad_steps(flat_model, steps):
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        recursive_forecast(flat_model, RAMP, steps)


def test_history_shorter_than_lookback(flat_model):
    with pytest.raises(
        ValueError, match=r"history has 2 time steps, shorter than .* lookback of 3"
    ):
        recursive_forecast(flat_model, RAMP[:2], 1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_in_history(flat_model, bad):
    history = RAMP.copy()
    history[4] = bad
    with pytest.raises(ValueError, match=re.escape("NaN or infinity (first at index (0, 4, 0)")):
        recursive_forecast(flat_model, history, 1)


def test_bad_history_shape(flat_model):
    with pytest.raises(ValueError, match=r"history has shape \(1, 2, 3, 4\)"):
        recursive_forecast(flat_model, np.zeros((1, 2, 3, 4)), 1)


def test_output_missing_a_series_is_explained():
    X, y = make_windows(TWO_RAMPS, 3, target=0, include_target_in_X=True)
    model = LinearRegression().fit(X.reshape(len(X), -1), y)  # predicts 1 of 2 series
    with pytest.raises(ValueError, match=r"returned shape \(1,\).*every input series.*\(1, 2\)"):
        recursive_forecast(model, TWO_RAMPS, 2)


def test_odd_output_width_is_explained():
    X, y = make_windows(np.column_stack([RAMP, RAMP, RAMP]), 3)
    model = LinearRegression().fit(X.reshape(len(X), -1), y[:, :2])  # 2 outputs, 3 series
    with pytest.raises(ValueError, match=r"returned shape \(1, 2\) for 1 windows of shape \(9,\)"):
        recursive_forecast(model, np.column_stack([RAMP, RAMP, RAMP]), 2)


def test_lookback_required_for_3d_models():
    model = Trend3D().fit(TWO_RAMPS[None])
    with pytest.raises(ValueError, match="lookback is required"):
        recursive_forecast(model, TWO_RAMPS, 2)


def test_lookback_disagreeing_with_model(flat_model):
    with pytest.raises(ValueError, match=r"fitted on 3 input features.*give 5"):
        recursive_forecast(flat_model, RAMP, 2, lookback=5)
    model_3d = Trend3D().fit(TWO_RAMPS[None])
    with pytest.raises(ValueError, match=r"fitted on 2 input features.*windows of 1 series"):
        recursive_forecast(model_3d, RAMP, 2, lookback=3)


def test_forecaster_rejects_bad_params():
    with pytest.raises(ValueError, match="lookback must be an int >= 1"):
        RecursiveForecaster(Ridge(), lookback=0).fit(RAMP)
    with pytest.raises(ValueError, match="series has shape"):
        RecursiveForecaster(Ridge(), lookback=2).fit(np.zeros((2, 3, 4)))
