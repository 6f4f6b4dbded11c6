"""Regression targets: shape rules, validation and scaling shared by the estimators."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils.validation import check_consistent_length

from seqpipe._sequences import check_finite_targets, step_mask


@dataclass(frozen=True)
class TargetLayout:
    """How ``y`` maps onto network outputs.

    ``kind`` is "single" (1-D y), "vector" (2-D: several outputs or the next k
    steps), "per_step" (3-D ``(n, n_timesteps, k)``: one output per time step) or
    "horizon" (encoder-decoder: ``(n, horizon)`` or ``(n, horizon, k)``, produced
    flat by the network and reshaped to ``output_shape``).
    """

    kind: str
    n_outputs: int
    output_shape: tuple[int, ...] = ()

    @property
    def per_step(self) -> bool:
        return self.kind == "per_step"


def check_regression_targets(
    y: object, X: np.ndarray, lengths: np.ndarray | None
) -> tuple[np.ndarray, TargetLayout, np.ndarray | None]:
    """Validate ``y`` against ``X``; return float64 ``y``, its layout and step mask."""
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must be numeric for regression: {exc}") from None
    check_consistent_length(X, y)
    mask = None
    if y.ndim == 1:
        layout = TargetLayout("single", 1)
    elif y.ndim == 2:
        layout = TargetLayout("vector", y.shape[1])
    elif y.ndim == 3:
        if y.shape[1] != X.shape[1]:
            raise ValueError(
                f"3-D y (one output per time step) must have as many steps as X: y has "
                f"{y.shape[1]}, X has {X.shape[1]}. For the next {y.shape[1]} steps of "
                f"{y.shape[2]} series use head='seq2seq' (y of shape (n, horizon, "
                "n_series)), or y.reshape(len(y), -1) for the dense head"
            )
        layout = TargetLayout("per_step", y.shape[2])
        mask = step_mask(lengths, X.shape[0], X.shape[1])
    else:
        raise ValueError(
            f"y has {y.ndim} dimensions; expected (n_samples,), (n_samples, n_outputs) or "
            "(n_samples, n_timesteps, n_outputs)"
        )
    if layout.n_outputs == 0:
        raise ValueError(f"y has shape {y.shape}: at least one output is required")
    check_finite_targets(y, mask if lengths is not None else None)
    return y, layout, mask


def check_horizon_targets(y: object, X: np.ndarray) -> tuple[np.ndarray, TargetLayout]:
    """Targets of an encoder-decoder: ``(n, horizon)`` or ``(n, horizon, k)``."""
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y, dtype=np.float64)
    check_consistent_length(X, y)
    if y.ndim not in (2, 3):
        raise ValueError(
            f"head='seq2seq' needs y of shape (n_samples, horizon) or (n_samples, horizon, "
            f"n_targets); got {y.ndim}-D y of shape {y.shape}"
        )
    check_finite_targets(y)
    n_outputs = int(np.prod(y.shape[1:]))
    return y.reshape(len(y), n_outputs), TargetLayout("horizon", n_outputs, y.shape[1:])


def as_matrix(y: np.ndarray, layout: TargetLayout, mask: np.ndarray | None) -> np.ndarray:
    """The valid target rows as ``(n_rows, n_outputs)`` (for scaling statistics)."""
    if layout.per_step:
        return y[mask] if mask is not None else y.reshape(-1, layout.n_outputs)
    return y.reshape(len(y), layout.n_outputs)


def shape_predictions(
    raw: np.ndarray, layout: TargetLayout, lengths: np.ndarray | None
) -> np.ndarray:
    """Network output -> the shape ``y`` had at fit; padded steps become NaN."""
    if layout.kind == "single":
        return raw[:, 0]
    if layout.kind == "horizon":
        return raw.reshape(len(raw), *layout.output_shape)
    if layout.per_step and lengths is not None:
        raw = raw.copy()
        raw[~step_mask(lengths, raw.shape[0], raw.shape[1])] = np.nan
    return raw
