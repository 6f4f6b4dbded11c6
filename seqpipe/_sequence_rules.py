"""The one validator for sequence data, shared by estimators, transformers and the runtime.

The rule: sequences are a 3-D array ``(n_samples, n_timesteps, n_features)``, a
2-D array ``(n_samples, n_timesteps)`` for one feature, or a list of
``(T_i, n_features)`` / ``(T_i,)`` arrays of different lengths. NaN is allowed
only as padding: whole time steps (every feature NaN) at the end of a sequence.
No inf, no empty data.

Every caller goes through :func:`validate_sequences` (or, on the runtime's fast
path, :func:`check_padding`), so one bad input gives one message everywhere.

numpy and the standard library only: :mod:`seqpipe.runtime` imports this where
torch, scipy, scikit-learn and onnx are not installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "LAYOUTS",
    "SequenceBatch",
    "check_padding",
    "valid_lengths",
    "validate_sequences",
]

#: What every shape error says was expected.
LAYOUTS = (
    "expected a 3-D array (n_samples, n_timesteps, n_features), a 2-D array "
    "(n_samples, n_timesteps) for one feature, or a list of (n_timesteps, n_features) "
    "or (n_timesteps,) arrays"
)

_PADDING_RULE = (
    "NaN is allowed only as padding: whole time steps (every feature NaN) at the end of a sequence"
)

_RESHAPE_HINT = (
    " Reshape your data: X.reshape(1, -1) if it is one univariate sequence, or cut a long "
    "series into windows with seqpipe.preprocessing.make_windows."
)

DTypes = Any  # a numpy dtype-like, or a tuple of them (keep these, else convert to the first)


@dataclass(frozen=True)
class SequenceBatch:
    """Validated sequences.

    Attributes
    ----------
    data : ndarray of shape (n_samples, n_timesteps, n_features) or list of ndarray
        The sequences, padding still NaN. A list of ``(T_i, n_features)`` arrays
        only when ``keep_list=True`` was asked for and ``X`` was a list.
    lengths : ndarray of int64 or None
        Valid (non-padding) steps per sequence; None when ``data`` is an array
        without padding. Always an array for list ``data``.
    one_feature : bool
        Whether ``X`` had no feature axis (a 2-D array or a list of 1-D
        sequences), so callers can give results back in that layout.
    """

    data: np.ndarray | list[np.ndarray]
    lengths: np.ndarray | None
    one_feature: bool


def validate_sequences(
    X: Any,
    *,
    dtype: DTypes = np.float32,
    n_features: int | None = None,
    keep_list: bool = False,
    copy: bool = False,
    writeable: bool = False,
) -> SequenceBatch:
    """Check ``X`` against the sequence data rule and convert it to a float batch.

    Parameters
    ----------
    X : array-like, list of array-like, or pandas object
        Sequence data in one of the layouts of :data:`LAYOUTS`.
    dtype : dtype or tuple of dtypes, default=np.float32
        Float dtype of the result. A tuple keeps an input dtype found in it and
        converts anything else to its first entry (as scikit-learn's
        ``check_array`` does).
    n_features : int, default=None
        Features per time step the caller expects. Only input without a feature
        axis (2-D, or a list of 1-D sequences) is checked against it here, since
        its message (reshape to 3-D) is the same for every caller; a 3-D width
        mismatch is the caller's to word, because it names the estimator.
    keep_list : bool, default=False
        Give list input back as a list of ``(T_i, n_features)`` arrays instead of
        one NaN-padded 3-D array.
    copy : bool, default=False
        Never return memory shared with ``X``.
    writeable : bool, default=False
        Copy read-only input so the result may be modified in place.

    Returns
    -------
    batch : SequenceBatch
        The converted data, valid lengths, and whether ``X`` had one feature.

    Raises
    ------
    TypeError
        For sparse matrices and non-numeric data (scikit-learn's checks expect
        TypeError there).
    ValueError
        For every other breach of the rule; the message says what is wrong,
        where (sample, step, feature) and what was expected.
    """
    if X is None:
        raise ValueError(f"X is None; {LAYOUTS}.")
    _reject_sparse(X, "X")
    if _is_sequence_list(X):
        return _validate_list(X, dtype, n_features, keep_list, copy, writeable)
    if isinstance(X, (list, tuple)) and len(X) == 0:
        raise ValueError(
            "Found array with 0 sample(s) (X is an empty list) while a minimum of 1 is "
            "required: X needs at least 1 sequence."
        )
    source = _as_array(X, "X")
    shape = source.shape
    if source.ndim not in (2, 3):
        plural = "" if source.ndim == 1 else "s"
        hint = _RESHAPE_HINT if source.ndim == 1 else ""
        raise ValueError(
            f"X has {source.ndim} dimension{plural} with shape {shape}; {LAYOUTS}.{hint}"
        )
    if shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is required: "
            "X needs at least 1 sequence."
        )
    if shape[1] == 0:
        if source.ndim == 2:
            # scikit-learn's wording, which its checks match, although the empty axis of
            # a 2-D X is time.
            raise ValueError(
                f"Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is "
                "required: a 2-D X is (n_samples, n_timesteps), so these sequences have no "
                "time steps."
            )
        raise ValueError(
            f"Found array with 0 time step(s) (shape={shape}) while a minimum of 1 is "
            "required: every sequence needs at least 1 time step."
        )
    if source.ndim == 3 and shape[2] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is required."
        )
    one_feature = source.ndim == 2
    if one_feature and n_features is not None and n_features != 1:
        raise ValueError(
            f"X is 2-D with shape {shape}, which means (n_samples, n_timesteps) with one "
            f"feature, but {n_features} features per time step are expected; pass a 3-D "
            f"array (n_samples, n_timesteps, {n_features})."
        )
    data = _convert(source[:, :, None] if one_feature else source, dtype, copy, writeable)
    return SequenceBatch(data, valid_lengths(data), one_feature)


def valid_lengths(X: np.ndarray, *, first_sample: int = 0) -> np.ndarray | None:
    """Valid steps per sequence of a float ``(n, T, F)`` array, checking the NaN rule.

    A quick finiteness test first, so data without NaN costs one dot product.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_timesteps, n_features)
        Float sequences, padding as NaN.
    first_sample : int, default=0
        Index of ``X[0]`` in the caller's data, for the messages.

    Returns
    -------
    lengths : ndarray of int64 or None
        Valid steps per sequence, or None when no sequence is padded.
    """
    if _finite(X):
        return None
    return check_padding(X, first_sample=first_sample)


def check_padding(X: np.ndarray, *, first_sample: int = 0) -> np.ndarray | None:
    """Raise unless every non-finite value of ``X`` is NaN in whole trailing steps.

    The full check without :func:`valid_lengths`' quick test, for callers that
    have just run one. The first sample with a problem is reported (its first
    infinity, else NaN in only some features, else no data at all, else an
    all-NaN step before data), so checking list items one at a time gives the
    same message as checking them padded into one array.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_timesteps, n_features)
        Float sequences, padding as NaN.
    first_sample : int, default=0
        Index of ``X[0]`` in the caller's data, for the messages.

    Returns
    -------
    lengths : ndarray of int64 or None
        Valid steps per sequence, or None when no sequence is padded.
    """
    nan = np.isnan(X)
    inf = np.isinf(X)
    padding = nan.all(axis=2)
    n_steps = X.shape[1]
    # A sequence's length ends after its last step holding any data.
    lengths = n_steps - np.argmax(~padding[:, ::-1], axis=1)
    empty = padding.all(axis=1)
    partial = nan.any(axis=2) & ~padding
    gap = padding & (np.arange(n_steps) < lengths[:, None])
    bad = inf.any(axis=(1, 2)) | partial.any(axis=1) | gap.any(axis=1) | empty
    if bad.any():
        i = int(np.argmax(bad))
        sample = first_sample + i
        if inf[i].any():
            step, feature = np.argwhere(inf[i])[0]
            raise ValueError(
                f"X contains infinity at sample {sample}, step {step}, feature {feature}; "
                f"only finite values are allowed, and {_PADDING_RULE}."
            )
        if partial[i].any():
            step = int(np.argmax(partial[i]))
            feature = int(np.argmax(nan[i, step]))
            raise ValueError(
                f"X contains NaN in only some features at sample {sample}, step {step} "
                f"(feature {feature} is NaN); {_PADDING_RULE}. Fill missing values first, "
                "e.g. by interpolation."
            )
        if empty[i]:
            raise ValueError(
                f"X contains NaN everywhere in sample {sample}: every sequence needs at "
                "least one time step with data; drop or fill it."
            )
        step = int(np.argmax(gap[i]))
        raise ValueError(
            f"X contains NaN inside sample {sample}: step {step} is all NaN but later steps "
            f"hold data; {_PADDING_RULE}. Fill gaps first, e.g. by interpolation."
        )
    if not (lengths < n_steps).any():
        return None  # no NaN: huge finite values made the quick test overflow
    return lengths.astype(np.int64)


# --- helpers -----------------------------------------------------------------------


def _finite(X: np.ndarray) -> bool:
    # One BLAS dot product instead of isfinite().all() (a third of the cost on small
    # arrays): NaN or inf anywhere makes it non-finite, and so does overflow from huge
    # finite values, which the full check then lets pass.
    return math.isfinite(np.vdot(X, X))


def _reject_sparse(X: Any, where: str) -> None:
    # Recognised by module instead of scipy.sparse.issparse: scipy is not installed
    # where the runtime runs.
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"Sparse data was passed ({where} is a {type(X).__name__}), but sequence data "
            f"must be dense; convert it with {where}.toarray()."
        )


def _is_sequence_list(X: Any) -> bool:
    """Whether ``X`` is a list of separate sequences rather than one nested array.

    A list of arrays is always a batch of sequences; a nested list of numbers is
    only one when its rows differ in length (otherwise it is a plain array).
    """
    if not isinstance(X, (list, tuple)) or len(X) == 0:
        return False
    if all(getattr(item, "ndim", 0) >= 1 for item in X):
        return True
    try:
        return len({len(item) for item in X}) > 1
    except TypeError:
        return False


def _as_array(X: Any, where: str) -> np.ndarray:
    """``X`` as an ndarray of numbers (any numeric dtype, or object to convert later)."""
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas
        X = X.to_numpy()
    try:
        array = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{where} could not be read as an array of numbers ({exc}); {LAYOUTS}."
        ) from None
    kind = array.dtype.kind
    if kind == "c":
        # scikit-learn's checks match "Complex data not supported".
        raise ValueError(
            f"Complex data not supported: {where} has dtype {array.dtype}; sequences must "
            "hold real numbers (take X.real or np.abs(X) first)."
        )
    if kind not in "fiubO":
        raise TypeError(
            f"{where} must hold numbers, but has dtype {array.dtype}; encode text, dates and "
            "other values as numbers first."
        )
    return array


def _target_dtype(source: np.dtype, dtype: DTypes) -> np.dtype:
    if isinstance(dtype, tuple):
        accepted = [np.dtype(d) for d in dtype]
        return source if source in accepted else accepted[0]
    return np.dtype(dtype)


def _convert(
    array: np.ndarray,
    dtype: DTypes,
    copy: bool,
    writeable: bool,
    first_sample: int = 0,
    where: str = "X",
) -> np.ndarray:
    """A ``(n, T, F)`` numeric or object array as ``dtype``; overflow is an error."""
    source = array
    if source.dtype.kind == "O":
        try:
            source = source.astype(np.float64)
        except (TypeError, ValueError) as exc:
            # numpy's own words are kept: scikit-learn's checks match them.
            raise TypeError(
                f"{where} must hold numbers, but could not be converted to float: {exc}"
            ) from None
    target = _target_dtype(source.dtype, dtype)
    # numpy warns when a cast overflows; the check below raises instead.
    with np.errstate(over="ignore", invalid="ignore"):
        out = source.astype(target, copy=False)
    if out is not source and source.dtype.kind == "f" and not _finite(out):
        _check_overflow(source, out, first_sample)
    if (copy and np.may_share_memory(out, array)) or (writeable and not out.flags.writeable):
        out = out.copy()
    return out


def _check_overflow(source: np.ndarray, out: np.ndarray, first_sample: int) -> None:
    overflow = np.isinf(out) & np.isfinite(source)
    if overflow.any():
        i, step, feature = np.argwhere(overflow)[0]
        raise ValueError(
            f"X has a value too large for {out.dtype} at sample {first_sample + i}, step "
            f"{step}, feature {feature} ({source[i, step, feature]:.6g}); it would become "
            "infinity, and only finite values are allowed. Rescale the data first."
        )


def _validate_list(
    X: Sequence[Any],
    dtype: DTypes,
    n_features: int | None,
    keep_list: bool,
    copy: bool,
    writeable: bool,
) -> SequenceBatch:
    items: list[np.ndarray] = []
    for i, item in enumerate(X):
        where = f"X[{i}]"
        _reject_sparse(item, where)
        array = _as_array(item, where)
        if array.ndim not in (1, 2):
            raise ValueError(
                f"Sequence {where} has shape {array.shape}; each sequence in a list must be "
                "(n_timesteps, n_features) or (n_timesteps,)."
            )
        if items and array.ndim != items[0].ndim:
            raise ValueError(
                f"Sequence {where} is {array.ndim}-D but X[0] is {items[0].ndim}-D; all "
                "sequences in a list must have the same number of dimensions."
            )
        if items and array.ndim == 2 and array.shape[1] != items[0].shape[1]:
            raise ValueError(
                f"Sequence {where} has {array.shape[1]} features but X[0] has "
                f"{items[0].shape[1]}; every sequence in a list needs the same features."
            )
        if array.shape[0] == 0:
            raise ValueError(
                f"Sequence {where} has 0 time steps (shape {array.shape}); every sequence "
                "needs at least 1."
            )
        items.append(array)
    one_feature = items[0].ndim == 1
    if not one_feature and items[0].shape[1] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={items[0].shape} for X[0]) while a "
            "minimum of 1 is required."
        )
    if one_feature and n_features is not None and n_features != 1:
        raise ValueError(
            f"X is a list of 1-D sequences, which means one feature, but {n_features} "
            f"features per time step are expected; pass (n_timesteps, {n_features}) arrays."
        )
    # Each item goes through as a batch of one, (1, T_i, F), so overflow positions name
    # its sample, step and feature as they would in the padded array.
    converted = [
        _convert(
            a[None, :, None] if one_feature else a[None], dtype, copy, writeable, i, f"X[{i}]"
        )[0]
        for i, a in enumerate(items)
    ]
    if keep_list:
        lengths = [_item_length(a, i) for i, a in enumerate(converted)]
        return SequenceBatch(converted, np.asarray(lengths, dtype=np.int64), one_feature)
    padded = np.full(
        (len(converted), max(a.shape[0] for a in converted), converted[0].shape[1]),
        np.nan,
        dtype=np.result_type(*converted),
    )
    for i, a in enumerate(converted):
        padded[i, : a.shape[0]] = a
    return SequenceBatch(padded, valid_lengths(padded), one_feature)


def _item_length(item: np.ndarray, index: int) -> int:
    valid = valid_lengths(item[None], first_sample=index)
    return item.shape[0] if valid is None else int(valid[0])
