"""Turn what users pass as sequence data into one padded float array plus lengths.

Accepted: a 3-D array ``(n_samples, n_timesteps, n_features)``; a 2-D array
``(n_samples, n_timesteps)`` (one feature); a list of per-sequence arrays of shape
``(T_i, n_features)`` or ``(T_i,)`` of different lengths; pandas objects. A 3-D
array may be NaN-padded at the end of the time axis (steps where *every* feature is
NaN); NaN anywhere else, and inf anywhere, is an error. Sparse matrices are a
TypeError, recognised in :mod:`seqpipe._sequence_rules` without importing scipy.
A long-format DataFrame (row MultiIndex (instance, time), one column per feature) is
read per instance (:mod:`seqpipe._frames`), and its columns are the feature names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import _check_feature_names

from seqpipe._chunks import row_slices
from seqpipe._frames import is_long_frame
from seqpipe._sequence_rules import check_fits, validate_sequences


def check_sequences(
    X: Any,
    *,
    dtype: type = np.float64,
    n_features: int | None = None,
    shortest_fit: int | None = None,
    in_chunks: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate sequence input and return ``(X3d, lengths)``.

    The rule and its messages live in :mod:`seqpipe._sequence_rules`, shared with
    :mod:`seqpipe.preprocessing` and :mod:`seqpipe.runtime`, so a bad input reads the
    same wherever it is passed.

    Parameters
    ----------
    X : array-like, list of array-like, or pandas object
        Sequence data.
    dtype : type, default=np.float64
        Float dtype of ``X3d``. The estimators standardize in float64 and cast to
        the network's float32 afterwards, so an offset like 1e7 loses nothing;
        values float32 cannot hold at all are refused as if cast.
    n_features : int, default=None
        Features the fitted estimator expects; a 2-D ``X`` (one feature) for an
        estimator with more gets the shared reshape message. A 3-D width mismatch
        is left to the caller, whose message names the estimator.
    shortest_fit : int, default=None
        Fewest time steps of a sequence the estimator was fitted on; a 2-D
        ``(n, 1)`` X then gets the shared single-window warning.
    in_chunks : bool, default=False
        Check a float32/float64 array larger than one chunk
        (:data:`seqpipe._chunks.CHUNK_BYTES`) chunk by chunk and return it as it
        is, in its own float dtype (a view, for windows from ``make_windows``),
        instead of converting a copy: the caller converts what it reads, one chunk
        or batch at a time.

    Returns
    -------
    X3d : ndarray of shape (n_samples, n_timesteps, n_features)
        ``X`` as ``dtype`` with padding still NaN (with ``in_chunks``, a large
        float array keeps its own float dtype).
    lengths : ndarray of int64 or None
        Each sequence's valid length, or None when no sequence is padded.
    """
    batch = validate_sequences(
        X, dtype=dtype, n_features=n_features, shortest_fit=shortest_fit, in_chunks=in_chunks
    )
    data = batch.data
    if data.dtype.itemsize > 4:
        # Per chunk: a strided view (make_windows) is never copied whole.
        for rows in row_slices(data.shape):
            check_fits(data[rows], np.float32, first_sample=rows.start)
    return data, batch.lengths


def check_feature_names(estimator: Any, X: Any, *, reset: bool) -> None:
    """Set (``reset``) or check ``estimator.feature_names_in_`` the scikit-learn way.

    Only a long-format frame names features: its columns are the features. The
    columns of a 2-D frame are time steps, whose number may change between fit and
    predict, so arrays, lists and 2-D frames count as input without feature names.
    scikit-learn's own check runs on that, with its messages: a ``ValueError``
    listing unseen and missing names (or a changed order) at predict, and its
    warnings when only one of fit and predict had names.

    Parameters
    ----------
    estimator : estimator
        Gets ``feature_names_in_`` (reset) or has it checked.
    X : object
        The input as the user passed it.
    reset : bool
        True in ``fit``: set the names, or delete names of an earlier fit.
    """
    _check_feature_names(estimator, X if is_long_frame(X) else None, reset=reset)


def check_finite_targets(y: np.ndarray, valid_steps: np.ndarray | None = None) -> None:
    """Raise if ``y`` has NaN/inf, ignoring padded steps of per-step targets."""
    values = y if valid_steps is None else y[valid_steps]
    if not np.isfinite(values).all():
        kind = "NaN" if np.isnan(values).any() else "infinity"
        raise ValueError(f"y contains {kind}; targets must be finite")


def step_mask(lengths: np.ndarray | None, n_samples: int, n_steps: int) -> np.ndarray:
    """Boolean ``(n_samples, n_steps)``: True at each sequence's valid steps."""
    if lengths is None:
        return np.ones((n_samples, n_steps), dtype=bool)
    return np.arange(n_steps)[None, :] < lengths[:, None]
