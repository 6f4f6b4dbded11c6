"""Input validation and provider selection for :mod:`seqpipe.runtime`.

numpy only (plus onnxruntime's provider list): this runs where torch, onnx and
scikit-learn are not installed. The sequence data rule and its messages come from
:mod:`seqpipe._sequence_rules`, the validator the estimators and transformers use
too, so a bad batch reads the same here as in the Python API.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqpipe._sequence_rules import check_padding, validate_sequences

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
_FLOAT32_MAX_SQUARED = float(np.finfo(np.float32).max) ** 2


def check_batch(
    X: Any, n_features: int, dtype: np.dtype = _FLOAT32, shortest_fit: int | None = None
) -> np.ndarray:
    """``X`` as a C-contiguous ``(n, T, n_features)`` array of ``dtype``, or a clear error.

    An array already in that form (what a service usually holds) costs a few
    attribute reads and one finiteness test; anything else goes through the shared
    validator.

    Parameters
    ----------
    X : array-like or list of array-like
        Sequences in any layout the estimators accept.
    n_features : int
        Features per time step the model expects.
    dtype : numpy dtype, default=float32
        The model's input dtype: float32, or float64 for files whose scaling needs
        it (see :func:`seqpipe.onnx.export`).
    shortest_fit : int, optional
        Fewest time steps of a sequence the model was fitted on: a 2-D ``(n, 1)``
        X then gets the shared single-window warning (see
        :func:`seqpipe._sequence_rules.validate_sequences`).

    Returns
    -------
    X : ndarray of shape (n_samples, n_timesteps, n_features)
        C-contiguous ``dtype``, padding still NaN.
    """
    if (
        type(X) is not np.ndarray
        or X.ndim != 3
        or X.dtype is not dtype
        or X.shape[2] != n_features
        or not X.flags.c_contiguous
        or 0 in X.shape
    ):
        if dtype is _FLOAT64:
            return _convert_float64(X, n_features, shortest_fit)
        return _convert(X, n_features, shortest_fit)
    # One BLAS dot product instead of isfinite().all() (a third of the cost on small
    # batches): a NaN or inf anywhere makes it non-finite, and so does overflow from
    # huge finite values, which check_padding then lets pass.
    if not math.isfinite(np.vdot(X, X)):
        check_padding(X)
    return X


def _convert(X: Any, n_features: int, shortest_fit: int | None) -> np.ndarray:
    """Everything but the fast path: full validation, then the model's width."""
    if (
        type(X) is np.ndarray
        and X.ndim == 3
        and X.dtype.kind in "fiub"
        and X.shape[2] == n_features
        and 0 not in X.shape
    ):
        # A numeric array of the right shape, typically float64 from JSON. When its sum
        # of squares is finite and below float32's largest value squared, every value
        # is finite and fits float32: cast it and skip the validator's fixed costs
        # (several times the cast for small batches), and np.errstate's too (a few
        # microseconds, a tenth of a batch-1 prediction).
        if X.dtype.kind != "f" or X.dtype.itemsize <= 4:
            squares = None  # ints and float16/32 never overflow float32
        else:
            squares = np.vdot(X, X)
            if math.isfinite(squares) and squares < _FLOAT32_MAX_SQUARED:
                return np.ascontiguousarray(X, dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            cast = np.ascontiguousarray(X, dtype=np.float32)
        if squares is None and math.isfinite(np.vdot(cast, cast)):
            return cast
        if not np.isinf(cast).any():
            # NaN only (padding, or a mistake): no overflow to tell apart, so the
            # validator would run this very check on this very array.
            check_padding(cast)
            return cast
    return _validated(X, n_features, shortest_fit, np.float32)


def _convert_float64(X: Any, n_features: int, shortest_fit: int | None) -> np.ndarray:
    """The slow path for float64 models: nothing can overflow, so only the validator."""
    return _validated(X, n_features, shortest_fit, np.float64)


def _validated(X: Any, n_features: int, shortest_fit: int | None, dtype: type) -> np.ndarray:
    """The shared validator's ``X`` in ``dtype``, of the model's width."""
    X = validate_sequences(X, dtype=dtype, n_features=n_features, shortest_fit=shortest_fit).data
    if X.shape[2] != n_features:
        raise ValueError(
            f"X has {X.shape[2]} features per time step, but this model expects {n_features}"
        )
    return np.ascontiguousarray(X)


def resolve_providers(providers: Any, available: Sequence[str]) -> list[Any]:
    """Turn ``None``/``"cpu"``/``"cuda"``/a list into onnxruntime's provider list."""
    if providers is None or (isinstance(providers, str) and providers.lower() == "cpu"):
        return [CPU]
    if isinstance(providers, str) and providers.lower() in ("cuda", "gpu"):
        providers = [CUDA, CPU]
    if isinstance(providers, str):
        providers = [providers]
    resolved = list(providers)
    for entry in resolved:
        name = entry[0] if isinstance(entry, tuple) else entry
        if name not in available:
            hint = " (install onnxruntime-gpu and a matching CUDA)" if name == CUDA else ""
            raise ValueError(
                f"execution provider {name!r} was requested but this onnxruntime offers only "
                f"{list(available)}{hint}; use providers='cpu'"
            )
    return resolved


def wants_cuda(providers: Sequence[Any]) -> bool:
    return any((p[0] if isinstance(p, tuple) else p) == CUDA for p in providers)
