"""Walk a fitted model into an export plan: input steps, estimator, target inverse.

Supported shapes: a seqpipe estimator; a ``Pipeline`` whose last step is one and
whose other steps are per-feature scalers; a ``TransformedTargetRegressor``
around either. Per-feature scalers become ``(x - center) / scale`` steps;
``MinMaxScaler(clip=True)`` adds a clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import TransformedTargetRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.validation import check_is_fitted

from seqpipe.architectures.spec import UnsupportedModelError
from seqpipe.classifier import LSTMClassifier
from seqpipe.regressor import LSTMRegressor
from seqpipe.transformer import LSTMTransformer

ESTIMATORS = (LSTMRegressor, LSTMClassifier, LSTMTransformer)

SUPPORTED_STEPS = (
    "seqpipe.preprocessing.SequenceScaler",
    "seqpipe.preprocessing.FeatureWiseTransformer wrapping StandardScaler, MinMaxScaler, "
    "RobustScaler or MaxAbsScaler",
    "'passthrough'",
)
#: numpy ufuncs a TransformedTargetRegressor may use as its inverse.
INVERSE_FUNCS = ("exp", "log", "expm1", "log1p", "sqrt", "square", "negative", "abs")
SUPPORTED_TARGET_TRANSFORMS = (
    "StandardScaler, MinMaxScaler, RobustScaler, MaxAbsScaler, or functions "
    f"(func/inverse_func or FunctionTransformer) with inverse numpy.{{{', '.join(INVERSE_FUNCS)}}}"
    " or None (identity), without kw_args"
)


@dataclass
class Affine:
    """Per-feature ``(x - center) / scale`` (float64 statistics)."""

    center: np.ndarray
    scale: np.ndarray

    def then(self, other: Affine) -> Affine:
        # ((x - c1)/s1 - c2)/s2 == (x - (c1 + c2*s1)) / (s1*s2)
        return Affine(self.center + other.center * self.scale, self.scale * other.scale)


@dataclass
class Clip:
    low: np.ndarray
    high: np.ndarray


@dataclass
class TargetInverse:
    """Elementwise ops applied to the float64 prediction, in order.

    Each op is ``("affine", Affine)`` (``y * scale + center``) or ``("func", name)``
    with ``name`` one of :data:`INVERSE_FUNCS`.
    """

    ops: list[tuple[str, Any]] = field(default_factory=list)
    #: TransformedTargetRegressor returns ``(n, 1)`` for a 2-D ``y`` with one column
    #: even though its regressor was trained (and predicts) 1-D.
    unsqueeze: bool = False


@dataclass
class ExportPlan:
    estimator: Any
    input_steps: list[Affine | Clip]
    target: TargetInverse | None
    description: str
    top: Any


def plan_export(model: Any) -> ExportPlan:
    """Decompose ``model`` or raise :class:`UnsupportedModelError` saying what is supported."""
    steps: list[Affine | Clip] = []
    names: list[str] = []
    target = None
    inner = model
    if isinstance(inner, TransformedTargetRegressor):
        check_is_fitted(inner, "regressor_")
        target = _target_inverse(inner)
        inner = inner.regressor_
    if isinstance(inner, Pipeline):
        *head, (_, last) = inner.steps
        for name, step in head:
            steps.extend(input_step(name, step))
            if step not in (None, "passthrough"):
                names.append(type(step).__name__)
        inner = last
    if isinstance(inner, TransformedTargetRegressor) and target is None:
        check_is_fitted(inner, "regressor_")
        target = _target_inverse(inner)
        inner = inner.regressor_
    if not isinstance(inner, ESTIMATORS):
        raise UnsupportedModelError(
            f"cannot export {_describe(model)}: the final estimator must be one of "
            f"{', '.join(c.__name__ for c in ESTIMATORS)}, got {type(inner).__name__}. "
            "Supported shapes: estimator, Pipeline(steps..., estimator), "
            "TransformedTargetRegressor(regressor=either). A pipeline that goes on after an "
            "LSTMTransformer (e.g. with Ridge) converts with skl2onnx.to_onnx after "
            "seqpipe.onnx.register_skl2onnx_converters()"
        )
    check_is_fitted(inner, "module_")
    if target is not None and not isinstance(inner, LSTMRegressor):
        raise UnsupportedModelError("TransformedTargetRegressor must wrap an LSTMRegressor")
    check_finite_model(inner, _describe(model))
    return ExportPlan(inner, steps, target, _describe(model), model)


def check_finite_model(estimator: Any, description: str) -> None:
    """Refuse a network (or scaling) holding NaN or infinity: it predicts nothing useful.

    Verification cannot catch it: NaN in Python and NaN in onnxruntime agree.

    Raises
    ------
    ValueError
        Naming the first non-finite tensor.
    """
    tensors = [(f"module_.{k}", v) for k, v in estimator.module_.state_dict().items()]
    for name in ("x_mean_", "x_scale_", "y_mean_", "y_scale_"):
        if hasattr(estimator, name):
            tensors.append((name, getattr(estimator, name)))
    for name, value in tensors:
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(
                f"cannot export {description}: its {name} holds NaN or infinity, so the model "
                "predicts nothing useful (a training run that diverged). Refit it; fit now "
                "stops with NonFiniteLossError instead of leaving such a model"
            )


def _describe(model: Any) -> str:
    if isinstance(model, Pipeline):
        return f"Pipeline({', '.join(_describe(s) for _, s in model.steps)})"
    if isinstance(model, TransformedTargetRegressor):
        inner = getattr(model, "regressor_", model.regressor)
        return f"TransformedTargetRegressor({_describe(inner)})"
    if model in (None, "passthrough"):
        return "passthrough"
    return type(model).__name__


def input_step(name: str, step: Any) -> list[Affine | Clip]:
    from seqpipe.preprocessing import FeatureWiseTransformer, SequenceScaler

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return []
    if isinstance(step, SequenceScaler):
        check_is_fitted(step)
        n = step.n_features_in_
        center = step.mean_ if step.with_mean else np.zeros(n)
        scale = step.scale_ if step.with_std else np.ones(n)
        return [Affine(np.asarray(center, float), np.asarray(scale, float))]
    if isinstance(step, FeatureWiseTransformer):
        check_is_fitted(step)
        inner = _scaler_steps(step.transformer_, step.n_features_in_)
        if inner is not None:
            return inner
        what = f"FeatureWiseTransformer({type(step.transformer_).__name__})"
    else:
        what = type(step).__name__
    raise UnsupportedModelError(
        f"pipeline step {name!r} ({what}) cannot be exported to ONNX. Supported input "
        f"steps: {'; '.join(SUPPORTED_STEPS)}"
    )


def _scaler_steps(scaler: BaseEstimator, n: int) -> list[Affine | Clip] | None:
    """A fitted 2-D sklearn scaler as affine (and clip) steps, or None if unsupported."""
    ones, zeros = np.ones(n), np.zeros(n)

    def arr(value: Any, default: np.ndarray) -> np.ndarray:
        return default if value is None else np.asarray(value, dtype=np.float64)

    if isinstance(scaler, StandardScaler):
        # mean_ is fitted even with with_mean=False (the variance needs it): not applied.
        center = arr(scaler.mean_, zeros) if scaler.with_mean else zeros
        return [Affine(center, arr(scaler.scale_, ones) if scaler.with_std else ones)]
    if isinstance(scaler, RobustScaler):
        center = arr(scaler.center_, zeros) if scaler.with_centering else zeros
        return [Affine(center, arr(scaler.scale_, ones) if scaler.with_scaling else ones)]
    if isinstance(scaler, MaxAbsScaler):
        return [Affine(zeros, arr(scaler.scale_, ones))]
    if isinstance(scaler, MinMaxScaler):
        # sklearn: x * scale_ + min_
        scale = np.asarray(scaler.scale_, dtype=np.float64)
        steps: list[Affine | Clip] = [Affine(-scaler.min_ / scale, 1.0 / scale)]
        if scaler.clip:
            low, high = scaler.feature_range
            steps.append(Clip(np.full(n, low, float), np.full(n, high, float)))
        return steps
    return None


def _target_inverse(ttr: TransformedTargetRegressor) -> TargetInverse:
    transformer = ttr.transformer_
    inverse = TargetInverse(unsqueeze=getattr(ttr, "_training_dim", 1) == 2)
    if isinstance(transformer, FunctionTransformer):
        if transformer.inv_kw_args or transformer.kw_args:
            raise UnsupportedModelError(
                "TransformedTargetRegressor with kw_args/inv_kw_args cannot be exported; "
                f"supported target transforms: {SUPPORTED_TARGET_TRANSFORMS}"
            )
        func = transformer.inverse_func
        if func is None:
            return inverse
        name = getattr(func, "__name__", None)
        if isinstance(func, np.ufunc) and name in INVERSE_FUNCS:
            inverse.ops.append(("func", name))
            return inverse
        raise UnsupportedModelError(
            f"the target inverse function {func!r} cannot be written to ONNX; supported "
            f"target transforms: {SUPPORTED_TARGET_TRANSFORMS}"
        )
    steps = _scaler_steps(transformer, getattr(transformer, "n_features_in_", 1))
    if steps is None or any(isinstance(s, Clip) for s in steps):
        raise UnsupportedModelError(
            f"the target transformer {type(transformer).__name__} cannot be inverted in "
            f"ONNX; supported target transforms: {SUPPORTED_TARGET_TRANSFORMS}"
        )
    # Forward was (y - center) / scale, so the inverse is y * scale + center.
    inverse.ops.extend(("affine", step) for step in steps)
    return inverse
