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
