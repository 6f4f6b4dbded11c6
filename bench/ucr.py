"""UCR/UEA sets: default LSTM-family classifiers and regressors vs 1-NN, Ridge and LSTM-FCN.

The brief's accuracy target: *with only ``architecture`` chosen*, beat 1-nearest-
neighbour Euclidean on every set in ``../shared/data/ucr/`` and come within 3 points
of the published LSTM-FCN figures. So each model here is exactly
``LSTMClassifier(architecture=name, random_state=seed)`` (or ``LSTMRegressor``):
every other parameter at its default, no tuning, no validation split. Side by side,
in the same run:

* **1-NN Euclidean**, computed here, ragged sets zero-padded to the longest series
  (as ``../shared/data/README.md`` did; it reproduces 0.800, 0.521, 0.540, 0.730,
  0.640);
* **LSTM-FCN as published** where the authors report the set: Karim, Majumdar,
  Darabi & Chen, "LSTM Fully Convolutional Networks for Time Series
  Classification", IEEE Access 6:1662-1669 (2018; arXiv:1709.05206), the 85 sets of
  the 2015 UCR archive; figures as tabulated by the authors in their repository,
  github.com/titu1994/LSTM-FCN, ``Results/train_loss_old_datasets.csv`` (checkpoint
  at minimum training loss, as the repository's README labels them). ACSF1,
  PLAID and PickupGestureWiimoteZ joined the archive in 2018, after that paper; the
  follow-up, Karim, Majumdar & Darabi, "Insights into LSTM Fully Convolutional
  Networks for Time Series Classification", IEEE Access 7:67718-67725 (2019;
  arXiv:1902.10756), studies ablations and we found no per-set figure of it for
  these three, so they print "n/a";
* **FCN, 10-run mean**, from an independent re-implementation (Ismail Fawaz et al.
  2019, see ``FCN_TEN_RUN_MEAN``): what the convolutional branch alone averages over
  runs, where each published LSTM-FCN figure is a single run;
* for the regression sets (Tecator, Covid3Month): ``RidgeCV`` on the flattened
  series (alphas 1e-3..1e3), test RMSE.

Reported per set and architecture: accuracy (or RMSE) mean over seeds and its
spread (max - min), fit seconds and fit seconds per epoch (``n_epochs_``). Each fit
prints a line as it ends, with an estimate of the time left (from the seconds per
sample-step-epoch of the fits so far). Torch runs on one thread per process
(``--threads``); ``--jobs 2`` runs two fits at a time (two 1-thread processes are
steadier on a busy 2-core machine than one 2-thread process). Architectures that are
not registered (``lstm_fcn`` and ``mlstm_fcn`` before they are merged) are skipped
with a note.

Usage: ``python bench/ucr.py [--quick] [--seeds 3] [--architectures lstm gru]
[--sets ArrowHead OSULeaf] [--jobs 2] [--device cuda] [--data-dir ../shared/data/ucr]
[--params '{"batch_size": 32}'] [--precision 32 bf16-mixed]``. ``--params`` overrides
estimator parameters, to measure a setting against the defaults side by side.
``--precision 32 bf16-mixed`` fits every model in float32 and in bfloat16 mixed
precision, the two fits of a seed one after the other (with ``--jobs 2``, side by
side under the same load), each precision a row of the table.
``--quick`` is a smoke run: one seed, ``epochs=2`` (``--epochs``), numbers meaningless.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.linear_model import RidgeCV

import seqpipe
from seqpipe import LSTMClassifier, LSTMRegressor
from seqpipe._training import PRECISIONS
from seqpipe.datasets import load_ts

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data" / "ucr"
ARCHITECTURES = ("lstm", "gru", "lstm_fcn", "mlstm_fcn")

#: LSTM-FCN test accuracy, Karim et al. 2018 (IEEE Access 6:1662), as tabulated in
#: github.com/titu1994/LSTM-FCN Results/train_loss_old_datasets.csv. Sets absent here
#: are not in the paper's 2015 archive (see the module docstring).
LSTM_FCN_PUBLISHED = {"ArrowHead": 0.89714, "OSULeaf": 0.98347}

#: FCN (the conv branch of LSTM-FCN alone), mean test accuracy of 10 runs in an
#: independent re-implementation: Ismail Fawaz et al., "Deep learning for time series
#: classification: a review", Data Min. Knowl. Disc. 33:917-963 (2019; arXiv:1809.04356),
#: github.com/hfawaz/dl-4-tsc results/results-uea-avg-std.csv (ArrowHead 84.3 +- 1.5,
#: OSULeaf 97.7 +- 0.9). A mean over runs, where the LSTM-FCN figure is one run per set.
FCN_TEN_RUN_MEAN = {"ArrowHead": 0.843, "OSULeaf": 0.977}


@dataclass
class Split:
    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def work(self) -> float:
        """Sample-steps per epoch: what an epoch's time scales with."""
        return float(np.isfinite(self.X_train[:, :, 0]).sum())


