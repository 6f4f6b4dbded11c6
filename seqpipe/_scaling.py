"""Per-feature standardization statistics, in float64, over the rows they may see.

``fit`` computes them on the training rows only (the validation split is held
out first), and applies them in float64 before anything is cast to the network's
float32: a series at 1e7 with unit spread keeps its precision.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from seqpipe._chunks import row_slices


def feature_stats(
    X: np.ndarray,
    sample_weight: np.ndarray | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
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
    transform : callable or None, default=None
        Applied to each chunk of samples before it is counted (the estimators'
        window-local scaling), so the statistics describe the transformed data
        without a transformed copy of all of it.

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
    chunks = row_slices(X.shape)
    if len(chunks) == 1:
        return _one_pass(X if transform is None else transform(X), sample_weight)
    return _two_passes(X, sample_weight, transform, chunks)


def _one_pass(X: np.ndarray, sample_weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
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
    return mean, _nonzero(scale, mean)


def _two_passes(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    chunks: list[slice],
) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean, then the weighted mean square deviation from it, summed
    chunk by chunk (two passes: as accurate as the one-pass formula, unlike
    accumulating sums of squares)."""
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)

    def rows(chunk: slice) -> tuple[np.ndarray, np.ndarray]:
        part = X[chunk] if transform is None else transform(X[chunk])
        flat = part.reshape(-1, part.shape[-1]).astype(np.float64, copy=False)
        steps = len(flat) // len(part)
        w = np.ones(len(flat)) if weights is None else np.repeat(weights[chunk], steps)
        keep = ~np.isnan(flat).all(axis=1) & (w > 0)
        return flat[keep], w[keep]

    total = np.zeros(X.shape[-1])
    weight = 0.0
    for chunk in chunks:
        flat, w = rows(chunk)
        total += w @ flat
        weight += w.sum()
    mean = total / weight
    squares = np.zeros(X.shape[-1])
    for chunk in chunks:
        flat, w = rows(chunk)
        squares += w @ np.square(flat - mean)
    return mean, _nonzero(np.sqrt(squares / weight), mean)


def _nonzero(scale: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``scale`` with 1 where it is zero relative to the mean's magnitude."""
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1)] = 1.0
    return scale
