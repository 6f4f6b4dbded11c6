"""Long-format pandas frames: recognised, read as sequences, and written back.

sktime and aeon hold a batch of multivariate series as one DataFrame whose rows
carry a two-level MultiIndex ``(instance, time)`` and whose columns are the
features (their "pd-multiindex" layout). Read as a plain table it would be
``n_rows`` one-feature sequences of ``n_features`` steps: silently wrong. This
module turns that layout into the package's ragged form, a list of
``(T_i, n_features)`` arrays, and refuses every other MultiIndex, so that
:func:`seqpipe._sequence_rules.validate_sequences` (every estimator, transformer
and the runtime) reads frames one way.

Rules: instances come in the order their labels first appear in the first index
level (``groupby(level=0, sort=False)``, so instances need not be contiguous);
within an instance the rows are taken in the frame's order, and that order must be
strictly increasing in time, else an error names the instance and says to call
``X.sort_index()``. Rows are never reordered silently.

numpy only at import: pandas is used only when ``X`` already is a pandas object,
so the torch-free runtime keeps working where pandas is not installed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LONG_FORMAT", "LongFrame", "instance_index", "is_long_frame", "read_long_frame"]

#: What every MultiIndex error says was expected.
LONG_FORMAT = (
    "a long-format DataFrame has a two-level row MultiIndex (instance, time) and one flat "
    'column per feature (the layout sktime and aeon call "pd-multiindex")'
)


@dataclass(frozen=True)
class LongFrame:
    """A long-format frame read as sequences.

    Attributes
    ----------
    sequences : list of ndarray of shape (T_i, n_features)
        One array per instance, in first-appearance order, rows in time order.
    instances : pandas.Index
        The instance labels, in the order of ``sequences``.
    order : ndarray of int of shape (n_rows,)
        Frame row positions in the order ``np.concatenate(sequences)`` holds them.
    frame : pandas.DataFrame
        The frame itself, for its index and columns.
    """

    sequences: list[np.ndarray]
    instances: Any
    order: np.ndarray
    frame: Any

    def to_frame(self, sequences: list[np.ndarray], columns: Any) -> Any:
        """Per-instance results ``(T_i, k)`` back as a frame with this frame's index.

        Parameters
        ----------
        sequences : list of ndarray of shape (T_i, k)
            One result per instance, in the order of :attr:`sequences`, each as
            long as its instance.
        columns : array-like of length k
            Column names of the result.

        Returns
        -------
        frame : pandas.DataFrame of shape (n_rows, k)
            Row ``r`` holds the result of the frame's row ``r``.
        """
        rows = np.concatenate(sequences)
        out = np.empty_like(rows)
        out[self.order] = rows
        return _pandas().DataFrame(out, index=self.frame.index, columns=columns)


def _pandas() -> Any:
    """The pandas module if it is already imported (so ``X`` could be pandas), else None."""
    return sys.modules.get("pandas")


def is_long_frame(X: Any) -> bool:
    """Whether ``X`` is a DataFrame with a two-level row index and flat columns.

    Only the layout is looked at; :func:`read_long_frame` checks the content.
    """
    pd = _pandas()
    return (
        pd is not None
        and isinstance(X, pd.DataFrame)
        and X.index.nlevels == 2
        and X.columns.nlevels == 1
    )


def instance_index(X: Any) -> Any:
    """The instance labels of a long-format frame in first-appearance order, else None."""
    return X.index.unique(level=0) if is_long_frame(X) else None


def read_long_frame(X: Any) -> LongFrame | None:
    """Read a long-format frame as sequences; None for anything without a MultiIndex.

    Parameters
    ----------
    X : object
        Anything. Only pandas objects with a MultiIndex (rows or columns) are read.

    Returns
    -------
    frame : LongFrame or None
        The sequences and what is needed to write results back; None when ``X``
        is not a pandas object with a MultiIndex, which is left to the caller.

    Raises
    ------
    ValueError
        For any other MultiIndex (a Series, more or fewer than two row levels,
        MultiIndex columns), a missing instance label, a time order that is not
        strictly increasing within an instance, or a frame without rows or columns.
        Each message names what was found and :data:`LONG_FORMAT`.
    """
    pd = _pandas()
    if pd is None or not isinstance(X, (pd.DataFrame, pd.Series)):
        return None
    row_levels = X.index.nlevels
    column_levels = X.columns.nlevels if isinstance(X, pd.DataFrame) else 1
    if row_levels == 1 and column_levels == 1:
        return None
    if isinstance(X, pd.Series):
        raise ValueError(
            f"X is a Series with a {row_levels}-level MultiIndex; {LONG_FORMAT}. For one "
            "feature, pass X.to_frame()."
        )
    if column_levels != 1:
        raise ValueError(
            f"X has MultiIndex columns ({column_levels} levels); {LONG_FORMAT}. Flatten "
            "the columns to one name per feature, or pass a 3-D array (n_samples, "
            "n_timesteps, n_features)."
        )
    if row_levels != 2:
        names = f" {list(X.index.names)}" if any(n is not None for n in X.index.names) else ""
        raise ValueError(
            f"X has a {row_levels}-level row MultiIndex{names}; {LONG_FORMAT}. Combine or "
            "drop levels (X.droplevel(...)) so that the first identifies the instance and "
            "the second the time step."
        )
    n_rows, n_columns = X.shape
    if n_rows == 0:
        raise ValueError(
            "Found array with 0 sample(s) (X is a long-format DataFrame without rows) while "
            "a minimum of 1 is required: X needs at least 1 sequence."
        )
    if n_columns == 0:
        raise ValueError(
            "Found array with 0 feature(s) (X is a long-format DataFrame without columns) "
            "while a minimum of 1 is required."
        )
    codes, instances = pd.factorize(X.index.get_level_values(0), sort=False)
    if (codes < 0).any():
        row = int(np.argmax(codes < 0))
        raise ValueError(
            f"X's instance level (the first index level) is missing at row {row}; every "
            f"row needs an instance label: {LONG_FORMAT}."
        )
    # A stable sort groups each instance's rows and keeps them in the frame's order.
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    _check_time_order(X, order, sorted_codes, instances)
    ends = np.flatnonzero(np.diff(sorted_codes)) + 1
    values = X.to_numpy()[order]
    return LongFrame(np.split(values, ends), instances, order, X)


def _check_time_order(X: Any, order: np.ndarray, codes: np.ndarray, instances: Any) -> None:
    """Raise unless time strictly increases from row to row within every instance."""
    time = X.index.get_level_values(1).take(order)
    same = codes[1:] == codes[:-1]
    try:
        increasing = np.asarray(time[1:] > time[:-1], dtype=bool)
    except TypeError as exc:
        raise ValueError(
            f"X's time level (the second index level) holds values that cannot be "
            f"ordered ({exc}); {LONG_FORMAT}."
        ) from None
    bad = same & ~increasing
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"X's time level must strictly increase within each instance, but instance "
            f"{_label(instances[codes[k]])!r} has time {_label(time[k])!r} (row {order[k]}) "
            f"followed by {_label(time[k + 1])!r} (row {order[k + 1]}). Sort the frame with "
            "X.sort_index() and drop repeated (instance, time) rows."
        )


def _label(value: Any) -> Any:
    """``value`` as a plain Python object, so messages show ``3``, not ``np.int64(3)``."""
    return value.item() if isinstance(value, np.generic) else value
