"""Per-feature standardization statistics, in float64, over the rows they may see.

``fit`` computes them on the training rows only (the validation split is held
out first), and applies them in float64 before anything is cast to the network's
float32: a series at 1e7 with unit spread keeps its precision.
"""

from __future__ import annotations

import numpy as np


def feature_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale over samples (and steps), ignoring NaN padding.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or (n_samples, n_timesteps, n_features)
        Values; rows (steps) that are entirely NaN are padding and ignored.

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
    flat = flat[~np.isnan(flat).all(axis=1)]
    mean = flat.mean(axis=0)
    scale = flat.std(axis=0)
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1)] = 1.0
    return mean, scale
