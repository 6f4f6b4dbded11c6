"""int8 on real data: test accuracy of an int8 classifier file vs its float32 file.

One UCR/UEA set (default ArrowHead: 36 train / 175 test series of 251 steps, 3
classes), one ``LSTMClassifier(architecture=name, random_state=seed)`` at its
defaults per architecture (default ``lstm_fcn``, 150 epochs), exported twice:
float32, and ``quantize="int8"`` with the training series as ``quantize_data``
(the budget is measured on data the model has seen, not on the test set). Printed
side by side, in one run:

* test accuracy of the estimator, the float32 file and the int8 file, and the share
  of test series whose predicted class the int8 file keeps;
* the error the export measured (RMS difference of the probabilities over their
  standard deviation; the budget is 0.05) and the same figure on the test set;
* ``predict`` time of each file on the whole test set and on one series, one
  onnxruntime thread (minimum over interleaved rounds, as ``inference.py`` times).

Usage: ``python bench/quantize.py [--set ArrowHead] [--architectures lstm_fcn lstm]
[--seed 0] [--epochs N] [--tolerance 0.05] [--data-dir ../shared/data/ucr]``; about a minute for
``lstm_fcn`` on ArrowHead on a quiet 2-core machine. Plain ``lstm`` reads the
251-step series through its last state and stays near chance there (see the UCR
table in the README), so its int8 figures say little about accuracy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from inference import race, us

from seqpipe import LSTMClassifier, runtime
from seqpipe.datasets import load_ts
from seqpipe.onnx import export

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data" / "ucr"


def relative_rms(expected: np.ndarray, got: np.ndarray) -> float:
    """Worst column's RMS difference over that column's standard deviation (as export)."""
    std = expected.std(axis=0)
    rms = np.sqrt(np.mean((got - expected) ** 2, axis=0))
    return float(np.max(rms / np.where(std > 0, std, 1.0)))


def run(name: str, args: argparse.Namespace, data: tuple, folder: str) -> None:
    X_train, y_train, X_test, y_test = data
    params = {} if args.epochs is None else {"epochs": args.epochs}
    start = time.perf_counter()
    clf = LSTMClassifier(architecture=name, random_state=args.seed, **params).fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    fp32_path = export(clf, os.path.join(folder, f"{name}-fp32.onnx"))
    start = time.perf_counter()
    int8_path = export(
        clf,
        os.path.join(folder, f"{name}-int8.onnx"),
        quantize="int8",
        quantize_data=X_train,
        quantize_tolerance=args.tolerance,
    )
    export_s = time.perf_counter() - start
    fp32 = runtime.load(fp32_path, intra_op_num_threads=1)
    int8 = runtime.load(int8_path, intra_op_num_threads=1)
    q = int8.quantization
    labels = {
        "estimator": clf.predict(X_test),
        "fp32 file": fp32.predict(X_test),
        "int8 file": int8.predict(X_test),
    }
    accuracy = {k: float(np.mean(v == y_test)) for k, v in labels.items()}
    agreement = float(np.mean(labels["int8 file"] == labels["fp32 file"]))
    test_error = relative_rms(fp32.predict_proba(X_test), int8.predict_proba(X_test))
    sizes = {k: os.path.getsize(p) / 1024 for k, p in (("fp32", fp32_path), ("int8", int8_path))}
    print(
        f"\n{name} on {args.set} (seed {args.seed}, {clf.n_epochs_} epochs, fit {fit_s:.0f} s; "
        f"int8 export {export_s:.1f} s; nodes {q['nodes']}; file {sizes['fp32']:.0f} KiB "
        f"-> {sizes['int8']:.0f} KiB)"
    )
    print(
        "  test accuracy: "
        + "   ".join(f"{k} {v:.3f}" for k, v in accuracy.items())
        + f"   int8 keeps the fp32 class on {agreement:.1%} of {len(y_test)} test series"
    )
    print(
        f"  int8 error: {q['error']:.2%} of the probabilities' std on the {q['sequences']} "
        f"training series (budget {q['tolerance']:.0%}; classes agree on "
        f"{q['class_agreement']:.1%}), {test_error:.2%} on the test series"
    )
    for batch in (len(X_test), 1):
        X = X_test[:batch]
        times = race(
            {"fp32 file": lambda X=X: fp32.predict(X), "int8 file": lambda X=X: int8.predict(X)},
            args.rounds,
            args.budget,
        )
        ratio = times["fp32 file"] / times["int8 file"]
        print(
            f"  predict, batch {batch:3d}: fp32 {us(times['fp32 file'])}   int8 "
            f"{us(times['int8 file'])}   int8 vs fp32 {ratio:.2f}x"
        )


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="ArrowHead")
    parser.add_argument("--architectures", nargs="+", default=["lstm_fcn"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="default: the estimator's")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--tolerance", type=float, default=0.05, help="quantize_tolerance (a smoke run: 1)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per timed block")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = load_ts(args.data_dir / f"{args.set}_TRAIN.ts")
    test = load_ts(args.data_dir / f"{args.set}_TEST.ts")
    print(
        f"torch {torch.__version__} (1 thread), onnxruntime {ort.__version__} (1 thread); "
        f"{os.cpu_count()} CPUs, load average "
        + "/".join(f"{x:.1f}" for x in os.getloadavg())
        + f"; {args.set}: {len(train.target)} train / {len(test.target)} test series of "
        f"{train.data.shape[1]} steps"
    )
    data = (train.data, train.target, test.data, test.target)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.architectures:
            run(name, args, data, folder)
    print(
        f"\nload average at the end: {'/'.join(f'{x:.1f}' for x in os.getloadavg())}; "
        f"{time.perf_counter() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main()
