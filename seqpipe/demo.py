"""The product demo: forecast airline passengers with an LSTM, against naive baselines.

Run it with ``python -m seqpipe.demo`` (about ten seconds on two CPU cores). It

1. loads the built-in monthly airline passengers series (144 months, 1949-1960);
2. cuts the raw passenger counts into windows of the last ``lookback`` months with
   :func:`seqpipe.preprocessing.make_windows`; a 12-month window holds the same
   month of last year, the strongest single predictor;
3. holds out the last 24 months, fits :class:`seqpipe.LSTMRegressor` with
   ``local_scaling="standard"`` on the rest and forecasts the held-out months one
   step ahead (each forecast sees the true history up to the month before). The
   series trends out of its training range (an LSTM cannot extrapolate a level it
   never saw) and its seasonal swing grows with the level; scaling each window by
   its own mean and spread, and mapping the forecast back with them, takes both out
   of what the network has to learn;
4. exports the fitted model (window scaling, network and the mapping back
   included) to ``exported_models/airline_lstm.onnx`` with
   :func:`seqpipe.onnx.export`: the file maps raw passenger windows to passenger
   forecasts. It loads it with the torch-free :mod:`seqpipe.runtime` and serves the
   same forecasts from the file, reporting the largest difference and the speed of
   both;
5. compares with the naive forecasts (last month's value; the value twelve months
   earlier) by MAE, RMSE and MAPE, and saves a plot of forecast vs truth.

Everything is also callable: ``main(["--epochs", "50"])`` returns the results.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqpipe import runtime
from seqpipe.datasets import load_airline_passengers
from seqpipe.onnx import export
from seqpipe.preprocessing import make_windows
from seqpipe.regressor import LSTMRegressor

#: Months held out at the end of the series and forecast one step ahead.
TEST_MONTHS = 24
SEASON = 12
PLOT_NAME = "demo_forecast.png"
MODEL_NAME = "airline_lstm.onnx"
ONNX_LABEL = "LSTM served by onnxruntime"


def _windows(series: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``lookback`` steps and the next value, as ``(n, lookback, 1)`` and ``(n,)``."""
    return make_windows(series, lookback)


@dataclass
class Problem:
    """The series and its train/test windows."""

    dates: np.ndarray  # month of each value
    passengers: np.ndarray  # the raw series, thousands per month
    X_train: np.ndarray  # windows of passengers, (n_train, lookback, 1)
    y_train: np.ndarray  # the next month's passengers
    X_test: np.ndarray  # windows ending the month before each held-out month
    test_start: int  # index of the first held-out month in `passengers`

    @property
    def truth(self) -> np.ndarray:
        return self.passengers[self.test_start :]


def make_problem(lookback: int, test_months: int = TEST_MONTHS) -> Problem:
    """Load the series and split its windows into train and test.

    Parameters
    ----------
    lookback : int
        Months per window.
    test_months : int, default=24
        Months held out at the end.

    Returns
    -------
    Problem
    """
    bunch = load_airline_passengers()
    passengers = bunch.data
    X, y = _windows(passengers, lookback)
    # Window i predicts passengers[i + lookback]; the last `test_months` windows
    # predict the held-out months. Copies: the windows are read-only views and the
    # estimator may be handed them by other code.
    n_test = test_months
    if len(y) <= n_test:
        raise ValueError(f"lookback={lookback} leaves no training windows before the test months")
    return Problem(
        dates=bunch.dates,
        passengers=passengers,
        X_train=np.array(X[:-n_test]),
        y_train=np.array(y[:-n_test]),
        X_test=np.array(X[-n_test:]),
        test_start=len(passengers) - n_test,
    )


def naive_forecasts(problem: Problem) -> dict[str, np.ndarray]:
    """The baselines a forecast must beat to be worth anything."""
    p, start = problem.passengers, problem.test_start
    return {
        "naive: last month": p[start - 1 : -1],
        "naive: same month last year": p[start - SEASON : len(p) - SEASON],
    }


