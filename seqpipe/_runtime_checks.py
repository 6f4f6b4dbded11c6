"""Input validation and provider selection for :mod:`seqpipe.runtime`.

numpy only (plus onnxruntime's provider list): this runs where torch, onnx and
scikit-learn are not installed. The rules are those of the Python API: 3-D
``(n_samples, n_timesteps, n_features)``, or 2-D ``(n_samples, n_timesteps)``
for one feature, or a list of sequences of different lengths; NaN only as whole
trailing time steps (ragged batches); no inf.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

_EXPECTED = (
    "expected a 3-D array (n_samples, n_timesteps, n_features), a 2-D array "
    "(n_samples, n_timesteps) for one feature, or a list of (n_timesteps, n_features) arrays"
)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def check_batch(X: Any, n_features: int) -> np.ndarray:
    """``X`` as a C-contiguous float32 ``(n, T, n_features)`` array, or a clear error.

    A float32 C-contiguous 3-D array of the right width (what a service usually
    holds) costs a few attribute reads and one finiteness test; anything else goes
    through the full conversion and checks.
    """
    if (
        type(X) is not np.ndarray
        or X.ndim != 3
        or X.dtype is not _FLOAT32
        or X.shape[2] != n_features
        or not X.flags.c_contiguous
        or 0 in X.shape
    ):
        X = _convert(X, n_features)
    # One BLAS dot product instead of isfinite().all() (a third of the cost on small
    # batches): a NaN or inf anywhere makes it non-finite, and so does overflow from
    # huge finite values, which check_padding then lets pass.
    if not math.isfinite(np.vdot(X, X)):
        check_padding(X)
    return X


_FLOAT32 = np.dtype(np.float32)


def _convert(X: Any, n_features: int) -> np.ndarray:
    if not isinstance(X, np.ndarray):
        X = _to_array(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(
            f"X must hold numbers (float or int), got dtype {X.dtype}; convert it with "
            "X.astype(np.float32)"
        )
    if X.ndim == 2:
        if n_features != 1:
            raise ValueError(
                f"X is 2-D with shape {X.shape}, which means (n_samples, n_timesteps) with one "
                f"feature, but this model expects {n_features} features per time step: pass "
                f"(n_samples, n_timesteps, {n_features})"
            )
        X = X[:, :, None]
    elif X.ndim != 3:
        hint = " Reshape your data: X.reshape(1, -1) if it is one sequence." if X.ndim == 1 else ""
        raise ValueError(f"X has {X.ndim} dimension(s) with shape {X.shape}; {_EXPECTED}.{hint}")
    n, t, f = X.shape
    if f != n_features:
        raise ValueError(f"X has {f} features per time step, but this model expects {n_features}")
    if n == 0 or t == 0:
        raise ValueError(
            f"X has shape {X.shape}: at least 1 sequence with at least 1 time step is required"
        )
    # A float64 beyond float32's range becomes inf here (numpy warns), then is rejected.
    return np.ascontiguousarray(X, dtype=np.float32)


def _to_array(X: Any) -> np.ndarray:
    if hasattr(X, "to_numpy"):  # pandas
        return X.to_numpy()
    if isinstance(X, (list, tuple)) and X and hasattr(X[0], "__len__"):
        shapes = {np.shape(item) for item in X}
        if len(shapes) > 1:
            return _pad_ragged(X)
    try:
        return np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X could not be read as an array ({exc}); {_EXPECTED}") from None


def _pad_ragged(X: Sequence[Any]) -> np.ndarray:
    items = []
    for i, item in enumerate(X):
        arr = np.asarray(item)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"X[{i}] must hold numbers, got dtype {arr.dtype}")
        arr = arr[:, None] if arr.ndim == 1 else arr
        if arr.ndim != 2:
            raise ValueError(
                f"X[{i}] has shape {np.shape(item)}; each sequence in a list must be "
                "(n_timesteps, n_features) or (n_timesteps,)"
            )
        items.append(arr)
    widths = {a.shape[1] for a in items}
    if len(widths) > 1:
        raise ValueError(f"sequences in X have different feature counts {sorted(widths)}")
    if min(a.shape[0] for a in items) == 0:
        raise ValueError("a sequence in X has 0 time steps; each needs at least 1")
    out = np.full((len(items), max(a.shape[0] for a in items), widths.pop()), np.nan, np.float32)
    for i, arr in enumerate(items):
        out[i, : arr.shape[0]] = arr
    return out


def check_padding(X: np.ndarray) -> None:
    """Raise unless every non-finite value of ``X`` is NaN in whole trailing steps."""
    inf = np.isinf(X)
    if inf.any():
        i, t, f = np.argwhere(inf)[0]
        raise ValueError(
            f"X contains infinity (sample {i}, step {t}, feature {f}); only finite values are "
            "allowed (a float64 value beyond float32's range also becomes infinity)"
        )
    nan = np.isnan(X)
    padding = nan.all(axis=2)
    partial = nan.any(axis=2) & ~padding
    if partial.any():
        i, t = np.argwhere(partial)[0]
        raise ValueError(
            f"X contains NaN in only some features of sample {i}, step {t}; NaN is only "
            "allowed as padding: whole time steps at the end of a sequence"
        )
    gap = padding[:, :-1] & ~padding[:, 1:]
    if gap.any():
        i, t = np.argwhere(gap)[0]
        raise ValueError(
            f"X contains NaN inside sample {i} (step {t} is NaN but later steps hold data); "
            "NaN is only allowed as padding at the end of a sequence. Fill gaps first"
        )
    if padding[:, 0].any():
        i = int(np.flatnonzero(padding[:, 0])[0])
        raise ValueError(f"X contains NaN everywhere in sample {i}: a sequence needs data")


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