def load_splits(data_dir: Path, only: list[str] | None) -> list[Split]:
    splits = []
    for train_path in sorted(data_dir.glob("*_TRAIN.ts")):
        name = train_path.name.removesuffix("_TRAIN.ts")
        if only and name not in only:
            continue
        train, test = load_ts(train_path), load_ts(data_dir / f"{name}_TEST.ts")
        splits.append(Split(name, train.task, train.data, train.target, test.data, test.target))
    # Smallest first: a user sees the whole pipeline work within the first minutes.
    return sorted(splits, key=lambda s: (s.task != "classification", s.work))


def zero_padded(*arrays: np.ndarray) -> list[np.ndarray]:
    """Flatten to (n, T*F), zero-padded to the longest series of all arrays."""
    longest = max(a.shape[1] for a in arrays)
    out = []
    for a in arrays:
        padded = np.zeros((a.shape[0], longest, a.shape[2]))
        padded[:, : a.shape[1]] = np.nan_to_num(a, nan=0.0)
        out.append(padded.reshape(len(a), -1))
    return out


def one_nn_accuracy(split: Split) -> float:
    train, test = zero_padded(split.X_train, split.X_test)
    # Squared Euclidean distances in one matrix product; ties go to the first sample.
    d = (test**2).sum(1)[:, None] - 2 * test @ train.T + (train**2).sum(1)[None, :]
    return float(np.mean(split.y_train[np.argmin(d, axis=1)] == split.y_test))


def ridge_rmse(split: Split) -> float:
    train, test = zero_padded(split.X_train, split.X_test)
    model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(train, split.y_train)
    return float(np.sqrt(np.mean((model.predict(test) - split.y_test) ** 2)))


def fit_one(
    split: Split,
    architecture: str,
    seed: int,
    epochs: int | None,
    threads: int,
    precision: str = "32",
    overrides: dict[str, Any] | None = None,
    device: str = "cpu",
) -> dict:
    """One fit at the defaults (``epochs`` only for ``--quick``, ``precision`` from
    ``--precision``, ``overrides`` from ``--params`` to measure another setting side
    by side); returns its figures."""
    torch.set_num_threads(threads)  # again: a worker process starts with torch's default
    params: dict[str, Any] = {"torch_num_threads": threads, "device": device, **(overrides or {})}
    if precision != "32":
        params["precision"] = precision
    params["architecture"] = architecture
    params["random_state"] = seed
    if epochs is not None:
        params["epochs"] = epochs
    estimator = (LSTMClassifier if split.task == "classification" else LSTMRegressor)(**params)
    started = time.perf_counter()
    try:
        estimator.fit(split.X_train, split.y_train)
    except Exception as exc:  # one broken architecture must not end a 20-minute run
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
    seconds = time.perf_counter() - started
    predicted = estimator.predict(split.X_test)
    if split.task == "classification":
        score = float(np.mean(predicted == split.y_test))
    else:
        score = float(np.sqrt(np.mean((predicted - split.y_test) ** 2)))
    return {"score": score, "seconds": seconds, "epochs": int(estimator.n_epochs_)}


#: One fit: the set, the architecture, the seed and the ``precision``.
Job = tuple[Split, str, int, str]


def row_name(architecture: str, precision: str) -> str:
    """The table's name of a fit: the architecture, and its precision unless float32."""
    return architecture if precision == "32" else f"{architecture}, {precision}"


