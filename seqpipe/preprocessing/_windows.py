"""Sliding windows that turn a time series into a supervised ``(X, y)`` problem."""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

TargetSpec = Hashable | Sequence[Hashable] | None


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value}.")
    return int(value)


def _as_float_2d(series: Any) -> tuple[np.ndarray, list[Hashable] | None]:
    """The series as a 2-D float array (a view whenever possible) and its column names."""
    names = None
    if hasattr(series, "iloc") and hasattr(series, "to_numpy"):
        names = list(series.columns) if series.ndim == 2 else [series.name]
        arr = series.to_numpy()
        if arr.dtype.kind == "O":
            # Nullable pandas dtypes come out as object with pd.NA; make NA a NaN so the
            # finiteness check below reports it like any other gap.
            try:
                arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"series must be numeric; could not convert {type(series).__name__} "
                    "columns to float."
                ) from exc
    else:
        arr = np.asarray(series)
    if arr.ndim == 0:
        raise ValueError("series must be 1-D (n_time,) or 2-D (n_time, n_series); got a scalar.")
    if arr.ndim > 2:
        raise ValueError(
            "series must be 1-D (n_time,) or 2-D (n_time, n_series); got shape "
            f"{arr.shape}. Window each series separately, or flatten the extra axes "
            "into columns."
        )
    if arr.dtype.kind == "c":
        raise ValueError("series must be real-valued; got complex data.")
    if arr.dtype.kind != "f":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"series must be numeric; could not convert dtype {arr.dtype} to float."
            ) from exc
    if arr.ndim == 1:
        arr = arr[:, np.newaxis]
    return arr, names


def _check_finite(arr: np.ndarray) -> None:
    # A sum is a single pass without temporaries, so the usual all-finite case
    # stays free of allocations even for very long series.
    if np.isfinite(np.sum(arr, dtype=np.float64)):
        return
    bad = ~np.isfinite(arr)
    if not bad.any():
        return  # the sum overflowed on large finite values
    t, col = np.argwhere(bad)[0]
    what = "NaN" if np.isnan(arr[t, col]) else "infinity"
    column = f" (column {col})" if arr.shape[1] > 1 else ""
    raise ValueError(
        f"series contains {what} at time step {t}{column}; {int(bad.sum())} value(s) in "
        "total are not finite. Fill or drop gaps first (for example with pandas "
        "interpolate() or ffill()), since a window with a gap is not a valid sample."
    )


def _resolve_columns(target: Any, names: list[Hashable] | None, n_cols: int) -> list[int]:
    if isinstance(target, (list, tuple, np.ndarray)):
        items = list(target)
        if not items:
            raise ValueError("target is an empty list; name at least one column.")
    else:
        items = [target]
    columns = []
    for item in items:
        if names is not None and _is_label(item, names):
            columns.append(names.index(item))
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
            if not -n_cols <= item < n_cols:
                raise ValueError(
                    f"target column {item} is out of range for a series with {n_cols} "
                    f"column(s); use an index in [{-n_cols}, {n_cols - 1}]."
                )
            columns.append(int(item) % n_cols)
        elif names is not None:
            raise ValueError(f"target column {item!r} is not a column; the columns are {names}.")
        else:
            raise ValueError(
                f"target must be a column index (int) or a list of them for array input; "
                f"got {item!r}. Column names work with pandas input."
            )
    if len(set(columns)) != len(columns):
        raise ValueError(f"target lists a column more than once: {target!r}.")
    return columns


def _is_label(item: Any, names: list[Hashable]) -> bool:
    try:
        return item in names
    except (TypeError, ValueError):
        return False


def _column_index(columns: list[int]) -> slice | list[int]:
    """A slice for evenly spaced ascending columns, keeping the selection a view."""
    if len(columns) == 1:
        return slice(columns[0], columns[0] + 1)
    steps = set(np.diff(columns).tolist())
    if len(steps) == 1 and (step := steps.pop()) > 0:
        return slice(columns[0], columns[-1] + 1, step)
    return columns


