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

Run ``python bench/inference.py`` (about a minute) or ``--quick`` (a few seconds,
noisier).
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


def fit_model(n_features: int, seq: int, hidden: int, **params: object) -> LSTMRegressor:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, seq, n_features))
    # Trained weights do not change the cost of a forward pass: one epoch is enough.
    # torch_num_threads=None: predict with the process's setting (--threads), as
    # onnxruntime gets, not the estimators' default of 1.
    model = LSTMRegressor(
        hidden_size=hidden, epochs=1, random_state=0, torch_num_threads=None, **params
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
        f"\n{name}: {est.architecture} hidden {est.hidden_size} x {est.num_layers} layer(s)"
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


def bench_streaming(
    est: LSTMRegressor, folder: str, threads: int, args: argparse.Namespace
) -> None:
    path = export(est, os.path.join(folder, "stream.onnx"), streaming=True)
    model = runtime.load(path, intra_op_num_threads=threads)
    rng = np.random.default_rng(2)
    print(
        f"\nstreaming ({est.architecture} {est.hidden_size}, batch 1): one step vs the whole window"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and ORT")
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
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
