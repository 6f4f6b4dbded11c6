"""Window-local scaling: each sequence standardized by its own statistics (numpy only).

Real series drift: a model trained on the levels of the past sees levels it never saw.
Scaling each input window by its own mean and standard deviation (per feature, over
its valid steps) removes the level and the spread, and the forecast is made in those
units and mapped back with the same window's statistics. This is the instance
normalization of RevIN (Kim et al. 2022, "Reversible Instance Normalization for
Accurate Time-Series Forecasting Against Distribution Shift") and of neuralforecast's
local scalers.

The exporter writes the same arithmetic into the ONNX graph (float64, like here).
"""

from __future__ import annotations

import numpy as np

from seqpipe._chunks import row_slices

#: The values of the estimators' ``local_scaling`` parameter.
LOCAL_SCALINGS = ("standard",)


def window_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence, per-feature ``(center, scale)``, each ``(n_samples, n_features)`` float64.

    ``center`` is the mean over the sequence's valid steps (NaN padding is ignored),
    ``scale`` the population standard deviation; a constant sequence (standard
    deviation 0) is scaled by ``|center|``, or by 1 when that is 0 too, so nothing is
    divided by zero.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[[1.0], [3.0]], [[5.0], [np.nan]]])
    >>> center, scale = window_stats(X)
    >>> center.ravel().tolist(), scale.ravel().tolist()
    ([2.0, 5.0], [1.0, 5.0])
    """
    X = np.asarray(X)
    # Chunks of whole sequences: the same numbers, one chunk's float64 temporaries.
    parts = [_window_stats(X[rows]) for rows in row_slices(X.shape)]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([c for c, _ in parts]), np.concatenate([s for _, s in parts])


def _window_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    valid = ~np.isnan(X)
    counts = valid.sum(axis=1)
    zeroed = np.where(valid, X, 0.0)
    center = zeroed.sum(axis=1) / counts
    deviation = np.where(valid, X - center[:, None, :], 0.0)
    std = np.sqrt((deviation * deviation).sum(axis=1) / counts)
    fallback = np.where(np.abs(center) > 0, np.abs(center), 1.0)
    return center, np.where(std > 0, std, fallback)


def all_constant(X: np.ndarray) -> bool:
    """Whether every sequence is constant in every feature over its valid steps.

    One-step sequences are. Local scaling then maps every input to 0, so a model
    cannot tell such sequences apart.

    Examples
    --------
    >>> import numpy as np
    >>> all_constant(np.array([[[1.0], [1.0]], [[5.0], [np.nan]]]))
    True
    >>> all_constant(np.array([[[1.0], [2.0]], [[5.0], [np.nan]]]))
    False
    """
    X = np.asarray(X)
    for rows in row_slices(X.shape):
        chunk = np.asarray(X[rows], dtype=np.float64)
        if (np.nanmax(chunk, axis=1) > np.nanmin(chunk, axis=1)).any():
            return False
    return True


def scale_windows(X: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - center) / scale`` per sequence, float64; NaN padding stays NaN."""
    return (np.asarray(X, dtype=np.float64) - center[:, None, :]) / scale[:, None, :]


def target_features(n_features: int, per_step_targets: int) -> np.ndarray:
    """Which input feature each target column is measured in, for local target scaling.

    With one input feature every target is in its units (the next values of the
    series); with one target per input feature (parallel series) target ``j`` is in
    feature ``j``'s.

    Raises
    ------
    ValueError
        For any other combination: the target's units are ambiguous.
    """
    if n_features == 1:
        return np.zeros(per_step_targets, dtype=np.int64)
    if per_step_targets == n_features:
        return np.arange(n_features, dtype=np.int64)
    raise ValueError(
        f"local_scaling='standard' scales the target by the statistics of the input "
        f"feature it is measured in, but with {n_features} input features and "
        f"{per_step_targets} target(s) per step that is ambiguous. It is defined for one "
        "input feature (targets are future values of that series) or one target per input "
        "feature (parallel series); otherwise scale the target yourself (e.g. "
        "TransformedTargetRegressor) and use local_scaling=None"
    )
