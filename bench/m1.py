"""M1 yearly: one global LSTM across all 181 series vs the naive and drift forecasts.

The brief's target: a global model beats naive and drift on M1 yearly (sMAPE, MASE).
The usual protocol: the last 6 points of each series (the ``@horizon`` of the file)
are held out; everything before them is the series' training part.

* **Training data** (one model for all series): from each training part, every
  window of the last up-to-``L`` observations (``--lookback``, 12) before a point
  that has 6 training values after it, with at least ``--min-history`` (3)
  observations; the target is those next 6 values (direct multi-output ``y`` of
  shape ``(n, 6)``). Windows of series histories shorter than ``L`` are shorter
  sequences, NaN-padded at the end, which the estimators accept.
* **Model**: ``LSTMRegressor(local_scaling="standard", validation_fraction=0.2,
  patience=30, epochs=100, random_state=seed)``, everything else at its default.
  Window-local scaling standardizes each input window by its own mean and standard
  deviation and the target by the same window's figures, undone in ``predict``:
  M1's series range from tens to millions, and one global scale would squash most of
  them to zero. The number of epochs is chosen by the estimator's own early stopping
  on the windows of the last 20% of series (held out from training; best weights
  restored), never by looking at the test years.
* **Without local scaling** (``local_scaling=None``, the estimator's global
  standard scaling of inputs and targets), to show what local scaling is worth.
* **Forecast**: each series from its last ``L`` training points, 6 years at once.
* **Baselines**, computed in the same run: naive (the last training value repeated)
  and drift (the line through the first and last training points, extended).

Metrics, per series then averaged over the 181 series: sMAPE in % as in the M
competitions, ``mean(200 |y - f| / (|y| + |f|))``; MASE, the mean absolute error over
the in-sample mean absolute one-step naive error of the training part (seasonality
1 for yearly data). Seeds 0..N-1 (``--seeds``, 3): mean and spread (max - min).

Usage: ``python bench/m1.py [--quick] [--seeds 3] [--lookback 12] [--epochs 100]
[--validation-fraction 0.2] [--patience 30]
[--data ../shared/data/m1_yearly_dataset.tsf]``. ``--quick`` is a smoke run: one seed,
2 epochs, numbers meaningless.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch

import seqpipe
from seqpipe import LSTMRegressor
from seqpipe.datasets import load_tsf

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "m1_yearly_dataset.tsf"
HORIZON = 6


def padded(windows: list[np.ndarray], lookback: int) -> np.ndarray:
    """(n, lookback, 1), each window at the start, NaN after it (trailing padding)."""
    out = np.full((len(windows), lookback, 1), np.nan)
    for i, window in enumerate(windows):
        out[i, : len(window), 0] = window
    return out


def training_windows(
    trains: list[np.ndarray], lookback: int, min_history: int
) -> tuple[np.ndarray, np.ndarray]:
    inputs, targets = [], []
    for train in trains:
        for end in range(min_history, len(train) - HORIZON + 1):
            inputs.append(train[max(0, end - lookback) : end])
            targets.append(train[end : end + HORIZON])
    return padded(inputs, lookback), np.array(targets)


def smape(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Per series, in % (M-competition definition)."""
    return np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f)), axis=1)


def mase(y: np.ndarray, f: np.ndarray, trains: list[np.ndarray]) -> np.ndarray:
    """Per series; scale: in-sample mean absolute one-step naive error (seasonality 1)."""
    scale = np.array([np.mean(np.abs(np.diff(train))) for train in trains])
    return np.mean(np.abs(y - f), axis=1) / scale