def make_windows(
    series: Any,
    lookback: int,
    horizon: int = 1,
    *,
    target: TargetSpec = None,
    target_offset: int = 1,
    include_target_in_X: bool | None = None,
    step: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a time series into sliding windows ``X`` and the values to predict ``y``.

    Window ``i`` covers the time steps ``i*step, ..., i*step + lookback - 1``. If
    ``t`` is its last step, its target is the target column(s) at steps
    ``t + target_offset, ..., t + target_offset + horizon - 1``. Windows are
    produced as long as the whole target exists, so no window is padded.

    The results are read-only views into ``series`` made with
    :func:`numpy.lib.stride_tricks.sliding_window_view`: windowing a long series
    costs no memory. Call ``X.copy()`` if you need to write to them.

    Parameters
    ----------
    series : array-like of shape (n_time,) or (n_time, n_series)
        The series, oldest first: a list, ndarray, pandas Series or DataFrame.
        Float arrays are used as they are; other dtypes are converted to float64
        once (one copy of the series, never one per window). NaN and inf are
        rejected, so fill gaps first.
    lookback : int
        Number of time steps per window (``>= 1``).
    horizon : int, default=1
        Number of consecutive future steps to predict (``>= 1``).
    target : int, str, list of them, or None, default=None
        The column(s) to predict. None means every column: a univariate series
        predicts itself, parallel series predict each other's next step. Ints are
        positions (negative ones count from the end); for a DataFrame or Series,
        column labels work too and are looked up before positions.
    target_offset : int, default=1
        Where the target starts relative to the last step of the window. 1
        predicts the next value(s). 0 aligns the target with the window's last
        step, for when the inputs at time ``t`` explain the output at time ``t``
        (the target column is then normally excluded from ``X``). ``k > 1``
        leaves a gap of ``k - 1`` steps.
    include_target_in_X : bool or None, default=None
        Whether the target column(s) are also input features. None means False
        when ``target`` leaves other columns (predict the target from them) and
        True otherwise (``target=None``, or a target that is every column: the
        series predicts itself). Pass True with a ``target`` to use the target's
        own history as an input as well; avoid it with ``target_offset=0``, where
        ``y`` would already be in ``X``.
    step : int, default=1
        Distance in time steps between the starts of consecutive windows.

    Returns
    -------
    X : ndarray of shape (n_windows, lookback, n_features)
        Input windows, always 3-D, even for a univariate series.
    y : ndarray
        Targets. Of shape ``(n_windows,)`` for one target and ``horizon=1``;
        ``(n_windows, horizon)`` for one target; ``(n_windows, n_targets)`` for
        ``horizon=1``; otherwise ``(n_windows, horizon, n_targets)``. Fit the
        last with ``LSTMRegressor(head="seq2seq")``, or reshape it to
        ``(n_windows, horizon * n_targets)`` for the dense head: a dense-head
        regressor reads a 3-D ``y`` as one output per *input* time step, which it
        is not, and when ``horizon == lookback`` it cannot tell the difference.

    Raises
    ------
    ValueError
        If the series is empty, not 1-D/2-D, not numeric or not finite; if it is
        shorter than one window plus its target; if ``lookback``, ``horizon`` or
        ``step`` is not an int >= 1 or ``target_offset`` not an int >= 0; if a
        target column does not exist; or if no input column is left.

    Notes
    -----
    ``n_windows = (n_time - need) // step + 1`` with
    ``need = lookback + target_offset + horizon - 1``.

    Targets made of evenly spaced columns (a single column, all of them, every
    other one...) and inputs likewise are views. Other column selections, such as
    inputs ``[0, 1, 3]`` around a target in column 2, take one copy of the
    selected columns of the series, still never one per window.

    Examples
    --------
    >>> import numpy as np
    >>> from seqpipe.preprocessing import make_windows

    Univariate series, predict the next value:

    >>> series = [10, 20, 30, 40, 50, 60, 70, 80, 90]
    >>> X, y = make_windows(series, 3)
    >>> X.shape, y.shape
    ((6, 3, 1), (6,))
    >>> X[0, :, 0], y[0]
    (array([10., 20., 30.]), np.float64(40.0))
    >>> X[-1, :, 0], y[-1]
    (array([60., 70., 80.]), np.float64(90.0))

    Multivariate inputs and an output column, aligned (``y`` at the window's
    last step, predicted from the input columns only):

    >>> in1 = np.arange(10, 100, 10)
    >>> in2 = in1 + 5
    >>> data = np.column_stack([in1, in2, in1 + in2])
    >>> X, y = make_windows(data, 3, target=-1, target_offset=0)
    >>> X.shape, y.shape
    ((7, 3, 2), (7,))
    >>> X[0]
    array([[10., 15.],
           [20., 25.],
           [30., 35.]])
    >>> y[0]
    np.float64(65.0)

    Parallel series, predict the next step of each:

    >>> X, y = make_windows(data, 3)
    >>> X.shape, y.shape
    ((6, 3, 3), (6, 3))
    >>> y[0]
    array([40., 45., 85.])

    Univariate series, predict several future steps:

    >>> X, y = make_windows(series, 3, horizon=2)
    >>> X.shape, y.shape
    ((5, 3, 1), (5, 2))
    >>> y[0]
    array([40., 50.])

    Multivariate inputs, several steps of one output, or of every series:

    >>> X, y = make_windows(data, 3, horizon=2, target=-1, target_offset=0)
    >>> X.shape, y.shape, y[0]
    ((6, 3, 2), (6, 2), array([65., 85.]))
    >>> X, y = make_windows(data, 3, horizon=2)
    >>> X.shape, y.shape
    ((5, 3, 3), (5, 2, 3))

    The windows are read-only views of the series:

    >>> values = np.arange(100.0)
    >>> X, y = make_windows(values, 10, step=5)
    >>> np.shares_memory(X, values), X.flags.writeable
    (True, False)
    """
    lookback = _check_int(lookback, "lookback", 1)
    horizon = _check_int(horizon, "horizon", 1)
    step = _check_int(step, "step", 1)
    target_offset = _check_int(target_offset, "target_offset", 0)

    arr, names = _as_float_2d(series)
    n_time, n_cols = arr.shape
    if n_time == 0:
        raise ValueError("series is empty (0 time steps).")
    if n_cols == 0:
        raise ValueError(f"series has no columns (shape {arr.shape}).")

    if target is None:
        target_cols = list(range(n_cols))
    else:
        target_cols = _resolve_columns(target, names, n_cols)
    include = include_target_in_X
    if include is None:
        include = len(target_cols) == n_cols
    input_cols = (
        list(range(n_cols)) if include else [c for c in range(n_cols) if c not in target_cols]
    )
    if not input_cols:
        raise ValueError(
            "No input columns are left: every column is a target and "
            "include_target_in_X=False. Pass include_target_in_X=True to predict the "
            "series from its own history."
        )

    need = lookback + target_offset + horizon - 1
    if n_time < need:
        offset = "" if target_offset == 1 else f" + target_offset={target_offset} - 1"
        raise ValueError(
            f"series has {n_time} time steps; lookback={lookback} + horizon={horizon}"
            f"{offset} needs at least {need}."
        )
    _check_finite(arr)

    n_windows = (n_time - need) // step + 1
    # Starts of the chosen windows among all sliding positions.
    starts = slice(0, (n_windows - 1) * step + 1, step)
    inputs = arr[:, _column_index(input_cols)]
    X = sliding_window_view(inputs, lookback, axis=0).transpose(0, 2, 1)[starts]

    first = lookback - 1 + target_offset
    targets = arr[:, _column_index(target_cols)]
    y = sliding_window_view(targets, horizon, axis=0).transpose(0, 2, 1)
    y = y[first : first + starts.stop : step]
    if len(target_cols) == 1:
        y = y[..., 0]
    if horizon == 1:
        y = y[:, 0]
    return X, y
