"""predict on ragged series: length-sorted chunks, each cut after its longest series.

``predict``/``predict_proba``/``transform`` take ragged rows in order of length, in
chunks of at most ``PREDICT_STEPS`` rows x time steps, and cut each chunk after its
own longest sequence (see ``SequenceModelBase._forward``). Side by side in one run,
for each architecture:

* **predict_proba**: the estimator's call as a user makes it (validation included);
* **one padded pass**: the same network over the whole batch padded to its longest
  series, what ``predict`` computed before (same scaling, same ``module_``, called
  directly under ``inference_mode``), and the largest difference between the two;
* the same for the exported file in ``seqpipe.runtime`` (``predict_proba``, chunked
  from ``RAGGED_MIN_ROWS`` rows) against one onnxruntime call on the padded batch
  (chunking turned off by raising ``RAGGED_MIN_ROWS`` past the batch).

Data: a ragged UCR set from ``../shared/data/ucr`` (``--set``, default PLAID: 537
test series of 134 to 1000 steps, median 300), or with ``--synthetic`` 400 random
series of 10 to 1000 steps. A set that is not there is an error, not a fallback.
Each model is fitted one epoch on the training series (the network's speed does
not depend on its weights).
One torch thread, best of ``--rounds`` interleaved rounds; the load average is
printed with the figures.

Run: ``python bench/ragged_predict.py [--set PLAID] [--rounds 3] [--synthetic]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from seqpipe import LSTMClassifier, runtime
from seqpipe.datasets import load_ts
from seqpipe.onnx import export

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ucr"
ARCHITECTURES = ("lstm", "gru", "lstm_fcn")


def _data(args: argparse.Namespace) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    if not args.synthetic:
        train_path = DATA_DIR / f"{args.set}_TRAIN.ts"
        if not train_path.exists():
            raise SystemExit(
                f"no {train_path}: pass --set with a ragged set in {DATA_DIR} "
                "(PLAID, PickupGestureWiimoteZ) or --synthetic for random series"
            )
        train, test = load_ts(train_path), load_ts(DATA_DIR / f"{args.set}_TEST.ts")
        return args.set, train.data, train.target, test.data
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 1000, 1))
    for row, length in zip(X, rng.integers(10, 1001, size=len(X)), strict=True):
        row[length:] = np.nan
    y = (np.nansum(X[:, :, 0], axis=1) > 0).astype(int)
    return "synthetic", X[:200], y[:200], X[200:]


def _padded_pass(model: LSTMClassifier, X: np.ndarray) -> np.ndarray:
    """The whole batch at its padded width in one call: predict before chunks were cut."""
    X, lengths = model._validate_X(X, reset=False)
    module = model.module_.eval()
    with torch.inference_mode():
        inputs = torch.from_numpy(model._network_input(X))
        logits = module(inputs, None if lengths is None else torch.from_numpy(lengths))
    return torch.softmax(logits.double(), dim=1).numpy()


def _served_padded(served: runtime.OnnxSequenceModel, X: np.ndarray) -> np.ndarray:
    """The exported file's predict_proba in one onnxruntime call (no chunking)."""
    chunked_from = runtime.RAGGED_MIN_ROWS
    runtime.RAGGED_MIN_ROWS = len(X) + 1
    try:
        return served.predict_proba(X)
    finally:
        runtime.RAGGED_MIN_ROWS = chunked_from


def _best(run, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="PLAID", help="a ragged UCR set in ../shared/data/ucr")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synthetic", action="store_true", help="random series, no files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    name, X_train, y_train, X_test = _data(args)
    lengths = (~np.isnan(X_test).all(axis=2)).sum(axis=1)
    print(
        f"{name}: predict on {len(X_test)} series of {lengths.min()} to {lengths.max()} steps "
        f"(median {np.median(lengths):.0f}); torch {torch.__version__}, 1 thread, best of "
        f"{args.rounds}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    header = ("", "chunked s", "one padded pass s", "speed-up")
    print(f"{header[0]:<22} {header[1]:>10} {header[2]:>18} {header[3]:>9}  max diff")
    folder = tempfile.mkdtemp()
    for architecture in ARCHITECTURES:
        model = LSTMClassifier(architecture, epochs=1, random_state=0).fit(X_train, y_train)
        served = runtime.load(export(model, os.path.join(folder, f"{architecture}.onnx")))
        rows = {
            f"{architecture} predict_proba": (
                lambda m=model: m.predict_proba(X_test),
                lambda m=model: _padded_pass(m, X_test),
            ),
            f"{architecture} runtime": (
                lambda s=served: s.predict_proba(X_test),
                lambda s=served: _served_padded(s, X_test),
            ),
        }
        for name, (ours_run, padded_run) in rows.items():
            ours = padded = float("inf")
            for _ in range(2):  # interleaved: load from other processes hits both alike
                ours = min(ours, _best(ours_run, args.rounds))
                padded = min(padded, _best(padded_run, args.rounds))
            diff = np.abs(ours_run() - padded_run()).max()
            print(f"{name:<22} {ours:10.3f} {padded:18.3f} {padded / ours:8.1f}x  {diff:.1e}")


if __name__ == "__main__":
    main()
