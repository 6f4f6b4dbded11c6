"""Multi-step forecasting with one-step (or k-step) models: recursive and direct.

A model trained on windows ``(n, lookback, F)`` -> next step only knows one step
ahead. :func:`recursive_forecast` goes further by feeding each prediction back as
the newest input (the *recursive* or *iterative* strategy). A model trained on
``y`` with ``H`` future steps (the *direct* strategy) predicts ``H`` steps at once;
recursing on it feeds back ``H`` predictions per round.

:class:`RecursiveForecaster` wraps both strategies as a small scikit-learn
meta-estimator: ``fit`` on a series, then ``forecast(steps)``.

How windows are handed to the model
-----------------------------------
Estimators that declare 3-D input (the scikit-learn tag
``input_tags.three_d_array``, as every seqpipe estimator does; for a
:class:`~sklearn.pipeline.Pipeline`, its first step's tag) get windows
``(n, lookback, F)``. Other estimators (``Ridge``, gradient boosting, ...) get
them flattened time-major to ``(n, lookback * F)``, i.e. ``X.reshape(n, -1)`` of
the 3-D windows, which is ``(n, lookback)`` for a univariate series. Pass
``flatten=True``/``False`` to :func:`recursive_forecast` to override the guess.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

__all__ = ["RecursiveForecaster", "recursive_forecast"]


def _first_step(model: Any) -> Any:
    """The estimator that receives the windows first (to read its input tags and
    ``n_features_in_``), looking through Pipelines and fitted searches."""
    first = model
    while True:
        if hasattr(first, "best_estimator_"):  # fitted GridSearchCV & co.
            first = first.best_estimator_
        elif hasattr(first, "estimator") and hasattr(first, "cv"):  # unfitted search
            first = first.estimator
        elif hasattr(first, "steps") and first.steps:
            real = [est for _, est in first.steps if est not in (None, "passthrough")]
            if not real:
                break
            first = real[0]
        else:
            break
    return first


def _accepts_3d(model: Any) -> bool:
    first = _first_step(model)
    try:
        return bool(get_tags(first).input_tags.three_d_array)
    except (AttributeError, TypeError, ValueError):
        return False


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}.")
    return int(value)


def _as_history(history: Any) -> tuple[np.ndarray, int]:
    """History as float64 ``(n, n_time, F)`` and its original ndim."""
    if hasattr(history, "to_numpy"):  # pandas Series / DataFrame
        history = history.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        arr = np.asarray(history, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"history must be numeric: {exc}") from None
    if arr.ndim == 1:
        batch = arr[None, :, None]
    elif arr.ndim == 2:
        batch = arr[None]
    elif arr.ndim == 3:
        batch = arr
    else:
        raise ValueError(
            f"history has shape {arr.shape}; expected (n_time,) for one series, "
            "(n_time, n_series) for parallel series, or (n_histories, n_time, n_series) "
            "for a batch of histories."
        )
    if batch.shape[0] == 0 or batch.shape[2] == 0:
        raise ValueError(f"history has shape {arr.shape}: it holds no series.")
    bad = ~np.isfinite(batch)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"history contains NaN or infinity (first at index {where} of the "
            f"(n_histories, n_time, n_series) view, {int(bad.sum())} in total); fill the "
            "gaps first, since every value can end up in a model input."
        )
    return batch, arr.ndim


def _resolve_lookback(model: Any, lookback: int | None, n_series: int, flat: bool) -> int:
    first = _first_step(model)
    n_in = getattr(first, "n_features_in_", None)
    if lookback is not None:
        lookback = _check_int(lookback, "lookback")
        expected = lookback * n_series if flat else n_series
        if n_in is not None and n_in != expected:
            layout = (
                f"flattened windows of {lookback} steps x {n_series} series"
                if flat
                else f"windows of {n_series} series"
            )
            raise ValueError(
                f"the model was fitted on {n_in} input features, but {layout} give "
                f"{expected}; check lookback and the history's number of series."
            )
        return lookback
    if not flat:
        raise ValueError(
            "lookback is required for a model that takes 3-D windows: a recurrent model "
            "accepts any window length, so its training window cannot be read from it. "
            "Pass lookback=, or use RecursiveForecaster, which records it."
        )
    if n_in is None:
        raise ValueError("cannot infer lookback: the model has no n_features_in_; pass lookback=.")
    if n_in % n_series:
        raise ValueError(
            f"the model was fitted on {n_in} input features, which is not a multiple of "
            f"the history's {n_series} series; flattened windows need lookback * n_series."
        )
    return n_in // n_series


def _as_steps(out: Any, n: int, n_series: int, window: tuple[int, ...]) -> np.ndarray:
    """Model output -> ``(n, k, n_series)``: ``k`` future steps of every series."""
    out = np.asarray(out, dtype=np.float64)
    k = None
    if out.ndim >= 1 and out.shape[0] == n:
        if out.ndim == 1 and n_series == 1:
            k = 1
        elif out.ndim == 2 and out.shape[1] % n_series == 0 and out.shape[1] > 0:
            k = out.shape[1] // n_series
        elif out.ndim == 3 and out.shape[2] == n_series and out.shape[1] > 0:
            k = out.shape[1]
    if k is None:
        if n_series == 1:
            expected = f"({n},) or ({n}, k) for the next step or the next k steps"
        else:
            expected = (
                f"({n}, {n_series}) for the next step of each of the {n_series} series, "
                f"or ({n}, k * {n_series}) / ({n}, k, {n_series}) for the next k steps"
            )
        raise ValueError(
            f"model.predict returned shape {out.shape} for {n} windows of shape "
            f"{window}; recursive forecasting feeds the predictions back as inputs, so "
            f"the model must predict every input series: expected {expected}."
        )
    # Flattened multi-step outputs are time-major, as y.reshape(n, -1) of make_windows'
    # (n, horizon, n_series) targets.
    return out.reshape(n, k, n_series)


def recursive_forecast(
    model: Any,
    history: Any,
    steps: int,
    *,
    lookback: int | None = None,
    flatten: bool | None = None,
) -> np.ndarray:
    """Forecast ``steps`` ahead by feeding the model's predictions back as inputs.

    Each round takes the last ``lookback`` values (real, then predicted) as one
    window, predicts the next ``k`` steps (``k = 1`` for a one-step model) and
    appends them, until ``steps`` values exist. Several histories are forecast
    together, one ``predict`` call per round.

    Parameters
    ----------
    model : fitted estimator or Pipeline
        Maps windows to the next step(s) of **every** input series (inputs without
        a forecast of their own cannot be fed back). Accepted outputs of
        ``predict`` for ``n`` windows and ``F`` series: ``(n,)`` or ``(n, k)`` for
        ``F = 1``; ``(n, F)``, ``(n, k * F)`` (time-major) or ``(n, k, F)``. A model
        trained with horizon ``k > 1`` (the direct strategy) contributes ``k``
        steps per round; surplus values of the last round are dropped.
    history : array-like of shape (n_time,), (n_time, F) or (n_histories, n_time, F)
        The observed series, oldest first; only the last ``lookback`` steps are
        used. Must be finite.
    steps : int
        Number of future steps to forecast (``>= 1``).
    lookback : int or None, default=None
        Window length the model was trained on. None infers it from
        ``n_features_in_ / F`` for models fed flattened windows; recurrent models
        (3-D windows) accept any length, so for them it must be given.
    flatten : bool or None, default=None
        Pass windows as 2-D ``(n, lookback * F)`` (True) or 3-D
        ``(n, lookback, F)`` (False). None decides from the estimator's
        ``three_d_array`` input tag (see the module notes).

    Returns
    -------
    forecast : ndarray
        ``(steps,)``, ``(steps, F)`` or ``(n_histories, steps, F)``, following
        the shape of ``history``.

    Raises
    ------
    ValueError
        If ``steps < 1``; the history is shorter than ``lookback``, has NaN/inf or
        a bad shape; ``lookback`` cannot be inferred or disagrees with the model;
        or the model's output does not hold the next step(s) of every series.

    See Also
    --------
    RecursiveForecaster : fit on a series and forecast, recursive or direct.
    seqpipe.preprocessing.make_windows : the windows such models are trained on.

    Examples
    --------
    A linear model on windows of 3 values continues a ramp well past its horizon:

    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from seqpipe.forecasting import recursive_forecast
    >>> from seqpipe.preprocessing import make_windows
    >>> series = np.arange(10.0, 100.0, 10.0)
    >>> X, y = make_windows(series, 3)
    >>> model = LinearRegression().fit(X[:, :, 0], y)
    >>> recursive_forecast(model, series, 4).round(6)  # lookback read from the model
    array([100., 110., 120., 130.])

    Several histories at once, shaped ``(n_histories, n_time, n_series)``:

    >>> histories = np.stack([series, series + 5])[:, :, None]
    >>> recursive_forecast(model, histories, 2).round(6)[:, :, 0]
    array([[100., 110.],
           [105., 115.]])
    """
    steps = _check_int(steps, "steps")
    batch, ndim = _as_history(history)
    n, n_time, n_series = batch.shape
    flat = (not _accepts_3d(model)) if flatten is None else bool(flatten)
    lookback = _resolve_lookback(model, lookback, n_series, flat)
    if n_time < lookback:
        raise ValueError(
            f"history has {n_time} time steps, shorter than the model's lookback of "
            f"{lookback}; give at least {lookback} observed steps."
        )
    # One buffer holds the window and every forecast; each round's window is a slice.
    buffer = np.empty((n, lookback + steps, n_series))
    buffer[:, :lookback] = batch[:, n_time - lookback :]
    done = 0
    while done < steps:
        window = buffer[:, done : done + lookback]
        X = window.reshape(n, lookback * n_series) if flat else window.copy()
        predicted = _as_steps(model.predict(X), n, n_series, X.shape[1:])
        take = min(predicted.shape[1], steps - done)
        buffer[:, lookback + done : lookback + done + take] = predicted[:, :take]
        done += take
    forecast = buffer[:, lookback:]
    if ndim == 1:
        return forecast[0, :, 0].copy()
    if ndim == 2:
        return forecast[0].copy()
    return forecast.copy()


class RecursiveForecaster(BaseEstimator):
    """Fit any regressor on windows of a series, then forecast any number of steps.

    ``fit`` cuts the series into windows of ``lookback`` steps, each labelled with
    the next ``horizon`` steps of every series, and fits a clone of
    ``estimator`` on them. ``forecast(steps)`` continues the training series (or
    a given history) with :func:`recursive_forecast`:

    * ``horizon=1``: the recursive strategy, one step per ``predict`` round;
    * ``horizon=H``: the direct strategy, one model call gives ``H`` steps; past
      ``H`` it recurses, feeding back ``H`` predictions per round.

    Parameters
    ----------
    estimator : estimator or Pipeline
        Regressor trained on the windows; cloned in ``fit``. Estimators that take
        3-D input (seqpipe's) get windows ``(n, lookback, F)``; others get them
        flattened to ``(n, lookback * F)``. Targets are ``(n,)`` for one series
        and ``horizon=1``, else ``(n, horizon * F)`` (time-major), so
        ``LSTMRegressor`` and any multi-output regressor fit directly.
    lookback : int, default=10
        Window length in time steps.
    horizon : int, default=1
        Future steps each window is trained to predict.

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone.
    last_window_ : ndarray of shape (lookback, n_series_)
        The end of the training series, where ``forecast`` starts by default.
    n_series_ : int
        Number of parallel series.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from seqpipe.forecasting import RecursiveForecaster
    >>> t = np.arange(120)
    >>> series = np.sin(2 * np.pi * t / 12)
    >>> f = RecursiveForecaster(Ridge(alpha=1e-6), lookback=12).fit(series)
    >>> future = f.forecast(30)  # 30 steps, 1 at a time
    >>> bool(np.allclose(future, np.sin(2 * np.pi * np.arange(120, 150) / 12), atol=1e-3))
    True
    >>> direct = RecursiveForecaster(Ridge(alpha=1e-6), lookback=12, horizon=6).fit(series)
    >>> direct.forecast(6).shape  # one predict call
    (6,)
    """

    def __init__(self, estimator: Any, lookback: int = 10, horizon: int = 1) -> None:
        self.estimator = estimator
        self.lookback = lookback
        self.horizon = horizon

    def fit(self, series: Any, y: None = None) -> RecursiveForecaster:
        """Fit the estimator on windows of ``series``.

        Parameters
        ----------
        series : array-like of shape (n_time,) or (n_time, n_series)
            Oldest first; finite. Needs at least ``lookback + horizon`` steps.
        y : None
            Ignored: the targets are the series' own future values.

        Returns
        -------
        self : RecursiveForecaster
        """
        from seqpipe.preprocessing import make_windows

        lookback = _check_int(self.lookback, "lookback")
        horizon = _check_int(self.horizon, "horizon")
        if hasattr(series, "to_numpy"):
            series = series.to_numpy(dtype=np.float64, na_value=np.nan)
        series = np.asarray(series, dtype=np.float64)
        if series.ndim not in (1, 2):
            raise ValueError(
                f"series has shape {series.shape}; expected (n_time,) or (n_time, n_series)."
            )
        X, y_win = make_windows(series, lookback, horizon)
        n = X.shape[0]
        # (n,), (n, H) and (n, F) from make_windows are already what regressors take;
        # only (n, H, F) needs flattening, time-major as recursive_forecast reads it.
        y_fit = y_win.reshape(n, -1) if y_win.ndim == 3 else y_win
        self.flatten_ = not _accepts_3d(self.estimator)
        X_fit = X.reshape(n, -1) if self.flatten_ else X
        self.estimator_ = clone(self.estimator).fit(np.ascontiguousarray(X_fit), y_fit)
        two_d = series.reshape(len(series), -1)
        self.n_series_ = two_d.shape[1]
        self.series_ndim_ = series.ndim
        self.last_window_ = two_d[-lookback:].copy()
        return self

    def forecast(self, steps: int, history: Any = None) -> np.ndarray:
        """Forecast ``steps`` values after the training series or after ``history``.

        Parameters
        ----------
        steps : int
            Number of future steps (``>= 1``).
        history : array-like or None, default=None
            ``(n_time,)``, ``(n_time, n_series)`` or ``(n_histories, n_time,
            n_series)`` to continue instead of the training series (at least
            ``lookback`` steps).

        Returns
        -------
        forecast : ndarray
            ``(steps,)`` for a 1-D training series, ``(steps, n_series)`` for a
            2-D one, or shaped after ``history`` (see :func:`recursive_forecast`).
        """
        check_is_fitted(self)
        if history is None:
            history = self.last_window_[:, 0] if self.series_ndim_ == 1 else self.last_window_
        return recursive_forecast(
            self.estimator_, history, steps, lookback=self.lookback, flatten=self.flatten_
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "estimator_")