class Progress:
    """Prints each finished fit and the estimated time left."""

    def __init__(self, jobs: list[Job], parallel: int, epochs: int) -> None:
        self.remaining = {id(job): job for job in jobs}
        self.total, self.done, self.parallel, self.epochs = len(jobs), 0, parallel, epochs
        self.rate: dict[str, list[float]] = defaultdict(list)  # s per sample-step-epoch
        self.started = time.perf_counter()

    def report(self, job: Job, result: dict) -> None:
        split, architecture, seed, precision = job
        del self.remaining[id(job)]
        self.done += 1
        name = row_name(architecture, precision)
        head = f"[{self.done:3d}/{self.total}] {split.name} {name} seed {seed}:"
        if "error" in result:
            print(f"{head} FAILED {result['error']}", flush=True)
            return
        self.rate[name].append(result["seconds"] / (split.work * result["epochs"]))
        metric = "accuracy" if split.task == "classification" else "RMSE"
        elapsed = time.perf_counter() - self.started
        print(
            f"{head} {metric} {result['score']:.3f}, fit {result['seconds']:.1f} s "
            f"({result['epochs']} epochs, {result['seconds'] / result['epochs']:.2f} s/epoch); "
            f"elapsed {elapsed / 60:.1f} min, about {self.left() / 60:.1f} min left",
            flush=True,
        )

    def left(self) -> float:
        every = [r for rates in self.rate.values() for r in rates]
        seconds = 0.0
        for split, architecture, _, precision in self.remaining.values():
            rates = self.rate.get(row_name(architecture, precision)) or every
            seconds += float(np.mean(rates)) * split.work * self.epochs if rates else 0.0
        return seconds / self.parallel


def fit_arguments(job: Job, args: argparse.Namespace) -> tuple:
    split, architecture, seed, precision = job
    epochs, threads, params, device = args.epochs, args.threads, args.params, args.device
    return (split, architecture, seed, epochs, threads, precision, params, device)


def run_fits(jobs: list[Job], args: argparse.Namespace) -> dict[tuple[str, str, str], list[dict]]:
    results: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    # Without --epochs every fit runs the estimator's default number of epochs (no
    # validation split, so no early stop): the estimate of the time left assumes it.
    default_epochs = LSTMClassifier().epochs
    progress = Progress(jobs, args.jobs, args.epochs or default_epochs)
    if args.jobs == 1:
        for job in jobs:
            result = fit_one(*fit_arguments(job, args))
            progress.report(job, result)
            results[job[0].name, job[1], job[3]].append(result)
        return results
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [(job, pool.submit(fit_one, *fit_arguments(job, args))) for job in jobs]
        for job, future in futures:  # in submission order: the order of the table
            result = future.result()
            progress.report(job, result)
            results[job[0].name, job[1], job[3]].append(result)
    return results


def fcn_mean(name: str) -> str:
    value = FCN_TEN_RUN_MEAN.get(name)
    return "n/a" if value is None else f"{value:.3f}"


