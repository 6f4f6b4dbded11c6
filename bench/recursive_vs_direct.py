"""Seed S13: recursive vs direct multi-step forecasting on yearly sunspots.

Both strategies use the same ``LSTMRegressor`` (same size, learning rate, and at
most ``--epochs`` epochs with early stopping on the last 20 % of the training
windows, patience 20):

* recursive: trained to predict the next year only, then fed its own predictions
  (:func:`seqpipe.forecasting.recursive_forecast`) to reach 1..H years ahead;
* direct: trained with ``y`` of shape ``(n, H)``, all H years in one call.

Evaluated on the held-out last ``--test`` years: every test year that has H
observed years after it is a forecast origin (history = everything before it,
training years included, as in production). Prints MAE per horizon, averaged over
seeds, with a persistence baseline (repeat the last year) and linear (Ridge)
versions of both strategies for scale. Runs in well under 2 minutes on 2 cores.

Usage: ``python bench/recursive_vs_direct.py [--quick] [--seeds 3] [--horizon 10]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import Ridge

from seqpipe import LSTMRegressor
from seqpipe.forecasting import RecursiveForecaster

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (
    ROOT.parent / "shared" / "data" / "sunspots_yearly.csv",
    ROOT / "seqpipe" / "data" / "sunspots_yearly.csv",  # the package's own copy
)


def load_sunspots() -> np.ndarray:
    for path in CANDIDATES:
        if path.exists():
            return np.loadtxt(path, delimiter=",", skiprows=1, usecols=1)
    raise FileNotFoundError(f"sunspots_yearly.csv not found in {[str(p) for p in CANDIDATES]}")


def origins(series: np.ndarray, n_test: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Histories ending just before each test origin, padded to one length, and truth.

    Every history is the full series up to the origin; only its last ``lookback``
    steps matter, so they are cut to a common length (the shortest) for batching.
    """
    first = len(series) - n_test
    starts = np.arange(first, len(series) - horizon + 1)
    length = first
    histories = np.stack([series[s - length : s] for s in starts])[:, :, None]
    truth = np.stack([series[s : s + horizon] for s in starts])
    return histories, truth


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)  # tiny model: one thread is fastest and immune to load
    series = load_sunspots()
    train = series[: len(series) - args.test]
    histories, truth = origins(series, args.test, args.horizon)
    H = args.horizon

    def lstm(seed: int) -> LSTMRegressor:
        return LSTMRegressor(
            hidden_size=32,
            epochs=args.epochs,
            lr=3e-3,
            batch_size=32,
            validation_fraction=0.2,
            patience=20,
            random_state=seed,
        )

    rows: dict[str, list[np.ndarray]] = {}
    started = time.perf_counter()
    for seed in range(args.seeds):
        for name, horizon in (("LSTM recursive", 1), ("LSTM direct", H)):
            f = RecursiveForecaster(lstm(seed), lookback=args.lookback, horizon=horizon).fit(train)
            pred = f.forecast(H, history=histories)[:, :, 0]
            rows.setdefault(name, []).append(np.abs(pred - truth).mean(axis=0))
    for name, horizon in (("Ridge recursive", 1), ("Ridge direct", H)):
        f = RecursiveForecaster(Ridge(alpha=1.0), lookback=args.lookback, horizon=horizon)
        pred = f.fit(train).forecast(H, history=histories)[:, :, 0]
        rows[name] = [np.abs(pred - truth).mean(axis=0)]
    rows["persistence"] = [np.abs(histories[:, -1, :] - truth).mean(axis=0)]
    elapsed = time.perf_counter() - started

    print(
        f"Sunspots (yearly, {len(series)} years): train on the first {len(train)}, "
        f"{len(truth)} forecast origins in the last {args.test}; lookback {args.lookback}; "
        f"LSTM(32), <= {args.epochs} epochs with early stopping, mean of {args.seeds} seed(s). "
        "MAE by horizon:\n"
    )
    header = "| model | " + " | ".join(f"h={h}" for h in range(1, H + 1)) + " | mean |"
    print(header)
    print("|" + " --- |" * (H + 2))
    for name, values in rows.items():
        mae = np.mean(values, axis=0)
        cells = " | ".join(f"{v:.1f}" for v in mae)
        print(f"| {name} | {cells} | {mae.mean():.1f} |")
    print(f"\n({elapsed:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, few epochs (smoke run)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--lookback", type=int, default=20)
    parser.add_argument("--test", type=int, default=60, help="held-out tail, in years")
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs = 1, 10
    run(args)


if __name__ == "__main__":
    main()
