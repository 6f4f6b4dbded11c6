"""Parity check run by every export: onnxruntime against the Python object.

Inputs are drawn where the model was trained (each feature around its training
mean with its training spread, as the fitted scalers record them), at several
batch sizes and lengths (longer than typical training windows too), plus one
ragged NaN-padded batch. Values are compared with a tolerance relative to their
magnitude (``|a - b| <= rtol * max(1, |b|)``), NaN positions must agree, and
class labels must agree wherever the winning probability is not a near tie.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from seqpipe import _format as fmt
from seqpipe.onnx._steps import Affine, ExportPlan


class VerificationError(ValueError):
    """The exported graph does not reproduce the Python model's outputs."""


@dataclass(frozen=True)
class VerifySettings:
    batch_sizes: Sequence[int] = (1, 4, 16)
    lengths: Sequence[int] = (1, 9, 120)
    rtol: float = 1e-4
    seed: int = 0


def raw_input_scale(plan: ExportPlan) -> tuple[np.ndarray, np.ndarray]:
    """Center and spread, in raw input units, of what the network saw in training."""
    est = plan.estimator
    total = Affine(np.zeros(est.n_features_in_), np.ones(est.n_features_in_))
    for step in plan.input_steps:
        if isinstance(step, Affine):
            total = total.then(step)
    total = total.then(Affine(est.x_mean_.astype(float), est.x_scale_.astype(float)))
    return total.center, total.scale


def bounded_lengths(plan: ExportPlan, lengths: Sequence[int]) -> tuple[int, ...]:
    """``lengths`` capped at the body's ``max_timesteps``, where it has one.

    A body that needs a fixed length (``lstm_fcn``'s dimension shuffle) refuses
    longer sequences by design, so verification checks up to that length.
    """
    bound = getattr(getattr(plan.estimator.module_, "body", None), "max_timesteps", None)
    if bound is None:
        return tuple(lengths)
    return tuple(dict.fromkeys(min(int(t), int(bound)) for t in lengths))


