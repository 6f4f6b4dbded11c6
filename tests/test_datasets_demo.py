"""Built-in data sets and the product demo (`python -m seqpipe.demo`)."""

from __future__ import annotations

import builtins
import json
import sys

import numpy as np
import pytest

from seqpipe import datasets, demo, runtime
from seqpipe.datasets import load_airline_passengers, load_sunspots


def test_airline_passengers_values():
    bunch = load_airline_passengers()
    assert bunch.data.shape == (144,)
    assert bunch.data.dtype == np.float64
    assert bunch.data[0] == 112.0
    assert bunch.data[-1] == 432.0
    assert bunch.data.min() == 104.0 and bunch.data.max() == 622.0
    assert bunch.dates.shape == (144,)
    assert str(bunch.dates[0]) == "1949-01" and str(bunch.dates[-1]) == "1960-12"
    # Consecutive months, nothing missing or repeated.
    assert np.all(np.diff(bunch.dates).astype(int) == 1)
    assert bunch.name == "passengers"
    assert "Box" in bunch.description


def test_sunspots_values():
    bunch = load_sunspots()
    assert bunch.data.shape == (309,)
    assert bunch.data[:3].tolist() == [5.0, 11.0, 16.0]
    assert bunch.data[-1] == 2.9
    assert bunch.dates[0] == 1700 and bunch.dates[-1] == 2008
    assert np.all(np.diff(bunch.dates) == 1)
    assert np.all(np.isfinite(bunch.data)) and bunch.data.min() >= 0


@pytest.mark.parametrize(
    ("loader", "n", "index_name"),
    [(load_airline_passengers, 144, "month"), (load_sunspots, 309, "year")],
)
def test_as_frame_returns_series(loader, n, index_name):
    pd = pytest.importorskip("pandas")
    bunch = loader(as_frame=True)
    assert isinstance(bunch.data, pd.Series)
    assert len(bunch.data) == n
    assert bunch.data.index.name == index_name
    np.testing.assert_array_equal(bunch.data.to_numpy(), loader().data)


def test_as_frame_without_pandas_says_so(monkeypatch):
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "pandas", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match=r"as_frame=True\) needs pandas"):
        datasets.load_airline_passengers(as_frame=True)
    # Without as_frame, pandas is not needed.
    assert datasets.load_airline_passengers().data.shape == (144,)


def test_demo_problem_alignment():
    problem = demo.make_problem(lookback=12)
    assert problem.test_start == 120
    assert problem.X_train.shape == (108, 12, 1) and problem.X_test.shape == (24, 12, 1)
    np.testing.assert_array_equal(problem.truth, problem.passengers[120:])
    # Raw passengers in; the test windows end the month before each held-out month.
    np.testing.assert_array_equal(problem.X_test[:, -1, 0], problem.passengers[119:143])
    np.testing.assert_array_equal(problem.y_train, problem.passengers[12:120])
    naive = demo.naive_forecasts(problem)
    np.testing.assert_array_equal(naive["naive: last month"], problem.passengers[119:143])
    np.testing.assert_array_equal(naive["naive: same month last year"], problem.passengers[108:132])


def test_demo_main_end_to_end(tmp_path, capsys):
    results = demo.main(["--epochs", "5", "--out-dir", tmp_path])
    plot = tmp_path / demo.PLOT_NAME
    assert results["plot"] == plot and plot.stat().st_size > 10_000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(results["forecasts"]) == {
        "LSTMRegressor",
        "naive: last month",
        "naive: same month last year",
        demo.ONNX_LABEL,
    }
    for forecast in results["forecasts"].values():
        assert forecast.shape == (24,) and np.all(np.isfinite(forecast))
    # The forecasts served from the exported file are the model's own.
    assert (tmp_path / demo.MODEL_NAME).stat().st_size > 1000
    np.testing.assert_allclose(
        results["forecasts"][demo.ONNX_LABEL], results["forecasts"]["LSTMRegressor"], rtol=1e-5
    )
    served = runtime.load(tmp_path / demo.MODEL_NAME)
    # The file maps raw passenger windows to passengers and says so.
    meaning = json.loads(served.metadata["seqpipe.outputs"])[0]["meaning"]
    assert "scaled by its own mean" in meaning
    assert abs(served.predict(results["problem"].X_test).mean() - 400) < 200  # passengers
    np.testing.assert_allclose(
        served.predict(results["problem"].X_test),
        results["model"].predict(results["problem"].X_test),
        rtol=1e-4,
        atol=1e-6,
    )
    assert results["model"].n_epochs_ == 5
    out = capsys.readouterr().out
    for column in ("MAE", "RMSE", "MAPE %"):
        assert column in out
    assert "naive: same month last year" in out
    assert "onnxruntime" in out and "max |difference|" in out


def test_demo_restores_torch_threads(tmp_path):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    demo.main(["--epochs", "1", "--threads", "1", "--no-plot", "--no-onnx", "--out-dir", tmp_path])
    assert torch.get_num_threads() == before
    assert not (tmp_path / demo.PLOT_NAME).exists()
    assert not (tmp_path / demo.MODEL_NAME).exists()