def fit_forecast(
    model: LSTMRegressor, X: np.ndarray, y: np.ndarray, X_last: np.ndarray
) -> tuple[np.ndarray, float, int]:
    """Fit on the windows and forecast from each series' last window."""
    started = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - started
    return model.predict(X_last), seconds, int(model.n_epochs_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 2 epochs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--lookback", type=int, default=12)
    parser.add_argument("--min-history", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=30, help="early-stopping patience")
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.2,
        help="early stopping on the windows of the last 20%% of series (0: off)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-global", action="store_true", help="skip local_scaling=None")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs = 1, 2
    torch.set_num_threads(args.threads)

    bunch = load_tsf(args.data)
    if bunch.horizon not in (None, HORIZON):
        raise SystemExit(f"{args.data}: horizon {bunch.horizon}, this script holds out 6")
    trains = [s[:-HORIZON] for s in bunch.series]
    truth = np.array([s[-HORIZON:] for s in bunch.series])
    X, y = training_windows(trains, args.lookback, args.min_history)
    X_last = padded([t[-args.lookback :] for t in trains], args.lookback)

    label = " QUICK SMOKE RUN: numbers meaningless, not the figures" if args.quick else ""
    setting = (
        "custom settings, not the documented run"
        if args.seeds != 3 or args.epochs != 100
        else "full run"
    )
    print(
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; seqpipe {seqpipe.__version__}, torch "
        f"{torch.__version__} ({args.threads} thread(s)), scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}; {os.cpu_count()} CPUs, "
        f"load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"M1 yearly: {len(trains)} series, training parts {min(map(len, trains))}-"
        f"{max(map(len, trains))} points; {len(X)} training windows, lookback "
        f"{args.lookback}, horizon {HORIZON}; {args.seeds} seed(s), {args.epochs} epochs{label}"
    )
    print()
    rows: dict[str, dict[str, Any]] = {}
    last = np.array([t[-1] for t in trains])[:, None]
    steps = np.arange(1, HORIZON + 1)[None, :]
    slope = np.array([(t[-1] - t[0]) / (len(t) - 1) for t in trains])[:, None]
    for name, forecast in (("naive", np.repeat(last, HORIZON, 1)), ("drift", last + slope * steps)):
        rows[name] = {
            "smape": [smape(truth, forecast).mean()],
            "mase": [mase(truth, forecast, trains).mean()],
        }

    variants = [("LSTM, window-local scaling", True)]
    if not args.no_global:
        variants.append(("LSTM, global scaling (local_scaling=None)", False))
    started = time.perf_counter()
    for name, local in variants:
        rows[name] = {"smape": [], "mase": [], "seconds": [], "epochs": []}
        for seed in range(args.seeds):
            model = LSTMRegressor(
                epochs=args.epochs,
                validation_fraction=args.validation_fraction,
                patience=args.patience,
                local_scaling="standard" if local else None,
                random_state=seed,
                torch_num_threads=args.threads,
            )
            forecast, seconds, epochs = fit_forecast(model, X, y, X_last)
            row = rows[name]
            row["smape"].append(smape(truth, forecast).mean())
            row["mase"].append(mase(truth, forecast, trains).mean())
            row["seconds"].append(seconds)
            row["epochs"].append(epochs)
            print(
                f"{name}, seed {seed}: sMAPE {row['smape'][-1]:.2f} %, MASE "
                f"{row['mase'][-1]:.3f}; fit {seconds:.1f} s ({epochs} epochs, "
                f"{seconds / epochs:.3f} s/epoch); elapsed {time.perf_counter() - started:.0f} s",
                flush=True,
            )

    print(f"\n### M1 yearly, horizon 6, {args.seeds} seed(s){label}\n")
    print(
        "| method | sMAPE % (mean) | spread | MASE (mean) | spread | fit s "
        "| beats naive and drift |"
    )
    print("|" + " --- |" * 7)
    best_smape = min(rows[b]["smape"][0] for b in ("naive", "drift"))
    best_mase = min(rows[b]["mase"][0] for b in ("naive", "drift"))
    for name, row in rows.items():
        s, m = np.array(row["smape"]), np.array(row["mase"])
        deterministic = "seconds" not in row
        spread_s = "-" if deterministic else f"{np.ptp(s):.2f}"
        spread_m = "-" if deterministic else f"{np.ptp(m):.3f}"
        fit = "-" if deterministic else f"{np.mean(row['seconds']):.1f}"
        beats = (
            "-"
            if deterministic
            else "yes"
            if s.mean() < best_smape and m.mean() < best_mase
            else f"sMAPE {'yes' if s.mean() < best_smape else 'no'}, "
            f"MASE {'yes' if m.mean() < best_mase else 'no'}"
        )
        print(
            f"| {name} | {s.mean():.2f} | {spread_s} | {m.mean():.3f} | {spread_m} | {fit} | "
            f"{beats} |"
        )
    print(
        f"\nLSTM: LSTMRegressor defaults (hidden 32, Adam lr 1e-3, batch 32) but epochs="
        f"{args.epochs}, validation_fraction={args.validation_fraction}, patience="
        f"{args.patience}."
    )
    print(f"({time.perf_counter() - started:.0f} s of fits; {label.strip() or setting})")


if __name__ == "__main__":
    main()
