"""The one validator for sequence data, shared by estimators, transformers and the runtime.

The rule: sequences are a 3-D array ``(n_samples, n_timesteps, n_features)``, a
2-D array ``(n_samples, n_timesteps)`` for one feature, or a list of
``(T_i, n_features)`` / ``(T_i,)`` arrays of different lengths. NaN is allowed
only as padding: whole time steps (every feature NaN) at the end of a sequence.
No inf, no empty data.

A 2-D array is always ``(n_samples, n_timesteps)``, so one window of a
multivariate series passed alone, ``(n_timesteps, n_features)``, is refused with
a message that says so and gives the fix, ``X[None]``; and one window of a
univariate series passed as a column ``(n_timesteps, 1)`` is ``n_timesteps``
sequences of one step, which gets a warning when the model was fitted on longer
sequences (callers pass ``shortest_fit``).

Every caller goes through :func:`validate_sequences` (or, on the runtime's fast
path, :func:`check_padding`), so one bad input gives one message everywhere.

numpy and the standard library only: :mod:`seqpipe.runtime` imports this where
torch, scipy, scikit-learn and onnx are not installed.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqpipe._chunks import row_slices
from seqpipe._frames import read_long_frame

__all__ = [
    "LAYOUTS",
    "SequenceBatch",
    "SingleWindowWarning",
    "check_fits",
    "check_padding",
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

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class SingleWindowWarning(UserWarning):
    """A 2-D ``(n, 1)`` X read as ``n`` one-step sequences by a model fitted on longer
    ones: most likely one window of ``n`` steps passed alone (pass ``X[None]``)."""


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
    shortest_fit: int | None = None,
    in_chunks: bool = False,
) -> SequenceBatch:
    """Check ``X`` against the sequence data rule and convert it to a float batch.

    Parameters
    ----------
    X : array-like, list of array-like, or pandas object
        Sequence data in one of the layouts of :data:`LAYOUTS`, or a long-format
        DataFrame (a row MultiIndex (instance, time), one column per feature), read
        as the list of its instances by :func:`seqpipe._frames.read_long_frame`.
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
    shortest_fit : int, default=None
        Fewest time steps of any sequence the model was fitted on. When it is
        above 1, a 2-D ``X`` of shape ``(n, 1)`` with ``n > 1`` (``n`` one-step
        sequences, most likely one window of ``n`` steps passed alone) gets a
        :class:`SingleWindowWarning` naming the fix, ``X[None]``.
    in_chunks : bool, default=False
        For a float32 or float64 array larger than one chunk
        (:data:`seqpipe._chunks.CHUNK_BYTES`): check it one chunk of sequences
        at a time and give it back as it is (its own float dtype, a view
        when ``X`` is one), never a converted copy. The caller converts what
        it reads, chunk by chunk (the estimators' O(n) memory). Ignored with
        ``copy`` or ``writeable``.

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
    frame = read_long_frame(X)  # None unless X is a pandas object with a MultiIndex
    if frame is not None:
        X = frame.sequences
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
        raise ValueError(_two_d_for_many_features(shape, n_features))
    if one_feature and shape[1] == 1 and shape[0] > 1 and (shortest_fit or 0) > 1:
        _warn_outside_seqpipe(_one_step_sequences(shape, shortest_fit))
    source = source[:, :, None] if one_feature else source
    if (
        in_chunks
        and not (copy or writeable)
        and source.dtype in (np.float32, np.float64)
        and len(row_slices(source.shape)) > 1
    ):
        return SequenceBatch(source, _check_in_chunks(source, dtype), one_feature)
    if _narrows(source, dtype):
        with np.errstate(over="ignore", invalid="ignore"):
            data, narrowed_from = _cast(source, dtype, copy, writeable)
    else:
        data, narrowed_from = _cast(source, dtype, copy, writeable)
    return SequenceBatch(data, _check_values(data, narrowed_from), one_feature)


def check_fits(X: np.ndarray, dtype: Any, *, first_sample: int = 0) -> None:
    """Raise the overflow message if a value of float ``X`` would become infinity as ``dtype``.

    For callers that keep the data wider than the network computes (the estimators
    standardize in float64 and train in float32): a value float32 cannot hold gets
    the same message as where the cast happens during validation.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_timesteps, n_features)
        Validated float sequences, padding as NaN.
    dtype : dtype
        The narrower float type the values must fit.
    first_sample : int, default=0
        Index of ``X[0]`` in the caller's data, for the message.
    """
    limit = float(np.finfo(dtype).max)
    with np.errstate(invalid="ignore"):
        if not (np.nanmax(X) > limit or np.nanmin(X) < -limit):
            return
        with np.errstate(over="ignore"):
            _check_overflow(X, X.astype(dtype), first_sample)


def check_padding(X: np.ndarray, *, first_sample: int = 0) -> None:
    """Raise unless every non-finite value of ``X`` is NaN in whole trailing steps.

    The full check, for callers whose quick finiteness test (one dot product)
    came out non-finite: NaN, inf, or overflow from huge finite values, which
    passes here. The first sample with a problem is reported (its first
    infinity, else NaN in only some features, else no data at all, else an
    all-NaN step before data), so a list checked item by item reads the same as
    the padded array.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_timesteps, n_features)
        Float sequences, padding as NaN.
    first_sample : int, default=0
        Index of ``X[0]`` in the caller's data, for the messages.
    """
    _padding(X, first_sample)


def sequence_lengths(X: np.ndarray) -> np.ndarray:
    """Each sequence's length in a validated ``(n, T, F)`` batch: ``T`` minus its
    trailing all-NaN padding steps (validation allows no other all-NaN step).

    Examples
    --------
    >>> X = np.ones((2, 3, 1)); X[1, 2:] = np.nan
    >>> sequence_lengths(X).tolist()
    [3, 2]
    """
    return X.shape[1] - np.isnan(X).all(axis=2).sum(axis=1)


def _padding(X: np.ndarray, first_sample: int) -> np.ndarray:
    """The ``(n, T)`` padding mask of ``X``, after checking the NaN rule."""
    nan = np.isnan(X)
    padding = nan.all(axis=2)
    # Valid padded data, the common case here, is settled with a few cheap passes:
    # no step partly NaN, no padding step followed by data, no sequence starting with
    # padding (with no gap, that is an all-NaN one), no inf. Finding the first bad
    # sample is left to _raise_first.
    if (
        (nan.any(axis=2) != padding).any()
        or (padding[:, :-1] > padding[:, 1:]).any()
        or padding[:, 0].any()
        or np.isinf(X).any()
    ):
        _raise_first(X, nan, padding, first_sample)
    return padding


def _raise_first(X: np.ndarray, nan: np.ndarray, padding: np.ndarray, first_sample: int) -> None:
    inf = np.isinf(X)
    n_steps = X.shape[1]
    # A sequence's length ends after its last step holding any data (n_steps for one
    # without any, which is reported as empty before its gap could be).
    lengths = n_steps - np.argmax(~padding[:, ::-1], axis=1)
    partial = nan.any(axis=2) & ~padding
    gap = padding & (np.arange(n_steps) < lengths[:, None])
    empty = padding.all(axis=1)
    bad = inf.any(axis=(1, 2)) | partial.any(axis=1) | gap.any(axis=1)
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


# --- helpers -----------------------------------------------------------------------


def _two_d_for_many_features(shape: tuple[int, ...], n_features: int) -> str:
    message = (
        f"X is 2-D with shape {shape}, which means (n_samples, n_timesteps) with one "
        f"feature, but {n_features} features per time step are expected; pass a 3-D "
        f"array (n_samples, n_timesteps, {n_features})."
    )
    if shape[1] == n_features:
        # The likely mistake: one window (n_timesteps, n_features) passed alone.
        message += (
            f" If X is a single sequence of {shape[0]} time steps with {n_features} "
            f"features each, pass X[None], of shape (1, {shape[0]}, {n_features})."
        )
    return message


def _one_step_sequences(shape: tuple[int, ...], shortest_fit: int) -> str:
    return (
        f"X is 2-D with shape {shape}, which means {shape[0]} sequences of 1 time step "
        f"each (a 2-D X is (n_samples, n_timesteps) for one feature), but the model was "
        f"fitted on sequences of at least {shortest_fit} time steps. If X is a single "
        f"sequence of {shape[0]} time steps, pass X[None], of shape (1, {shape[0]}, 1); "
        "pass one-step sequences as a 3-D array (n_samples, 1, 1) to silence this warning."
    )


def _warn_outside_seqpipe(message: str) -> None:
    """Warn, attributed to the first caller outside seqpipe (the user's line)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, SingleWindowWarning, stacklevel=level)


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


def _cast(
    array: np.ndarray, dtype: DTypes, copy: bool, writeable: bool, where: str = "X"
) -> tuple[np.ndarray, np.ndarray | None]:
    """``array`` as ``dtype``, and the float source when the cast may have overflowed.

    Callers run this under ``np.errstate(over="ignore")`` where it may narrow:
    numpy would warn about an overflowing cast, which :func:`_check_values` turns
    into an error that says where.
    """
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
    out = source.astype(target, copy=False)
    if (copy and np.may_share_memory(out, array)) or (writeable and not out.flags.writeable):
        out = out.copy()
    narrowed = source.dtype.kind == "f" and target.itemsize < source.dtype.itemsize
    return out, source if narrowed else None


def _narrows(array: np.ndarray, dtype: DTypes) -> bool:
    kind = array.dtype.kind
    return kind == "O" or (
        kind == "f" and _target_dtype(array.dtype, dtype).itemsize < array.dtype.itemsize
    )


def _check_values(
    out: np.ndarray, narrowed_from: np.ndarray | None, first_sample: int = 0
) -> np.ndarray | None:
    """Valid lengths of a cast ``(n, T, F)`` batch, raising on overflow, inf and bad NaN."""
    # Most data has no NaN: then one dot product is the whole check.
    if _finite(out):
        return None
    if narrowed_from is not None:
        _check_overflow(narrowed_from, out, first_sample)
    n_steps = out.shape[1]
    lengths = n_steps - _padding(out, first_sample).sum(axis=1)
    if not (lengths < n_steps).any():
        return None  # no NaN: huge finite values made the quick test overflow
    return lengths.astype(np.int64)


def _check_in_chunks(source: np.ndarray, dtype: DTypes) -> np.ndarray | None:
    """:func:`_check_values` of ``source`` cast to ``dtype``, one chunk of rows at a
    time: the same lengths and the same messages (sample numbers count from the
    start of ``source``), with one chunk's memory."""
    n_steps = source.shape[1]
    lengths = []
    padded = False
    for rows in row_slices(source.shape):
        chunk = source[rows]
        with np.errstate(over="ignore", invalid="ignore"):
            out, narrowed_from = _cast(chunk, dtype, False, False)
        found = _check_values(out, narrowed_from, rows.start)
        padded = padded or found is not None
        lengths.append(np.full(len(chunk), n_steps, dtype=np.int64) if found is None else found)
    return np.concatenate(lengths) if padded else None


def _check_overflow(source: np.ndarray, out: np.ndarray, first_sample: int) -> None:
    inf = np.isinf(out)
    if not inf.any():  # NaN padding made the quick test fail, not an overflow
        return
    overflow = inf & np.isfinite(source)
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
    # Items are cast as batches of one, (1, T_i, F), so messages name the sample, step
    # and feature as they would in the padded array.
    with np.errstate(over="ignore", invalid="ignore"):
        casts = [
            _cast(a[None, :, None] if one_feature else a[None], dtype, copy, writeable, f"X[{i}]")
            for i, a in enumerate(items)
        ]
    # Overflow anywhere first, then the first sequence breaking the NaN rule: the order
    # an array gets, and the same whether the list is padded or kept.
    for i, (out, narrowed_from) in enumerate(casts):
        if narrowed_from is not None and not _finite(out):
            _check_overflow(narrowed_from, out, i)
    converted = [out[0] for out, _ in casts]
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
    return SequenceBatch(padded, _check_values(padded, None), one_feature)


def _item_length(item: np.ndarray, index: int) -> int:
    valid = _check_values(item[None], None, first_sample=index)
    return item.shape[0] if valid is None else int(valid[0])
