"""Row chunks: work through a large ``(n, ...)`` array a bounded number of bytes at a time.

Validation, scaling statistics, window statistics and the network's inputs are
computed chunk by chunk, so the memory a ``fit`` or ``predict`` needs beyond its
input is one chunk, not another copy of the input: windows from
:func:`seqpipe.preprocessing.make_windows` are views into the series, and a
1,000,000-step series cut into windows of 64 steps would otherwise become a 488 MiB
float64 array. Chunks hold whole rows (sequences), so every per-sequence
computation gives bit for bit what it gives on the whole array.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

#: float64 bytes per chunk: small enough to be negligible next to the data it
#: stands for, large enough that numpy's per-call overhead is amortized.
CHUNK_BYTES = 4 * 2**20


def row_slices(shape: tuple[int, ...], chunk_bytes: int | None = None) -> list[slice]:
    """Consecutive slices covering the first axis of an array of ``shape``, each at
    most ``chunk_bytes`` of float64 (``CHUNK_BYTES`` when None), and at least one row.

    Examples
    --------
    >>> row_slices((5, 2), chunk_bytes=32)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    >>> row_slices((5, 2))
    [slice(0, 5, None)]
    """
    n_rows = shape[0]
    values_per_row = math.prod(shape[1:])
    budget = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    rows = max(1, budget // max(1, 8 * values_per_row))
    return [slice(start, min(start + rows, n_rows)) for start in range(0, n_rows, rows)] or [
        slice(0, 0)
    ]


def length_sorted_chunks(
    n: int, steps: int, lengths: np.ndarray | None, max_rows: int, step_budget: int | None
) -> Iterator[slice | np.ndarray]:
    """The rows of each chunk of a forward pass over ``n`` sequences of ``steps``
    padded time steps: at most ``max_rows``, and at most ``step_budget`` rows x time
    steps (None: no such cap).

    Equal lengths (``lengths`` None): consecutive slices. Ragged: row indices in
    order of length, and a chunk's steps are those of its longest row (its last),
    so short rows share wide chunks and a few long ones do not narrow them.

    Examples
    --------
    >>> [c for c in length_sorted_chunks(5, 4, None, 2, None)]
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    >>> [c.tolist() for c in length_sorted_chunks(5, 9, np.array([9, 1, 2, 1, 3]), 4, 8)]
    [[1, 3, 2], [4], [0]]
    """
    if lengths is None:
        rows = max_rows if step_budget is None else max(1, min(max_rows, step_budget // steps))
        for start in range(0, n, rows):
            yield slice(start, min(start + rows, n))
        return
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = np.maximum(lengths[order], 1)
    start = 0
    while start < n:
        window = sorted_lengths[start : start + max_rows]
        rows = len(window)
        if step_budget is not None:
            # k rows cost k x the k-th length (sorted): increasing in k, so the
            # chunks that fit are a prefix.
            fits = np.arange(1, rows + 1) * window <= step_budget
            rows = max(1, int(np.count_nonzero(fits)))
        yield order[start : start + rows]
        start += rows