def metrics(truth: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    """MAE, RMSE (in thousands of passengers) and MAPE (percent)."""
    error = forecast - truth
    return {
        "MAE": float(np.mean(np.abs(error))),
        "RMSE": float(np.sqrt(np.mean(error**2))),
        "MAPE %": float(100 * np.mean(np.abs(error) / np.abs(truth))),
    }


def format_table(scores: dict[str, dict[str, float]]) -> str:
    names = list(next(iter(scores.values())))
    width = max(len(k) for k in scores) + 2
    lines = [f"{'forecast':<{width}}" + "".join(f"{n:>10}" for n in names)]
    lines.append("-" * len(lines[0]))
    for label, row in scores.items():
        lines.append(f"{label:<{width}}" + "".join(f"{row[n]:10.2f}" for n in names))
    return "\n".join(lines)


def save_plot(problem: Problem, forecasts: dict[str, np.ndarray], path: Path) -> Path:
    """Plot the last years of the series and each forecast of the held-out months."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed: the demo runs on servers and in CI
    import matplotlib.pyplot as plt

    first = max(problem.test_start - 4 * SEASON, 0)
    dates = problem.dates.astype("datetime64[D]")
    test_dates = dates[problem.test_start :]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(dates[first:], problem.passengers[first:], color="black", lw=2, label="truth")
    styles = {
        "LSTMRegressor": {"color": "tab:red", "lw": 2, "marker": "o", "ms": 3},
        # Same numbers as the line above it: markers only, so both stay visible.
        ONNX_LABEL: {"color": "tab:purple", "ls": "none", "marker": "x", "ms": 6},
    }
    for label, values in forecasts.items():
        ax.plot(test_dates, values, label=label, **styles.get(label, {"lw": 1, "ls": "--"}))
    ax.axvline(test_dates[0], color="grey", lw=0.8, ls=":")
    ax.set_title("Airline passengers: one-step-ahead forecasts of the last 24 months")
    ax.set_ylabel("passengers (thousands)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _median_seconds(fn: Any, repeats: int) -> float:
    fn()  # warm-up: first calls allocate and, for onnxruntime, plan the graph
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def serve_with_onnx(
    model: LSTMRegressor, X: np.ndarray, path: Path, repeats: int = 50
) -> tuple[np.ndarray, list[str]]:
    """Export ``model`` to ``path``, serve ``X`` from the file, and compare with torch.

    Returns
    -------
    predictions : ndarray
        onnxruntime's predictions for ``X`` (passengers, as ``model.predict``).
    notes : list of str
        The file written, the largest difference from ``model.predict`` and the
        median time of one ``predict`` call on ``X`` with torch and onnxruntime.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    export(model, path)  # verified against model.predict before it lands at `path`
    served = runtime.load(path, intra_op_num_threads=1)
    predictions = served.predict(X)
    reference = model.predict(X)
    torch_s = _median_seconds(lambda: model.predict(X), repeats)
    onnx_s = _median_seconds(lambda: served.predict(X), repeats)
    return predictions, [
        f"onnx: wrote {path} ({path.stat().st_size / 1024:.0f} KiB; raw passenger windows in, "
        "passenger forecasts out); "
        f"served by onnxruntime, max |difference| from model.predict "
        f"{np.max(np.abs(predictions - reference)):.2g}",
        f"predict {len(X)} windows: torch {1e3 * torch_s:.2f} ms, onnxruntime "
        f"{1e3 * onnx_s:.2f} ms ({torch_s / onnx_s:.1f}x faster)",
    ]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seqpipe.demo",
        description="Forecast the airline passengers series with an LSTM and compare with "
        "naive baselines.",
    )
    parser.add_argument("--lookback", type=int, default=12, help="months per window (12)")
    parser.add_argument("--hidden-size", type=int, default=16, help="LSTM units (16)")
    parser.add_argument("--epochs", type=int, default=200, help="training epochs (200)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (16)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (3e-3)")
    parser.add_argument("--random-state", type=int, default=0, help="seed (0)")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("exported_models"),
        help="where the ONNX file and the plot go (exported_models/)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: a model this small gains nothing from more, and "
        "extra threads stall when other processes share the cores)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the plot")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    return parser.parse_args(None if argv is None else [str(a) for a in argv])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the demo and print its report.

    Parameters
    ----------
    argv : sequence of str or None, default=None
        Command-line arguments (``sys.argv[1:]`` when None); see ``--help``.

    Returns
    -------
    results : dict
        ``model`` (the fitted LSTMRegressor), ``problem`` (data and windows, with
        ``X_test``), ``forecasts`` (label -> forecast of the held-out months),
        ``scores`` (label -> metrics), ``plot`` (path or None), ``seconds``.
    """
    args = _parse_args(argv)
    started = time.perf_counter()
    problem = make_problem(args.lookback)

    model = LSTMRegressor(
        hidden_size=args.hidden_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        local_scaling="standard",
        random_state=args.random_state,
        torch_num_threads=args.threads,  # set for fit and predict, the caller's kept
    )
    model.fit(problem.X_train, problem.y_train)
    fit_seconds = time.perf_counter() - started
    forecast = model.predict(problem.X_test)

    # Each step below adds to `results`; the report at the end prints whatever is
    # there, so further steps slot in without touching the report.
    results: dict[str, Any] = {
        "model": model,
        "problem": problem,
        "forecasts": {"LSTMRegressor": forecast},
        "notes": [
            f"fit: {model.n_epochs_} epochs on {len(problem.y_train)} windows "
            f"in {fit_seconds:.1f} s"
        ],
    }
    results["forecasts"].update(naive_forecasts(problem))

    if not args.no_onnx:
        served, notes = serve_with_onnx(model, problem.X_test, args.out_dir / MODEL_NAME)
        results["forecasts"][ONNX_LABEL] = served
        results["notes"] += notes

    truth = problem.truth
    results["scores"] = {k: metrics(truth, v) for k, v in results["forecasts"].items()}
    results["plot"] = None
    if not args.no_plot:
        results["plot"] = save_plot(problem, results["forecasts"], args.out_dir / PLOT_NAME)
    results["seconds"] = time.perf_counter() - started
    _print_report(results, args)
    return results


def _print_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    problem: Problem = results["problem"]
    scores = results["scores"]
    dates = problem.dates
    print(
        f"Airline passengers, {len(problem.passengers)} months "
        f"({dates[0]} to {dates[-1]}); held out: the last {len(problem.truth)} months "
        f"({dates[problem.test_start]} to {dates[-1]}), forecast one month ahead."
    )
    print(
        f"LSTMRegressor(hidden_size={args.hidden_size}, epochs={args.epochs}, "
        f"batch_size={args.batch_size}, lr={args.lr:g}, local_scaling='standard', "
        f"random_state={args.random_state}) on windows of {args.lookback} months of "
        "passengers, each scaled by its own mean and spread.\n"
    )
    print(format_table(scores))
    print()
    model_mae = scores["LSTMRegressor"]["MAE"]
    for label, row in scores.items():
        if label.startswith("naive"):
            gain = 100 * (1 - model_mae / row["MAE"])
            verdict = "beats" if gain > 0 else "does NOT beat"
            change = "lower" if gain > 0 else "higher"
            print(f"LSTMRegressor {verdict} '{label}': MAE {abs(gain):.0f}% {change}")
    for note in results["notes"]:
        print(note)
    if results["plot"] is not None:
        print(f"plot: {results['plot']}")
    print(f"total: {results['seconds']:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