def make_inputs(
    plan: ExportPlan, settings: VerifySettings, dtype: Any = np.float32
) -> list[tuple[str, np.ndarray]]:
    """``(label, X)`` pairs of ``dtype`` (the file's input dtype): every batch size x
    length, then a ragged batch."""
    rng = np.random.default_rng(settings.seed)
    center, scale = raw_input_scale(plan)

    def draw(n: int, t: int) -> np.ndarray:
        z = rng.standard_normal((n, t, len(center)))
        return (center + scale * z).astype(dtype)

    cases = [
        (f"batch {n}, length {t}", draw(n, t))
        for n in settings.batch_sizes
        for t in settings.lengths
    ]
    longest = max(settings.lengths)
    ragged = draw(6, longest)
    lengths = np.array([longest, 1, longest // 2, 2, longest - 1, max(longest // 5, 1)])
    ragged[np.arange(longest)[None, :] >= lengths[:, None]] = np.nan
    cases.append((f"ragged batch, lengths {lengths.tolist()}", ragged))
    return cases


def _compare(name: str, got: np.ndarray, expected: np.ndarray, rtol: float) -> float:
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise VerificationError(
            f"ONNX output {name!r} has shape {got.shape}, the Python model's {expected.shape}"
        )
    if got.dtype.kind not in "fc":
        if not np.array_equal(got, expected):
            raise VerificationError(
                f"ONNX output {name!r} differs from Python: {got} vs {expected}"
            )
        return 0.0
    got, expected = got.astype(np.float64), expected.astype(np.float64)
    nan_got, nan_exp = np.isnan(got), np.isnan(expected)
    if not np.array_equal(nan_got, nan_exp):
        raise VerificationError(
            f"ONNX output {name!r} has NaN at {int(nan_got.sum())} positions, the Python model "
            f"at {int(nan_exp.sum())}"
        )
    diff = np.abs(np.where(nan_got, 0.0, got - expected))
    relative = diff / np.maximum(1.0, np.abs(np.nan_to_num(expected)))
    worst = float(relative.max(initial=0.0))
    if worst > rtol:
        raise VerificationError(
            f"ONNX output {name!r} differs from the Python model by up to {float(diff.max()):.3g} "
            f"(relative {worst:.3g}, tolerance {rtol:g})"
        )
    return float(diff.max(initial=0.0))


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """The Python side of the checks on one torch thread, restored afterwards.

    The check batches are tiny; with more threads torch's workers spin against each
    other, and on a busy machine that made an export take 15 s instead of 0.1 s.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _check_case(model: Any, runtime_model: Any, task: str, X: np.ndarray, rtol: float) -> float:
    if task == fmt.TASK_CLASSIFICATION:
        proba, expected = model.predict_proba(X), model.predict(X)
        got_proba, labels = _run(runtime_model.predict_proba, X), _run(runtime_model.predict, X)
        worst = _compare(fmt.OUTPUT_PROBA, got_proba, proba, rtol)
        top2 = np.sort(proba, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * rtol
        if labels.shape != expected.shape or not np.array_equal(labels[clear], expected[clear]):
            raise VerificationError(
                f"ONNX labels {labels[:5]!r}... differ from the Python model's {expected[:5]!r}..."
            )
        return worst
    if task == fmt.TASK_TRANSFORM:
        expected = model.transform(X)
        return _compare(fmt.OUTPUT_FEATURES, _run(runtime_model.transform, X), expected, rtol)
    expected = model.predict(X)
    return _compare(fmt.OUTPUT_REGRESSION, _run(runtime_model.predict, X), expected, rtol)


def _run(method: Any, X: np.ndarray) -> np.ndarray:
    try:
        return method(X)
    except Exception as exc:  # onnxruntime's own exception types
        raise VerificationError(f"onnxruntime failed to run the exported graph: {exc}") from None


def verify(plan: ExportPlan, runtime_model: Any, settings: VerifySettings) -> dict[str, Any]:
    """Run every case; returns a summary for the metadata or raises VerificationError."""
    settings = replace(settings, lengths=bounded_lengths(plan, settings.lengths))
    worst = 0.0
    with _one_torch_thread(), warnings.catch_warnings():
        # The checks feed arrays, which carry no feature names: a model fitted on a
        # long-format frame would warn about that, which says nothing about the file.
        warnings.filterwarnings("ignore", "X does not have valid feature names", UserWarning)
        for label, X in make_inputs(plan, settings, runtime_model.input_dtype):
            try:
                worst = max(
                    worst,
                    _check_case(plan.top, runtime_model, runtime_model.task, X, settings.rtol),
                )
            except VerificationError as exc:
                raise VerificationError(f"{exc} [{label}]") from None
        if runtime_model.streaming:
            worst = max(worst, _verify_streaming(plan, runtime_model, settings))
    return {
        "max_abs_diff": worst,
        "rtol": settings.rtol,
        "batch_sizes": list(settings.batch_sizes),
        "lengths": list(settings.lengths),
        "ragged": True,
        "streaming": runtime_model.streaming,
    }


def _verify_streaming(plan: ExportPlan, runtime_model: Any, settings: VerifySettings) -> float:
    """Step-by-step and chunked feeding must equal predicting the whole window."""
    [(_, X)] = make_inputs(
        plan,
        VerifySettings(batch_sizes=(3,), lengths=(7,), seed=settings.seed),
        runtime_model.input_dtype,
    )[:1]
    task = runtime_model.task
    stream = runtime_model.stream(batch_size=len(X))

    def comparable(returned: np.ndarray) -> np.ndarray:
        # Classifiers are compared on probabilities, as in the batch checks.
        return stream.outputs[fmt.OUTPUT_PROBA] if task == fmt.TASK_CLASSIFICATION else returned

    stepped = [comparable(_run(stream.step, X[:, t])) for t in range(X.shape[1])]
    stream.reset()
    chunks = [comparable(_run(stream.feed, X[:, :3])), comparable(_run(stream.feed, X[:, 3:]))]
    if task == fmt.TASK_CLASSIFICATION:
        expected = plan.top.predict_proba(X)
    elif task == fmt.TASK_TRANSFORM:
        expected = plan.top.transform(X)
    else:
        expected = plan.top.predict(X)
    if runtime_model.output_kind == "per_step":
        got = [np.stack(stepped, axis=1), np.concatenate(chunks, axis=1)]
    else:
        got = [stepped[-1], chunks[-1]]
    try:
        return max(_compare("streamed output", g, expected, settings.rtol) for g in got)
    except VerificationError as exc:
        raise VerificationError(f"{exc} [streaming 3 windows of 7 steps]") from None
