"""Per-feature standardization statistics, in float64, over the rows they may see.

``fit`` computes them on the training rows only (the validation split is held
out first), and applies them in float64 before anything is cast to the network's
float32: a series at 1e7 with unit spread keeps its precision.
"""

from __future__ import annotations

import numpy as np


def feature_stats(
    X: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale over samples (and steps), ignoring NaN padding.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or (n_samples, n_timesteps, n_features)
        Values; rows (steps) that are entirely NaN are padding and ignored.
    sample_weight : ndarray of shape (n_samples,) or None, default=None
        Non-negative weight of each sample, applied to all of its steps: the
        weighted mean and weighted population standard deviation, so a weight of 2
        gives the statistics of a duplicated sample and a weight of 0 those of the
        data without it.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,), float64
        ``scale`` is the population standard deviation, or 1 where that is zero
        (relative to the mean's magnitude), so nothing is divided by zero.

    Examples
    --------
    >>> import numpy as np
    >>> mean, scale = feature_stats(np.array([[[1e7 + 1.0], [1e7 - 1.0]], [[np.nan], [1e7]]]))
    >>> mean.tolist(), scale.round(6).tolist()
    ([10000000.0], [0.816497])
    """
    flat = X.reshape(-1, X.shape[-1]).astype(np.float64)
    keep = ~np.isnan(flat).all(axis=1)
    if sample_weight is None:
        flat = flat[keep]
        mean = flat.mean(axis=0)
        scale = flat.std(axis=0)
    else:
        # One weight per sample, repeated over its steps (rows of `flat`).
        weights = np.repeat(np.asarray(sample_weight, dtype=np.float64), len(flat) // len(X))
        keep &= weights > 0
        flat, weights = flat[keep], weights[keep]
        mean = np.average(flat, axis=0, weights=weights)
        scale = np.sqrt(np.average(np.square(flat - mean), axis=0, weights=weights))
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1)] = 1.0
    return mean, scale
