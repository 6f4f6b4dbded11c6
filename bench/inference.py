"""Inference: the exported file in seqpipe.runtime vs the estimator's own predict.

Targets (BRIEF, "Targets"): the runtime's ``predict`` on the exported file, against
the estimator's ``predict``, both called as a user calls them (float64 numpy input,
validation included): >= 10x faster at batch 1 for a small model (LSTM 50, seq 5,
1 feature), >= 3x for a bi-LSTM 2x64 (seq 32, 4 features), >= 1.8x at batch 1024;
the runtime wrapper adds at most 20% over a bare ``InferenceSession.run`` (same
file, same float32 array, no validation); a streaming step costs O(1) in the
window length.

Threads: torch runs with ``torch.set_num_threads(2)``, onnxruntime with
``intra_op_num_threads=2`` (and 1 inter-op thread): both get the same 2 cores.

Timing: every contender is timed in interleaved rounds (each once per round), a
round times a block of calls, and the minimum per-call time over rounds is
reported: background load only ever adds time. The load average is printed with
the figures; with a load above the core count torch's 2 threads stall (the
brief measured a p90 of 185 ms) and the speed-ups read higher than on a quiet
machine. ``--threads 1`` gives both libraries one thread, which a busy machine
disturbs far less.

int8 (``export(..., quantize="int8")``): for each model, and for an LSTM 256x2
(seq 64, 4 features) where the recurrent kernel dominates, the int8 file's
``predict`` against the float32 file's and the estimator's at batch 1 and 1024,
with the error the export measured (RMS difference over the float32 output's
standard deviation; exported with ``quantize_tolerance=1`` so a figure above the
default budget of 0.05 is printed rather than refused). ``--no-int8`` skips them.

Run ``python bench/inference.py`` (about a minute; three with the int8 rows) or
``--quick`` (a few seconds, noisier).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import torch

from seqpipe import LSTMRegressor, runtime
from seqpipe.onnx import export


def per_call(fn: Callable[[], object], budget: float) -> float:
    """Seconds per call over a block of calls lasting about ``budget`` seconds."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(1, int(budget / once))
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def race(
    contenders: dict[str, Callable[[], object]], rounds: int, budget: float
) -> dict[str, float]:
    """Minimum seconds per call of each contender, rounds interleaved."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, fn in contenders.items():
            best[name] = min(best[name], per_call(fn, budget))
    return best


def fit_model(
    n_features: int, seq: int, hidden: int, epochs: int = 1, **params: object
) -> LSTMRegressor:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, seq, n_features))
    # Trained weights do not change the cost of a forward pass: one epoch is enough
    # for the timings. The int8 error does depend on them (an untrained model's
    # outputs barely vary), so those models train a few epochs more.
    # torch_num_threads=None: predict with the process's setting (--threads), as
    # onnxruntime gets, not the estimators' default of 1.
    model = LSTMRegressor(
        hidden_size=hidden, epochs=epochs, random_state=0, torch_num_threads=None, **params
    )
    return model.fit(X, X[:, -1, 0])


def us(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f} us"


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "FAIL"


def bench_predict(
    name: str,
    est: LSTMRegressor,
    folder: str,
    options: ort.SessionOptions,
    threads: int,
    args: argparse.Namespace,
    targets: dict[int, float],
) -> None:
    path = export(est, os.path.join(folder, f"{name}.onnx"))
    model = runtime.load(path, intra_op_num_threads=threads)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    seq, n_features = 32 if "bi" in name else 5, est.n_features_in_
    rng = np.random.default_rng(1)
    print(
        f"\n{name}: {est.architecture} hidden {est.hidden_size_} x {est.num_layers} layer(s)"
        f"{', bidirectional' if est.bidirectional else ''}, seq {seq}, {n_features} feature(s)"
    )
    for batch, target in targets.items():
        X = rng.normal(size=(batch, seq, n_features))  # float64, as users pass it
        X32 = X.astype(np.float32)
        times = race(
            {
                "estimator.predict": lambda X=X: est.predict(X),
                "runtime.predict": lambda X=X: model.predict(X),
                "runtime.predict(f32)": lambda X32=X32: model.predict(X32),
                "InferenceSession.run": lambda X32=X32: session.run(None, {"X": X32}),
            },
            args.rounds,
            args.budget,
        )
        speedup = times["estimator.predict"] / times["runtime.predict"]
        overhead = times["runtime.predict(f32)"] / times["InferenceSession.run"] - 1
        print(
            f"  batch {batch:4d}: estimator {us(times['estimator.predict'])}   runtime "
            f"{us(times['runtime.predict'])}   bare session {us(times['InferenceSession.run'])}"
        )
        print(
            f"              speed-up {speedup:6.1f}x (target >= {target:g}x: "
            f"{verdict(speedup, target)})   wrapper overhead {overhead:+6.1%} on float32 input "
            f"(target <= 20%: {verdict(overhead, 0.20, higher_is_better=False)})"
        )


def bench_int8(
    name: str,
    est: LSTMRegressor,
    seq: int,
    folder: str,
    threads: int,
    rounds: int,
    budget: float,
    batches: tuple[int, ...] = (1, 1024),
) -> None:
    """int8 file vs float32 file vs estimator, and the error the export measured."""
    fp32 = runtime.load(
        export(est, os.path.join(folder, f"{name}-fp32.onnx")), intra_op_num_threads=threads
    )
    # Tolerance 1: report the error whatever it is, rather than refuse the file.
    path = export(
        est, os.path.join(folder, f"{name}-int8.onnx"), quantize="int8", quantize_tolerance=1.0
    )
    int8 = runtime.load(path, intra_op_num_threads=threads)
    q = int8.quantization
    n_features = est.n_features_in_
    print(
        f"\nint8 {name}: {est.architecture} hidden {est.hidden_size_} x {est.num_layers} "
        f"layer(s){', bidirectional' if est.bidirectional else ''}, seq {seq}, {n_features} "
        f"feature(s); export-measured error {q['error']:.2%} of the output std "
        f"(RMS; largest difference {q['max_over_std']:.1%} std, {q['sequences']} drawn "
        f"sequences), nodes {q['nodes']}"
    )
    rng = np.random.default_rng(3)
    for batch in batches:
        X = rng.normal(size=(batch, seq, n_features))
        times = race(
            {
                "estimator": lambda X=X: est.predict(X),
                "fp32 file": lambda X=X: fp32.predict(X),
                "int8 file": lambda X=X: int8.predict(X),
            },
            rounds,
            budget,
        )
        a, b = fp32.predict(X), int8.predict(X)
        error = np.sqrt(np.mean((a - b) ** 2)) / a.std() if batch > 1 else float("nan")
        print(
            f"  batch {batch:4d}: estimator {us(times['estimator'])}   fp32 file "
            f"{us(times['fp32 file'])}   int8 file {us(times['int8 file'])}   int8 vs fp32 "
            f"{times['fp32 file'] / times['int8 file']:5.2f}x, vs estimator "
            f"{times['estimator'] / times['int8 file']:5.2f}x"
            + (f"   error on this batch {error:.2%} std" if batch > 1 else "")
        )


def bench_streaming(
    est: LSTMRegressor, folder: str, threads: int, args: argparse.Namespace
) -> None:
    path = export(est, os.path.join(folder, "stream.onnx"), streaming=True)
    model = runtime.load(path, intra_op_num_threads=threads)
    rng = np.random.default_rng(2)
    print(
        f"\nstreaming ({est.architecture} {est.hidden_size_}, batch 1): "
        "one step vs the whole window"
    )
    for window in (32, 256):
        X = rng.normal(size=(1, window, est.n_features_in_))
        stream = model.stream()
        stream.feed(X)  # state after `window` steps; each timed step adds one more
        x_t = X[0, -1:]
        times = race(
            {
                "full window": lambda X=X: model.predict(X),
                "step": lambda s=stream, x=x_t: s.step(x),
            },
            args.rounds,
            args.budget,
        )
        print(
            f"  window {window:3d}: predict(window) {us(times['full window'])}   stream.step "
            f"{us(times['step'])}   ratio {times['full window'] / times['step']:6.1f}x"
        )


def int8_rows(folder: str, args: argparse.Namespace) -> None:
    """The int8 section: the two models above, trained a little, and an LSTM 256x2."""
    print(f"\nint8 vs float32 (load average {os.getloadavg()[0]:.2f})")
    small = fit_model(1, 5, 50, epochs=20)
    bi = fit_model(4, 32, 64, epochs=10, num_layers=2, bidirectional=True)
    big = fit_model(4, 64, 256, epochs=5, num_layers=2)
    bench_int8("lstm50", small, 5, folder, args.threads, args.rounds, args.budget)
    bench_int8("bi-lstm2x64", bi, 32, folder, args.threads, args.rounds, args.budget)
    # A batch of 1024 takes seconds here: fewer rounds keep the run short.
    bench_int8("lstm256x2", big, 64, folder, args.threads, min(args.rounds, 3), args.budget)


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and ORT")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 rows")
    args = parser.parse_args()
    args.rounds, args.budget = (2, 0.05) if args.quick else (7, 0.2)
    torch.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime "
        f"{ort.__version__} ({args.threads} intra-op threads); load average "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    small = fit_model(1, 5, 50)
    bi = fit_model(4, 32, 64, num_layers=2, bidirectional=True)
    with tempfile.TemporaryDirectory() as folder:
        bench_predict("lstm50", small, folder, options, args.threads, args, {1: 10, 1024: 1.8})
        bench_predict("bi-lstm2x64", bi, folder, options, args.threads, args, {1: 3, 1024: 1.8})
        bench_streaming(small, folder, args.threads, args)
        if not args.no_int8:
            int8_rows(folder, args)
    print(
        f"\nload average at the end: {os.getloadavg()[0]:.2f}; "
        f"{time.perf_counter() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main()