def summary(results: list[dict]) -> tuple[str, str, str, str, str]:
    if not results or any("error" in r for r in results):
        return ("failed",) * 5
    scores = np.array([r["score"] for r in results])
    seconds = np.array([r["seconds"] for r in results])
    per_epoch = np.array([r["seconds"] / r["epochs"] for r in results])
    epochs = sorted({r["epochs"] for r in results})
    return (
        f"{scores.mean():.3f}",
        f"{np.ptp(scores):.3f}",
        f"{seconds.mean():.1f}",
        f"{per_epoch.mean():.2f}",
        "/".join(map(str, epochs)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 2 epochs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--sets", nargs="+", help="only these sets, e.g. ArrowHead Tecator")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument(
        "--device",
        default="cpu",
        help="the estimators' device, e.g. cuda (on 2 CPU cores the whole run takes "
        "hours, see the README)",
    )
    parser.add_argument(
        "--params",
        type=json.loads,
        default=None,
        help="estimator parameters to override, as JSON, e.g. '{\"batch_size\": 32}' "
        "(to measure a setting against the defaults; the table then is not the defaults')",
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["32"],
        choices=sorted(PRECISIONS),
        help="the estimators' precision; two values fit every model both ways, one "
        "after the other (side by side with --jobs 2), each a row of the table",
    )
    parser.add_argument("--jobs", type=int, default=1, help="fits run at once (processes)")
    parser.add_argument("--epochs", type=int, help="override epochs (default: 2 with --quick)")
    args = parser.parse_args()
    if args.params and "precision" in args.params:
        parser.error("set precision with --precision (it labels the rows), not --params")
    if args.quick:
        args.seeds = 1
        args.epochs = args.epochs or 2
    torch.set_num_threads(args.threads)

    known = set(seqpipe.list_architectures())
    architectures = [a for a in args.architectures if a in known]
    splits = load_splits(args.data_dir, args.sets)
    if not splits:
        raise SystemExit(f"no *_TRAIN.ts files (or none of {args.sets}) in {args.data_dir}")

    label = " QUICK SMOKE RUN: numbers meaningless, not the figures" if args.quick else ""
    setting = (
        "custom settings, not the documented run"
        if args.seeds != 3
        or args.epochs is not None
        or args.sets
        or args.params
        or args.precision != ["32"]
        else "full run"
    )
    print(
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; seqpipe {seqpipe.__version__}, torch "
        f"{torch.__version__} ({args.threads} thread(s) x {args.jobs} job(s), device "
        f"{args.device}), scikit-learn "
        f"{sklearn.__version__}, numpy {np.__version__}, Python {platform.python_version()}; "
        f"{os.cpu_count()} CPUs, load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(
        f"{args.seeds} seed(s), epochs {args.epochs or 'default'}; "
        f"parameters {args.params or 'default'}; precision {'/'.join(args.precision)}; "
        f"architectures {architectures}{label}"
    )
    for name in args.architectures:
        if name not in known:
            print(f"note: architecture {name!r} is not registered here; skipped")
    print()

    baseline = {}
    for split in splits:
        value = one_nn_accuracy(split) if split.task == "classification" else ridge_rmse(split)
        baseline[split.name] = value
        what = "1-NN Euclidean accuracy" if split.task == "classification" else "RidgeCV RMSE"
        print(
            f"{split.name}: train {split.X_train.shape}, test {split.X_test.shape}; "
            f"{what} {value:.3f}"
        )
    print()

    # The precisions of one seed one after the other: with --jobs 2 they run side by
    # side, under the same load.
    jobs: list[Job] = [
        (s, a, seed, p)
        for s in splits
        for a in architectures
        for seed in range(args.seeds)
        for p in args.precision
    ]
    started = time.perf_counter()
    results = run_fits(jobs, args)
    elapsed = time.perf_counter() - started
    variants = [(a, p) for a in architectures for p in args.precision]

    print(f"\n### Classification: test accuracy, {args.seeds} seed(s){label}\n")
    print(
        "| set | architecture | accuracy (mean) | spread (max-min) | fit s | s/epoch | epochs | "
        "1-NN Euclidean | beats 1-NN | LSTM-FCN published | within 3 pts | "
        "FCN 10-run mean |"
    )
    print("|" + " --- |" * 12)
    for split in (s for s in splits if s.task == "classification"):
        published = LSTM_FCN_PUBLISHED.get(split.name)
        for architecture, precision in variants:
            mean, spread, seconds, per_epoch, epochs = summary(
                results[split.name, architecture, precision]
            )
            ok = mean != "failed"
            beats = ("yes" if float(mean) > baseline[split.name] else "no") if ok else "-"
            close = (
                "n/a"
                if published is None or not ok
                else ("yes" if float(mean) >= published - 0.03 else "no")
            )
            print(
                f"| {split.name} | {row_name(architecture, precision)} | {mean} | {spread} | "
                f"{seconds} | {per_epoch} "
                f"| {epochs} | {baseline[split.name]:.3f} | {beats} | "
                f"{'n/a' if published is None else f'{published:.3f}'} | {close} | "
                f"{fcn_mean(split.name)} |"
            )

    regression = [s for s in splits if s.task == "regression"]
    if regression:
        print(f"\n### Regression: test RMSE, {args.seeds} seed(s){label}\n")
        print("| set | model | RMSE (mean) | spread (max-min) | fit s | s/epoch | epochs |")
        print("|" + " --- |" * 7)
        for split in regression:
            print(
                f"| {split.name} | RidgeCV (flattened) | {baseline[split.name]:.3f} "
                "| - | - | - | - |"
            )
            for architecture, precision in variants:
                mean, spread, seconds, per_epoch, epochs = summary(
                    results[split.name, architecture, precision]
                )
                print(
                    f"| {split.name} | {row_name(architecture, precision)} | {mean} | {spread} | "
                    f"{seconds} | "
                    f"{per_epoch} | {epochs} |"
                )
    print(
        "\nLSTM-FCN published: Karim et al. 2018, IEEE Access 6:1662 (arXiv:1709.05206), via "
        "github.com/titu1994/LSTM-FCN Results/train_loss_old_datasets.csv; n/a: the set is "
        "not in the paper's 2015 archive and no figure was found in the 2019 follow-up "
        "(arXiv:1902.10756). FCN 10-run mean: Ismail Fawaz et al. 2019 (arXiv:1809.04356), "
        "github.com/hfawaz/dl-4-tsc results/results-uea-avg-std.csv."
    )
    print(f"\n({elapsed / 60:.1f} min of fits; {label.strip() or setting})")


if __name__ == "__main__":
    main()
