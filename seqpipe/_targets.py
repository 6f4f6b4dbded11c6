"""Targets: shape rules, validation and scaling, the one place all three estimators use.

``fit`` validates ``y`` into :class:`Targets` (nothing scaled, nothing stored on
the estimator yet), holds out the validation rows, and only then standardizes the
targets with statistics of the training rows (:func:`standardize`).

* regression (``LSTMRegressor``, ``LSTMTransformer(task="regression")``):
  :func:`regression_targets`, or :func:`horizon_targets` for an encoder-decoder;
* classes (``LSTMClassifier``, ``LSTMTransformer(task="classification")``):
  :func:`class_targets`;
* next step (``LSTMTransformer(task="forecast")``): :func:`next_step_targets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, column_or_1d

from seqpipe._scaling import feature_stats
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


@dataclass(frozen=True)
class Targets:
    """Validated targets of one ``fit``, before any scaling.

    Attributes
    ----------
    values : ndarray
        Regression: float64 ``(n, k)``, or ``(n, n_timesteps, k)`` per step.
        Classes: int64 codes ``(n,)`` into ``classes``. Next step: the sequences
        themselves (see :func:`shift_one_step`).
    layout : TargetLayout
        How the values map onto network outputs.
    mask : ndarray of bool, shape (n, n_timesteps), or None
        Valid steps of per-step targets.
    task : {"regression", "classification", "forecast"}
        What the targets train the network to do.
    classes : ndarray or None
        The sorted class labels (classification only).
    """

    values: np.ndarray
    layout: TargetLayout
    mask: np.ndarray | None = None
    task: str = "regression"
    classes: np.ndarray | None = None


def regression_targets(y: object, X: np.ndarray, lengths: np.ndarray | None) -> Targets:
    """Regression ``y`` (1-D, 2-D or per step) as :class:`Targets` of rank 2 or 3."""
    y, layout, mask = check_regression_targets(y, X, lengths)
    return Targets(y.reshape(*y.shape[: 2 if layout.per_step else 1], -1), layout, mask)


def horizon_targets(y: object, X: np.ndarray) -> Targets:
    """Encoder-decoder ``y`` (``(n, horizon)`` or ``(n, horizon, k)``), flattened per sample."""
    y, layout = check_horizon_targets(y, X)
    return Targets(y, layout)


def class_targets(y: object, X: np.ndarray, owner: str) -> Targets:
    """Class labels (1-D, any label type) as int64 codes and the sorted classes.

    Raises
    ------
    ValueError
        Without ``y``, for continuous or multi-output ``y``, a length other than
        ``X``'s, or fewer than 2 classes; ``owner`` names the estimator.
    """
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    y = column_or_1d(y, warn=True)
    check_consistent_length(X, y)
    check_classification_targets(y)
    encoder = LabelEncoder().fit(y)
    classes = encoder.classes_
    if len(classes) < 2:
        raise ValueError(
            f"{owner} needs samples of at least 2 classes in the data; got 1 class ({classes[0]!r})"
        )
    codes = encoder.transform(y).astype(np.int64)
    return Targets(codes, TargetLayout("classes", len(classes)), None, "classification", classes)


def next_step_targets(X: np.ndarray, lengths: np.ndarray | None) -> Targets:
    """Self-supervised targets: at each step, the next step of the sequence itself.

    The values are ``X``; the caller shifts its network inputs with
    :func:`shift_one_step`, so the targets are in the units the network reads
    (after every input scaling). The mask drops each sequence's last valid step,
    which has no next step.
    """
    n, t, n_features = X.shape
    if t < 2 or (lengths is not None and lengths.min() < 2):
        raise ValueError(
            "task='forecast' learns to predict each next step, so every sequence needs "
            "at least 2 time steps"
        )
    valid = step_mask(None if lengths is None else lengths - 1, n, t)
    if lengths is None:
        valid[:, -1] = False
    return Targets(X, TargetLayout("per_step", n_features), valid, "forecast")


def shift_one_step(inputs: np.ndarray) -> np.ndarray:
    """``inputs`` one step earlier, the last step zero: step t's target is input t + 1."""
    return np.concatenate([inputs[:, 1:], np.zeros_like(inputs[:, :1])], axis=1)


def standardize(
    targets: Targets,
    n_train: int,
    *,
    enabled: bool = True,
    values: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regression targets standardized by the statistics of the first ``n_train`` rows.

    Parameters
    ----------
    targets : Targets
        Validated regression targets.
    n_train : int
        Rows used for training; the rest are the validation split and must not
        shape the statistics.
    enabled : bool, default=True
        False gives mean 0 and scale 1 (the values pass unchanged).
    values : ndarray or None, default=None
        The values to standardize instead of ``targets.values`` (the same shape,
        e.g. already in window-local units).
    sample_weight : ndarray of shape (n_samples,) or None, default=None
        Weights of all rows; the statistics are the weighted ones of the training
        rows (a sample's weight counts for each of its valid steps).

    Returns
    -------
    scaled : ndarray, float32
        ``(values - mean) / scale``, NaN (padded steps) as 0.
    mean, scale : ndarray of shape (n_outputs,), float64
    """
    values = targets.values if values is None else values
    layout, mask = targets.layout, targets.mask
    if enabled:
        train_mask = None if mask is None else mask[:n_train]
        weights = None if sample_weight is None else sample_weight[:n_train]
        if weights is not None and layout.per_step:
            # One weight per (sample, valid step): the rows as_matrix returns.
            steps = np.broadcast_to(weights[:, None], (n_train, values.shape[1]))
            weights = steps[train_mask] if train_mask is not None else steps.reshape(-1)
        mean, scale = feature_stats(as_matrix(values[:n_train], layout, train_mask), weights)
    else:
        mean, scale = np.zeros(layout.n_outputs), np.ones(layout.n_outputs)
    scaled = np.nan_to_num((values - mean) / scale).astype(np.float32)
    return scaled, mean, scale


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
