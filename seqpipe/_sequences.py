"""Turn what users pass as sequence data into one padded float array plus lengths.

Accepted: a 3-D array ``(n_samples, n_timesteps, n_features)``; a 2-D array
``(n_samples, n_timesteps)`` (one feature); a list of per-sequence arrays of shape
``(T_i, n_features)`` or ``(T_i,)`` of different lengths; pandas objects. A 3-D
array may be NaN-padded at the end of the time axis (steps where *every* feature is
NaN); NaN anywhere else, and inf anywhere, is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

_SHAPES = (
    "expected a 3-D array (n_samples, n_timesteps, n_features), a 2-D array "
    "(n_samples, n_timesteps) for one feature, or a list of (n_timesteps, n_features) arrays"
)


def _to_float(array: Any, what: str, dtype: type) -> np.ndarray:
    if hasattr(array, "to_numpy"):  # pandas
        array = array.to_numpy()
    try:
        out = np.asarray(array)
        if out.dtype.kind == "c":
            raise ValueError(f"Complex data not supported: {what} must be real-valued")
        out = out.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        # Keep the exception type (scikit-learn expects TypeError for non-numeric objects).
        raise type(exc)(
            f"{what} must be numeric; could not convert it to {np.dtype(dtype).name}: {exc}"
        ) from None
    return out


def _is_ragged_list(X: Any) -> bool:
    if not isinstance(X, (list, tuple)) or not X:
        return False
    first = X[0]
    if not hasattr(first, "__len__") or isinstance(first, str):
        return False
    shapes = {np.shape(item) for item in X}
    return len(shapes) > 1


def _pad_ragged(X: Sequence[Any], dtype: type) -> np.ndarray:
    items = []
    for i, item in enumerate(X):
        arr = _to_float(item, f"X[{i}]", dtype)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(
                f"X[{i}] has {arr.ndim} dimensions; each sequence in a list must be "
                "(n_timesteps, n_features) or (n_timesteps,)"
            )
        items.append(arr)
    n_features = {a.shape[1] for a in items}
    if len(n_features) > 1:
        raise ValueError(
            f"sequences in X have different feature counts {sorted(n_features)}; "
            "every sequence must have the same number of features"
        )
    longest = max(a.shape[0] for a in items)
    out = np.full((len(items), longest, items[0].shape[1]), np.nan, dtype=dtype)
    for i, arr in enumerate(items):
        out[i, : arr.shape[0]] = arr
    return out


def check_sequences(X: Any, *, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate sequence input and return ``(X3d, lengths)``.

    ``X3d`` is ``(n, T, F)`` of ``dtype`` with padding still NaN; ``lengths`` is an int64
    array of each sequence's valid length, or ``None`` when no sequence is padded.
    """
    if sp.issparse(X):
        raise TypeError(
            "Sparse data was passed, but seqpipe estimators need dense sequence data; "
            "convert it with X.toarray()"
        )
    if X is None:
        raise ValueError(f"X is None; {_SHAPES}")
    X = _pad_ragged(X, dtype) if _is_ragged_list(X) else _to_float(X, "X", dtype)
    given_shape = X.shape
    if X.ndim == 2:
        X = X[:, :, None]
    elif X.ndim != 3:
        hint = (
            " Reshape your data: X.reshape(1, -1) if it is a single sequence."
            if X.ndim == 1
            else ""
        )
        raise ValueError(f"X has {X.ndim} dimension(s) with shape {X.shape}; {_SHAPES}.{hint}")
    n, t, f = X.shape
    if n == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if t == 0 or f == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={given_shape}) while a minimum of 1 is "
            "required: every sequence needs at least one time step and one feature."
        )
    return X, _lengths(X)


def _lengths(X: np.ndarray) -> np.ndarray | None:
    finite = np.isfinite(X)
    if finite.all():
        return None
    if np.isinf(X).any():
        sample, step, feature = np.argwhere(np.isinf(X))[0]
        raise ValueError(
            f"X contains infinity (sample {sample}, step {step}, feature {feature}); "
            "only finite values are allowed"
        )
    # A step is padding when every feature is NaN; a sequence's length ends after its
    # last step holding any data.
    has_data = finite.any(axis=2)
    t = X.shape[1]
    lengths = t - np.argmax(has_data[:, ::-1], axis=1)
    empty = ~has_data.any(axis=1)
    if empty.any():
        raise ValueError(
            f"X contains NaN everywhere in sample {int(np.flatnonzero(empty)[0])}: a sequence "
            "with no data cannot be used"
        )
    inside = ~finite & (np.arange(t)[None, :, None] < lengths[:, None, None])
    if inside.any():
        sample, step, feature = np.argwhere(inside)[0]
        raise ValueError(
            f"X contains NaN inside sample {sample} (step {step}, feature {feature}); NaN is "
            "only allowed as trailing padding of whole time steps. Fill gaps first, e.g. with "
            "interpolation"
        )
    return lengths.astype(np.int64) if (lengths < t).any() else None


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
