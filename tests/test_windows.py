"""make_windows: the S1-S5 problem shapes, window semantics, zero-copy views, errors."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest

from seqpipe.preprocessing import make_windows

SERIES = np.arange(10.0, 100.0, 10.0)  # 10, 20, ..., 90
IN1 = SERIES
IN2 = SERIES + 5
DATA = np.column_stack([IN1, IN2, IN1 + IN2])  # two inputs and their sum as output


@pytest.mark.parametrize(
    ("series", "kwargs", "x_shape", "y_shape", "x0", "y0", "y_last"),
    [
        pytest.param(
            SERIES.tolist(), {}, (6, 3, 1), (6,), [[10], [20], [30]], 40, 90, id="S1-univariate"
        ),
        pytest.param(
            DATA,
            {"target": -1, "target_offset": 0},
            (7, 3, 2),
            (7,),
            [[10, 15], [20, 25], [30, 35]],
            65,
            185,
            id="S2-inputs-to-aligned-output",
        ),
        pytest.param(
            DATA,
            {"target": -1},
            (6, 3, 2),
            (6,),
            [[10, 15], [20, 25], [30, 35]],
            85,
            185,
            id="S2-inputs-to-next-output",
        ),
        pytest.param(
            DATA,
            {},
            (6, 3, 3),
            (6, 3),
            [[10, 15, 25], [20, 25, 45], [30, 35, 65]],
            [40, 45, 85],
            [90, 95, 185],
            id="S3-parallel-series",
        ),
        pytest.param(
            SERIES,
            {"horizon": 2},
            (5, 3, 1),
            (5, 2),
            [[10], [20], [30]],
            [40, 50],
            [80, 90],
            id="S4-univariate-multistep",
        ),
        pytest.param(
            DATA,
            {"horizon": 2, "target": -1, "target_offset": 0},
            (6, 3, 2),
            (6, 2),
            [[10, 15], [20, 25], [30, 35]],
            [65, 85],
            [165, 185],
            id="S5-one-output-multistep",
        ),
        pytest.param(
            DATA,
            {"horizon": 2},
            (5, 3, 3),
            (5, 2, 3),
            [[10, 15, 25], [20, 25, 45], [30, 35, 65]],
            [[40, 45, 85], [50, 55, 105]],
            [[80, 85, 165], [90, 95, 185]],
            id="S5-parallel-multistep",
        ),
        pytest.param(
            DATA,
            {"horizon": 2, "target": [0, 2]},
            (5, 3, 1),
            (5, 2, 2),
            [[15], [25], [35]],
            [[40, 85], [50, 105]],
            [[80, 165], [90, 185]],
            id="S5-two-outputs-multistep",
        ),
    ],
)
def test_problem_shapes(series, kwargs, x_shape, y_shape, x0, y0, y_last):
    X, y = make_windows(series, 3, **kwargs)
    assert X.shape == x_shape
    assert y.shape == y_shape
    assert X.dtype == y.dtype == np.float64
    np.testing.assert_array_equal(X[0], x0)
    np.testing.assert_array_equal(y[0], y0)
    np.testing.assert_array_equal(y[-1], y_last)


def test_univariate_last_window_is_the_last_with_a_target():
    X, y = make_windows(SERIES, 3)
    np.testing.assert_array_equal(X[-1, :, 0], [60, 70, 80])
    assert y[-1] == 90


def _reference(series, lookback, horizon, step, offset, inputs, targets):
    """A plain loop over window starts, to check the strided views against."""
    xs, ys = [], []
    start = 0
    while start + lookback - 1 + offset + horizon <= len(series):
        last = start + lookback - 1
        xs.append(series[start : start + lookback][:, inputs])
        ys.append(series[last + offset : last + offset + horizon][:, targets])
        start += step
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize("lookback", [1, 4])
@pytest.mark.parametrize("horizon", [1, 3])
@pytest.mark.parametrize("step", [1, 3])
@pytest.mark.parametrize("target_offset", [0, 1, 4])
@pytest.mark.parametrize(
    ("target", "include", "inputs", "targets"),
    [
        (None, None, [0, 1, 2, 3], [0, 1, 2, 3]),
        (2, None, [0, 1, 3], [2]),
        (2, True, [0, 1, 2, 3], [2]),
        ([0, 3], None, [1, 2], [0, 3]),
        ([-1, 1], False, [0, 2], [3, 1]),
    ],
)
def test_windows_match_reference_loop(
    lookback, horizon, step, target_offset, target, include, inputs, targets
):
    series = np.random.default_rng(0).normal(size=(23, 4))
    X, y = make_windows(
        series,
        lookback,
        horizon,
        target=target,
        target_offset=target_offset,
        include_target_in_X=include,
        step=step,
    )
    X_ref, y_ref = _reference(series, lookback, horizon, step, target_offset, inputs, targets)
    need = lookback + target_offset + horizon - 1
    assert len(X) == (len(series) - need) // step + 1
    np.testing.assert_array_equal(X, X_ref)
    if len(targets) == 1:
        y_ref = y_ref[..., 0]
    if horizon == 1:
        y_ref = y_ref[:, 0]
    np.testing.assert_array_equal(y, y_ref)


def test_pandas_dataframe_target_by_name():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"in1": IN1, "in2": IN2, "out": IN1 + IN2})
    X, y = make_windows(df, 3, target="out", target_offset=0)
    X_ref, y_ref = make_windows(DATA, 3, target=-1, target_offset=0)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)
    X, y = make_windows(df, 3, target=["in2", "out"])
    assert X.shape == (6, 3, 1) and y.shape == (6, 2)
    np.testing.assert_array_equal(y[0], [45, 85])


def test_pandas_series_and_integer_dataframe():
    pd = pytest.importorskip("pandas")
    X_ref, y_ref = make_windows(SERIES, 3)
    # Naming the only column as target keeps it as the input too: nothing else is left.
    X, y = make_windows(pd.Series(SERIES, name="value"), 3, target="value")
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)
    X, y = make_windows(pd.DataFrame({"a": [1, 2, 3, 4], "b": [5, 6, 7, 8]}), 2, target="b")
    assert X.dtype == np.float64
    np.testing.assert_array_equal(y, [7, 8])


def test_nullable_pandas_gap_is_reported():
    pd = pytest.importorskip("pandas")
    s = pd.Series([1.0, None, 3.0, 4.0], dtype="Float64")
    with pytest.raises(ValueError, match="NaN at time step 1"):
        make_windows(s, 2)


def _base_chain(a):
    chain = []
    while a is not None:
        chain.append(a)
        a = getattr(a, "base", None)
    return chain


def test_ten_million_points_are_windowed_without_copying():
    series = np.arange(10_000_000, dtype=np.float64)
    tracemalloc.start()
    try:
        X, y = make_windows(series, 64, horizon=8, step=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert X.shape == (10_000_000 - 71, 64, 1)
    assert y.shape == (10_000_000 - 71, 8)
    assert peak < series.nbytes / 1000, f"peak {peak} bytes for an {series.nbytes}-byte series"
    assert any(b is series for b in _base_chain(X))
    assert any(b is series for b in _base_chain(y))
    assert np.shares_memory(X, series)
    assert np.shares_memory(y, series)
    assert X[123_456, 5, 0] == 123_461 and y[-1, -1] == 9_999_999


@pytest.mark.parametrize("kwargs", [{}, {"horizon": 3}, {"target": [0, 2]}, {"target": 1}])
def test_outputs_are_read_only_views(kwargs):
    series = np.arange(60.0).reshape(20, 3)
    X, y = make_windows(series, 4, **kwargs)
    assert not X.flags.writeable and not y.flags.writeable
    assert np.shares_memory(X, series) and np.shares_memory(y, series)
    with pytest.raises(ValueError, match="read-only"):
        X[0, 0, 0] = 1.0
    X.copy()[0, 0, 0] = 1.0  # the documented way to get a writable array


def test_non_float_input_is_converted_once():
    series = np.arange(20, dtype=np.int64).reshape(10, 2)
    X, y = make_windows(series, 3)
    assert X.dtype == np.float64
    assert not np.shares_memory(X, series)
    # One float copy of the series shared by every window and target, not per window.
    converted = _base_chain(X)[-1]
    assert converted.shape == series.shape
    assert np.shares_memory(X, y)


def test_float32_is_kept_and_uneven_columns_copy_only_selected_columns():
    series = np.arange(50, dtype=np.float32).reshape(10, 5)
    X, y = make_windows(series, 3, target=2)  # inputs 0, 1, 3, 4: not evenly spaced
    assert X.dtype == y.dtype == np.float32
    assert np.shares_memory(y, series)
    assert not np.shares_memory(X, series)
    assert _base_chain(X)[-1].size == 10 * 4  # one copy of the four input columns


@pytest.mark.parametrize(
    ("series", "kwargs", "match"),
    [
        (
            np.arange(5.0),
            {"lookback": 3, "horizon": 4},
            "series has 5 time steps; lookback=3 + horizon=4 needs at least 7.",
        ),
        (
            np.arange(5.0),
            {"lookback": 3, "horizon": 2, "target_offset": 2},
            "series has 5 time steps; lookback=3 + horizon=2 + target_offset=2 - 1 needs at "
            "least 6.",
        ),
        (np.arange(5.0), {"lookback": 0}, "lookback must be an int >= 1; got 0."),
        (np.arange(5.0), {"lookback": 2.0}, "lookback must be an int >= 1; got 2.0."),
        (np.arange(5.0), {"lookback": True}, "lookback must be an int >= 1; got True."),
        (np.arange(5.0), {"lookback": 2, "horizon": 0}, "horizon must be an int >= 1; got 0."),
        (np.arange(5.0), {"lookback": 2, "step": 0}, "step must be an int >= 1; got 0."),
        (
            np.arange(5.0),
            {"lookback": 2, "target_offset": -1},
            "target_offset must be an int >= 0; got -1.",
        ),
        (
            np.array([1.0, 2.0, np.nan, 4.0]),
            {"lookback": 2},
            "series contains NaN at time step 2; 1 value(s) in total are not finite. Fill or "
            "drop gaps first",
        ),
        (
            np.array([[1.0, 2.0], [3.0, np.inf], [5.0, 6.0]]),
            {"lookback": 1},
            "series contains infinity at time step 1 (column 1)",
        ),
        (
            DATA,
            {"lookback": 2, "target": 3},
            "target column 3 is out of range for a series with 3 column(s); use an index in "
            "[-3, 2].",
        ),
        (
            DATA,
            {"lookback": 2, "target": "out"},
            "target must be a column index (int) or a list of them for array input; got 'out'.",
        ),
        (DATA, {"lookback": 2, "target": [0, -3]}, "target lists a column more than once"),
        (DATA, {"lookback": 2, "target": []}, "target is an empty list"),
        (DATA, {"lookback": 2, "include_target_in_X": False}, "No input columns are left"),
        (
            SERIES,
            {"lookback": 2, "target": 0, "include_target_in_X": False},
            "No input columns are left",
        ),
        (np.float64(3.0), {"lookback": 1}, "got a scalar"),
        (np.zeros((4, 2, 2)), {"lookback": 1}, r"got shape (4, 2, 2)"),
        (np.array([]), {"lookback": 1}, "series is empty (0 time steps)."),
        (np.zeros((4, 0)), {"lookback": 1}, "series has no columns"),
        (np.array(["a", "b"]), {"lookback": 1}, "series must be numeric"),
    ],
    ids=[
        "too-short",
        "too-short-offset",
        "lookback-0",
        "lookback-float",
        "lookback-bool",
        "horizon-0",
        "step-0",
        "offset-negative",
        "nan",
        "inf",
        "target-range",
        "target-name",
        "target-duplicate",
        "target-empty",
        "no-inputs",
        "univariate-target-no-inputs",
        "scalar",
        "3d",
        "empty",
        "no-columns",
        "strings",
    ],
)
def test_errors(series, kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        make_windows(series, **kwargs)


def test_unknown_dataframe_column():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"in1": IN1, "out": IN2})
    with pytest.raises(
        ValueError,
        match=re.escape("target column 'y' is not a column; the columns are ['in1', 'out']."),
    ):
        make_windows(df, 2, target="y")
