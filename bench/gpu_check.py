"""GPU check: fit each built-in architecture on CUDA, export, serve on onnxruntime's CUDA.

On a CUDA machine, for each built-in architecture (plus Keras activations, which
cuDNN cannot run):

1. ``LSTMRegressor(architecture=name, device="cuda")`` fits on random sequences;
2. ``seqpipe.onnx.export`` writes the file (verified on the CPU as always);
3. ``seqpipe.runtime.load(path, providers="cuda")``:

   * files whose recurrent nodes CUDA computes correctly must load on CUDA and
     match ``predict`` (``--rtol``, relative to the output's scale);
   * files CUDA would get wrong (peepholes, the coupled input-forget gate,
     non-default activations; the file's ``seqpipe.cuda_unsupported``) must be
     *refused* with a ``ValueError``, and with ``allow_cpu_fallback=True`` run on the
     CPU with a warning and still match;

4. times ``predict`` at batch 1 and 1024: the estimator on CPU and on CUDA, the file
   on onnxruntime's CPU and CUDA providers (median of ``--repeats``).

Prints one table, with the load average, and exits 1 if any check failed. On a
machine without CUDA (torch without CUDA, or onnxruntime without its CUDA provider)
it says what is missing and exits 0; the parts that can run without one (the
estimator on CUDA needs only torch; the file on CUDA needs only onnxruntime-gpu)
still run.

Usage: ``python bench/gpu_check.py [--epochs 3] [--repeats 20] [--rtol 1e-3] [--cpu]``;
``--cpu`` runs the same steps on the CPU only, to test the script where no GPU is.
CI has no GPU; run it wherever one is available (see the README's GPU section).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from seqpipe import LSTMRegressor, runtime
from seqpipe.onnx import cuda_incompatibilities, export

#: (label, architecture, extra parameters): every built-in, plus Keras activations.
CASES: tuple[tuple[str, str, dict], ...] = (
    ("lstm", "lstm", {}),
    ("lstm 2x bidirectional", "lstm", {"num_layers": 2, "bidirectional": True}),
    ("gru", "gru", {}),
    ("rnn", "rnn", {}),
    ("peephole_lstm", "peephole_lstm", {}),
    ("cifg_lstm", "cifg_lstm", {}),
    ("lstm, Keras activations", "lstm", {"recurrent_activation": "hard_sigmoid"}),
    ("lstm_fcn", "lstm_fcn", {}),
    ("mlstm_fcn", "mlstm_fcn", {}),
)


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (CUDA context, cuDNN plans, onnxruntime arenas)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def check_case(label, architecture, params, args, folder, torch_cuda, ort_cuda):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 32, 3)).astype(np.float32)
    y = X[:, -8:, 0].sum(axis=1)
    row = {"case": label, "problems": []}
    device = "cuda" if torch_cuda else "cpu"
    model = LSTMRegressor(
        architecture, hidden_size=32, epochs=args.epochs, device=device, random_state=0, **params
    ).fit(X, y)
    path = export(model, folder / f"{architecture}-{len(os.listdir(folder))}.onnx")
    expected = model.predict(X)
    scale = float(np.std(expected)) or 1.0
    cpu_file = runtime.load(path)
    unsupported = cuda_incompatibilities(onnx.load(str(path)))
    row["CUDA would ignore"] = ", ".join(unsupported) or "-"
    served = cpu_file
    if ort_cuda:
        if unsupported:
            try:
                runtime.load(path, providers="cuda")
                row["cuda"] = "loaded"
                row["problems"].append("loaded on CUDA although CUDA would compute it wrongly")
            except ValueError:
                row["cuda"] = "refused"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                served = runtime.load(path, providers="cuda", allow_cpu_fallback=True)
            if not caught:
                row["problems"].append("CPU fallback gave no warning")
            row["cuda"] += " (CPU fallback ok)"
        else:
            served = runtime.load(path, providers="cuda")
            row["cuda"] = "runs"
        diff = float(np.max(np.abs(served.predict(X) - expected))) / scale
        row["max diff / std"] = f"{diff:.1e}"
        if diff > args.rtol:
            row["problems"].append(f"served output differs by {diff:.1e} of its std")
    for batch in (1, 1024):
        Xb = np.ascontiguousarray(np.resize(X, (batch, 32, 3)))
        row[f"est cpu b{batch}"] = median_ms(
            lambda Xb=Xb: _predict_on(model, Xb, "cpu"), args.repeats
        )
        if torch_cuda:
            row[f"est cuda b{batch}"] = median_ms(
                lambda Xb=Xb: _predict_on(model, Xb, "cuda"), args.repeats
            )
        row[f"ort cpu b{batch}"] = median_ms(lambda Xb=Xb: cpu_file.predict(Xb), args.repeats)
        if ort_cuda and served is not cpu_file and row.get("cuda") == "runs":
            row[f"ort cuda b{batch}"] = median_ms(lambda Xb=Xb: served.predict(Xb), args.repeats)
    return row


def _predict_on(model: LSTMRegressor, X: np.ndarray, device: str) -> np.ndarray:
    """``predict`` with the network on ``device`` (moved once, kept there)."""
    target = torch.device(device)
    if model.device_ != target:
        model.module_.to(target)
        model.device_ = target
    return model.predict(X)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument(
        "--cpu", action="store_true", help="run every step on the CPU (tests this script)"
    )
    args = parser.parse_args()
    torch_cuda = torch.cuda.is_available() and not args.cpu
    ort_cuda = "CUDAExecutionProvider" in ort.get_available_providers() and not args.cpu
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    gpu = f"yes: {torch.cuda.get_device_name(0)}" if torch_cuda else "no"
    print(
        f"torch {torch.__version__} (CUDA {gpu}), "
        f"onnxruntime {ort.__version__} (providers {ort.get_available_providers()}); "
        f"load average {load}"
    )
    if not torch_cuda and not ort_cuda and not args.cpu:
        print(
            "no CUDA here: torch.cuda.is_available() is False and onnxruntime has no "
            "CUDAExecutionProvider (install onnxruntime-gpu instead of onnxruntime); nothing "
            "to check on a GPU"
        )
        return 0
    if not ort_cuda:
        print("onnxruntime has no CUDAExecutionProvider: only the estimator runs on CUDA")
    if not torch_cuda:
        print("torch has no CUDA: fits on the CPU, the files are served on CUDA")
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, architecture, params in CASES:
            rows.append(
                check_case(label, architecture, params, args, Path(tmp), torch_cuda, ort_cuda)
            )
            print(f"  {label}: done", file=sys.stderr)
    columns: list[str] = []  # every key of every row, in first-seen order
    for row in rows:
        columns += [c for c in row if c not in columns and c not in ("case", "problems")]
    print("\n| case | " + " | ".join(columns) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    for row in rows:
        cells = [
            f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "-"))
            for c in columns
        ]
        print(f"| {row['case']} | " + " | ".join(cells) + " |")
    print("\ntimes: median milliseconds per predict call")
    problems = [(row["case"], p) for row in rows for p in row["problems"]]
    for case, problem in problems:
        print(f"FAILED {case}: {problem}")
    print("all checks passed" if not problems else f"{len(problems)} check(s) failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
