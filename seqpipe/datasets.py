"""Small real time series shipped with the package, and readers for the archives' formats.

:func:`load_airline_passengers` and :func:`load_sunspots` read CSV files that live in
``seqpipe/data`` through :mod:`importlib.resources`, so they work from a wheel, a zip
or an editable install alike, with no network access and no path guessing.

:func:`load_ts` reads the UCR/UEA classification and regression archives' ``.ts``
files and :func:`load_tsf` the Monash forecasting archive's ``.tsf`` files, from a
path the caller gives (numpy only; nothing is downloaded).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from importlib import resources
from typing import Any

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_airline_passengers", "load_sunspots", "load_ts", "load_tsf"]

_AIRLINE_DESCRIPTION = """\
Monthly international airline passengers, in thousands, January 1949 to
December 1960 (144 months). Box, G. E. P. and Jenkins, G. M. (1976), Time
Series Analysis: Forecasting and Control, series G. An upward trend with
multiplicative yearly seasonality: the classic forecasting demonstration."""

_SUNSPOTS_DESCRIPTION = """\
Yearly mean sunspot activity, 1700 to 2008 (309 years). NOAA National
Geophysical Data Center; public domain. Quasi-periodic with a cycle of about
11 years of varying amplitude: a non-linear series."""


def _read_csv(filename: str) -> tuple[list[str], list[list[str]]]:
    text = resources.files("seqpipe").joinpath("data", filename).read_text(encoding="utf-8")
    header, *rows = csv.reader(io.StringIO(text))
    # Skip blank trailing lines some editors add.
    return header, [row for row in rows if row]


def _import_pandas(loader: str) -> Any:
    # pandas is optional for the package: only as_frame=True needs it.
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            f"{loader}(as_frame=True) needs pandas, which is not installed; "
            "install it (pip install pandas) or call it with as_frame=False."
        ) from exc
    return pd


def load_airline_passengers(as_frame: bool = False) -> Bunch:
    """Load the monthly airline passengers series (Box & Jenkins, 1949-1960).

    Parameters
    ----------
    as_frame : bool, default=False
        If True, ``data`` is a :class:`pandas.Series` indexed by a monthly
        :class:`pandas.PeriodIndex` (needs pandas).

    Returns
    -------
    bunch : sklearn.utils.Bunch
        With fields

        data : ndarray of shape (144,) or pandas.Series
            Passengers per month, in thousands, as float64, oldest first.
        dates : ndarray of shape (144,), dtype datetime64[M]
            The month of each value.
        index : ndarray or pandas.PeriodIndex
            Same as ``dates`` (a ``PeriodIndex`` named ``"month"`` with ``as_frame=True``).
        name : str
            ``"passengers"``.
        frequency : str
            ``"monthly"``; the seasonal period is 12.
        description : str
            Where the data come from and what they look like.

    Raises
    ------
    ImportError
        If ``as_frame=True`` and pandas is not installed.

    Examples
    --------
    >>> from seqpipe.datasets import load_airline_passengers
    >>> bunch = load_airline_passengers()
    >>> bunch.data.shape, bunch.data[:3]
    ((144,), array([112., 118., 132.]))
    >>> str(bunch.dates[0]), str(bunch.dates[-1])
    ('1949-01', '1960-12')

    As a pandas Series with a monthly index:

    >>> load_airline_passengers(as_frame=True).data.head(2)
    month
    1949-01    112.0
    1949-02    118.0
    Freq: M, Name: passengers, dtype: float64
    """
    _, rows = _read_csv("airline_passengers.csv")
    dates = np.array([row[0] for row in rows], dtype="datetime64[M]")
    values = np.array([float(row[1]) for row in rows])
    index: Any = dates
    data: Any = values
    if as_frame:
        pd = _import_pandas("load_airline_passengers")
        index = pd.PeriodIndex(dates.astype(str), freq="M", name="month")
        data = pd.Series(values, index=index, name="passengers")
    return Bunch(
        data=data,
        dates=dates,
        index=index,
        name="passengers",
        frequency="monthly",
        description=_AIRLINE_DESCRIPTION,
    )


def load_sunspots(as_frame: bool = False) -> Bunch:
    """Load the yearly sunspot activity series (1700-2008).

    Parameters
    ----------
    as_frame : bool, default=False
        If True, ``data`` is a :class:`pandas.Series` indexed by the year
        (needs pandas).

    Returns
    -------
    bunch : sklearn.utils.Bunch
        With fields

        data : ndarray of shape (309,) or pandas.Series
            Yearly mean sunspot activity as float64, oldest first.
        dates : ndarray of shape (309,), dtype int64
            The year of each value.
        index : ndarray or pandas.Index
            Same as ``dates`` (a pandas ``Index`` named ``"year"`` with ``as_frame=True``).
        name : str
            ``"sunspots"``.
        frequency : str
            ``"yearly"``; the cycle is about 11 years.
        description : str
            Where the data come from and what they look like.

    Raises
    ------
    ImportError
        If ``as_frame=True`` and pandas is not installed.

    Examples
    --------
    >>> from seqpipe.datasets import load_sunspots
    >>> bunch = load_sunspots()
    >>> bunch.data.shape, int(bunch.dates[0]), int(bunch.dates[-1])
    ((309,), 1700, 2008)
    >>> bunch.data[:3]
    array([ 5., 11., 16.])
    >>> load_sunspots(as_frame=True).data.head(2)
    year
    1700     5.0
    1701    11.0
    Name: sunspots, dtype: float64
    """
    _, rows = _read_csv("sunspots_yearly.csv")
    years = np.array([int(float(row[0])) for row in rows], dtype=np.int64)
    values = np.array([float(row[1]) for row in rows])
    index: Any = years
    data: Any = values
    if as_frame:
        pd = _import_pandas("load_sunspots")
        index = pd.Index(years, name="year")
        data = pd.Series(values, index=index, name="sunspots")
    return Bunch(
        data=data,
        dates=years,
        index=index,
        name="sunspots",
        frequency="yearly",
        description=_SUNSPOTS_DESCRIPTION,
    )


# --- the archives' text formats ------------------------------------------------------------
_TS_BOOLEANS = ("timestamps", "missing", "univariate", "equallength")


class _Lines:
    """Numbered, stripped, non-blank, non-comment lines of a text file, and error messages
    that name the file and the line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        # utf-8-sig: some archive files (PLAID, ACSF1) start with a byte-order mark.
        with open(self.path, encoding="utf-8-sig") as handle:
            self.text = handle.read()

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for number, raw in enumerate(self.text.splitlines(), start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                yield number, line

    def header(
        self, rows: Iterator[tuple[int, str]], what: str
    ) -> Iterator[tuple[int, str, list[str]]]:
        """The ``@key words`` lines before ``@data`` as ``(number, lower-case key, words)``.

        ``rows`` is left at the first line after ``@data``; ``what`` names what follows
        it, for the error when there is no ``@data`` line.
        """
        for number, line in rows:
            if not line.startswith("@"):
                raise self.error(
                    number,
                    "expected a header line starting with '@' (or '#' for a comment) "
                    f"before @data, got {line[:40]!r}",
                )
            key, *words = line[1:].split()
            key = key.lower()
            if key == "data":
                return
            yield number, key, words
        raise self.error(None, f"expected an '@data' line before the {what}; found none")

    def error(self, number: int | None, message: str) -> ValueError:
        where = f"{self.path}, line {number}" if number is not None else self.path
        return ValueError(f"{where}: {message}")


def _parse_bool(lines: _Lines, number: int, key: str, words: list[str]) -> bool:
    if len(words) != 1 or words[0].lower() not in ("true", "false"):
        raise lines.error(number, f"expected '@{key} true' or '@{key} false', got {words!r}")
    return words[0].lower() == "true"


def _parse_int(lines: _Lines, number: int, key: str, words: list[str]) -> int:
    if len(words) != 1 or not words[0].isdigit() or int(words[0]) < 1:
        raise lines.error(
            number, f"expected '@{key}' followed by a positive integer, got {words!r}"
        )
    return int(words[0])


def _parse_values(lines: _Lines, number: int, text: str, what: str) -> np.ndarray:
    """Comma-separated numbers, ``?`` (or ``NaN``) for a missing value, as float64."""
    tokens = [token.strip() for token in text.split(",")]
    try:
        # numpy parses the strings itself: one C loop instead of a float() per value.
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        pass
    values = np.empty(len(tokens))
    for i, token in enumerate(tokens):
        if token == "?":
            values[i] = np.nan
            continue
        try:
            values[i] = float(token)
        except ValueError:
            raise lines.error(
                number, f"expected a number or '?' as value {i + 1} of {what}, got {token!r}"
            ) from None
    return values


def load_ts(path: str | os.PathLike[str]) -> Bunch:
    """Read a UCR/UEA time-series classification or regression file (``.ts`` format).

    The archives' text format: ``#`` comment lines, header lines ``@problemName``,
    ``@timeStamps``, ``@missing``, ``@univariate``, ``@dimensions``, ``@equalLength``,
    ``@seriesLength``, ``@classLabel true <labels...>`` or ``@classLabel false``,
    ``@targetLabel true`` (regression), then ``@data`` and one sample per line:
    the dimensions separated by ``:``, the values of each by ``,``, the class label
    or target last, ``?`` for a missing value. Header names are case-insensitive.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.ts`` file, e.g. ``ArrowHead_TRAIN.ts``.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        With fields

        data : ndarray of shape (n_samples, n_timesteps, n_dims), float64
            The series, ready for the estimators. Sets of unequal length are
            NaN-padded at the end to the longest series (the package's padding
            convention: trailing whole steps of NaN).
        target : ndarray of shape (n_samples,) or None
            Class labels as strings (``task == "classification"``), float targets
            (``"regression"``), or None for an unlabelled file.
        class_labels : ndarray of str or None
            The labels declared by ``@classLabel``, in their declared order.
        problem_name : str or None
            ``@problemName``.
        task : {"classification", "regression"} or None
        equal_length : bool
            Whether every series has the same length.
        lengths : ndarray of shape (n_samples,), int64
            Each series' length: up to its last step with any observed value.
        missing : bool
            Whether any value is missing (``?``) *inside* a series.

    Raises
    ------
    ValueError
        If the file is malformed; the message names the file, the line and what was
        expected (no ``@data``, a wrong number of dimensions, a label not among the
        declared ones, a value that is not a number, ...). Files with
        ``@timeStamps true`` are not supported.

    Notes
    -----
    Missing values (``?``) *inside* a series are kept as NaN and ``missing`` is True:
    filling them is the caller's choice (interpolation, forward fill, ...), and the
    estimators reject NaN inside a sequence with a message saying so. Missing values
    at the end of a series count as padding, so they shorten ``lengths``. The
    dimensions of one sample must have the same length.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from seqpipe.datasets import load_ts
    >>> text = '''# two classes, ragged
    ... @problemName Toy
    ... @univariate true
    ... @equalLength false
    ... @classLabel true up down
    ... @data
    ... 1,2,3:up
    ... 3,2:down
    ... '''
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp, "Toy_TRAIN.ts")
    ...     _ = path.write_text(text)
    ...     bunch = load_ts(path)
    >>> bunch.data.shape, bunch.target.tolist(), bunch.lengths.tolist()
    ((2, 3, 1), ['up', 'down'], [3, 2])
    >>> bunch.data[1, :, 0]
    array([ 3.,  2., nan])
    """
    lines = _Lines(path)
    header: dict[str, Any] = {}
    class_labels: list[str] | None = None
    samples: list[np.ndarray] = []
    targets: list[str] = []
    n_dims: int | None = None
    numbers: list[int] = []
    rows = iter(lines)
    for number, key, words in lines.header(rows, "samples"):
        if key in _TS_BOOLEANS:
            header[key] = _parse_bool(lines, number, key, words)
        elif key in ("dimensions", "serieslength"):
            header[key] = _parse_int(lines, number, key, words)
        elif key == "problemname":
            header[key] = " ".join(words)
        elif key == "classlabel":
            header[key] = _parse_bool(lines, number, key, words[:1])
            class_labels = words[1:] if header[key] else None
            if header[key] and not class_labels:
                raise lines.error(number, "expected the class labels after '@classLabel true'")
        elif key == "targetlabel":
            header[key] = _parse_bool(lines, number, key, words)
        # Other header lines (the archive has grown some over the years) carry nothing
        # this reader needs; they are skipped rather than refused.
    if header.get("timestamps"):
        raise lines.error(None, "'@timeStamps true' (time-stamped values) is not supported")
    if header.get("classlabel") and header.get("targetlabel"):
        raise lines.error(None, "both @classLabel true and @targetLabel true; expected one")
    task = (
        "classification"
        if header.get("classlabel")
        else "regression"
        if header.get("targetlabel")
        else None
    )
    if header.get("univariate"):
        n_dims = 1
    if "dimensions" in header:
        if n_dims is not None and header["dimensions"] != 1:
            raise lines.error(None, f"'@univariate true' but '@dimensions {header['dimensions']}'")
        n_dims = header["dimensions"]
    declared = set(class_labels or ())
    for number, line in rows:
        parts = line.split(":")
        if task is not None:
            if len(parts) < 2:
                raise lines.error(number, f"expected the series then ':' and the {task} target")
            label = parts.pop().strip()
            if task == "classification" and label not in declared:
                raise lines.error(
                    number, f"class label {label!r} is not among the declared labels {class_labels}"
                )
            targets.append(label)
        if n_dims is None:
            n_dims = len(parts)  # neither @univariate nor @dimensions: the first sample says
        if len(parts) != n_dims:
            raise lines.error(
                number, f"expected {n_dims} dimension(s) separated by ':', found {len(parts)}"
            )
        dims = [
            _parse_values(lines, number, part, f"dimension {d + 1}") for d, part in enumerate(parts)
        ]
        if len({len(values) for values in dims}) > 1:
            raise lines.error(
                number,
                "expected the dimensions of one sample to have the same length, got "
                f"{[len(values) for values in dims]}",
            )
        if "serieslength" in header and header.get("equallength", True):
            if len(dims[0]) != header["serieslength"]:
                raise lines.error(
                    number,
                    f"expected {header['serieslength']} values per dimension "
                    f"(@seriesLength), found {len(dims[0])}",
                )
        samples.append(np.stack(dims, axis=1))
        numbers.append(number)
    if not samples:
        raise lines.error(None, "expected at least one sample after @data; found none")
    written = np.array([len(s) for s in samples])
    if header.get("equallength") and len(set(written.tolist())) > 1:
        bad = int(np.flatnonzero(written != written[0])[0])
        raise lines.error(
            numbers[bad],
            f"'@equalLength true' but this series has {written[bad]} values "
            f"and the first has {written[0]}",
        )
    data = np.full((len(samples), int(written.max()), n_dims or 1), np.nan)
    for i, sample in enumerate(samples):
        data[i, : len(sample)] = sample
    observed = ~np.isnan(data).all(axis=2)
    if not observed.any(axis=1).all():
        empty = int(np.flatnonzero(~observed.any(axis=1))[0])
        raise lines.error(numbers[empty], "expected at least one observed value; all are '?'")
    lengths = data.shape[1] - np.argmax(observed[:, ::-1], axis=1)
    inside = np.arange(data.shape[1])[None, :] < lengths[:, None]
    if task == "regression":
        try:
            target: np.ndarray | None = np.array(targets, dtype=np.float64)
        except ValueError:
            bad = next(i for i, t in enumerate(targets) if not _is_float(t))
            raise lines.error(
                numbers[bad], f"expected a numeric regression target, got {targets[bad]!r}"
            ) from None
    elif task == "classification":
        target = np.array(targets, dtype=str)
    else:
        target = None
    return Bunch(
        data=data,
        target=target,
        class_labels=None if class_labels is None else np.array(class_labels, dtype=str),
        problem_name=header.get("problemname"),
        task=task,
        equal_length=bool((lengths == lengths[0]).all()),
        lengths=lengths.astype(np.int64),
        missing=bool(np.isnan(data[inside]).any()),
    )


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_TSF_TYPES = ("numeric", "string", "date")
_TSF_RESERVED = (
    "series",
    "attributes",
    "frequency",
    "horizon",
    "contain_missing_values",
    "contain_equal_length",
    "relation",
)


def load_tsf(path: str | os.PathLike[str]) -> Bunch:
    """Read a Monash forecasting archive file (``.tsf`` format).

    The format: ``#`` comment lines, header lines ``@relation``, ``@attribute name
    type`` (type ``numeric``, ``string`` or ``date``; one per attribute, in order),
    ``@frequency``, ``@horizon``, ``@missing``, ``@equallength``, then ``@data`` and one
    series per line: the attribute values, then the series, separated by ``:``; the
    series' values separated by ``,``, ``?`` for a missing value.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.tsf`` file, e.g. ``m1_yearly_dataset.tsf``.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        With fields

        series : list of ndarray of shape (n_i,), float64
            Each series, oldest first; missing values are NaN.
        <attribute name> : ndarray of shape (n_series,)
            One field per ``@attribute``: float64 for ``numeric``, str for ``string``
            and ``date`` (dates are kept as written, e.g. ``"1972-01-01 00-00-00"``).
        attributes : list of str
            The attribute names, in declared order.
        frequency : str or None
            ``@frequency`` (e.g. ``"yearly"``).
        horizon : int or None
            ``@horizon``, the forecast horizon the archive evaluates.
        contain_missing_values : bool
            ``@missing`` if declared, else whether any value is ``?``.
        contain_equal_length : bool
            ``@equallength`` if declared, else whether all series have one length.
        relation : str or None
            ``@relation``, the data set's name.

    Raises
    ------
    ValueError
        If the file is malformed; the message names the file, the line and what was
        expected (no ``@data``, no ``@attribute``, a wrong number of attribute values, a
        value that is not a number, an unknown attribute type, ...).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from seqpipe.datasets import load_tsf
    >>> text = '''@relation toy
    ... @attribute series_name string
    ... @attribute start_timestamp date
    ... @frequency yearly
    ... @horizon 2
    ... @missing false
    ... @equallength false
    ... @data
    ... T1:1980-01-01 00-00-00:1,2,3,4
    ... T2:1990-01-01 00-00-00:5,6,7
    ... '''
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp, "toy.tsf")
    ...     _ = path.write_text(text)
    ...     bunch = load_tsf(path)
    >>> bunch.series_name.tolist(), bunch.horizon, bunch.series[1]
    (['T1', 'T2'], 2, array([5., 6., 7.]))
    >>> str(bunch.start_timestamp[0])
    '1980-01-01 00-00-00'
    """
    lines = _Lines(path)
    attributes: list[tuple[str, str]] = []
    header: dict[str, Any] = {}
    rows = iter(lines)
    for number, key, words in lines.header(rows, "series"):
        if key == "attribute":
            if len(words) != 2 or words[1].lower() not in _TSF_TYPES:
                raise lines.error(
                    number,
                    f"expected '@attribute <name> <type>' with type one of "
                    f"{_TSF_TYPES}, got {words!r}",
                )
            name = words[0]
            if name in _TSF_RESERVED or name in dict(attributes):
                raise lines.error(number, f"attribute name {name!r} is used twice or reserved")
            attributes.append((name, words[1].lower()))
        elif key in ("missing", "equallength"):
            header[key] = _parse_bool(lines, number, key, words)
        elif key == "horizon":
            header[key] = _parse_int(lines, number, key, words)
        elif key in ("frequency", "relation"):
            header[key] = " ".join(words)
    if not attributes:
        raise lines.error(None, "expected at least one '@attribute' line before @data")
    values: list[list[str]] = [[] for _ in attributes]
    series: list[np.ndarray] = []
    for number, line in rows:
        parts = line.split(":", len(attributes))
        if len(parts) != len(attributes) + 1:
            raise lines.error(
                number,
                f"expected {len(attributes)} attribute value(s) then the series, "
                f"separated by ':', found {len(parts) - 1} ':'",
            )
        for column, ((name, kind), text) in enumerate(zip(attributes, parts[:-1], strict=True)):
            if kind == "numeric" and not _is_float(text):
                raise lines.error(
                    number, f"expected a number for numeric attribute {name!r}, got {text!r}"
                )
            values[column].append(text)
        series.append(_parse_values(lines, number, parts[-1], "the series"))
    if not series:
        raise lines.error(None, "expected at least one series after @data; found none")
    columns = {
        name: np.array(column, dtype=np.float64 if kind == "numeric" else str)
        for (name, kind), column in zip(attributes, values, strict=True)
    }
    lengths = {len(s) for s in series}
    return Bunch(
        series=series,
        **columns,
        attributes=[name for name, _ in attributes],
        frequency=header.get("frequency"),
        horizon=header.get("horizon"),
        contain_missing_values=header.get("missing", any(bool(np.isnan(s).any()) for s in series)),
        contain_equal_length=header.get("equallength", len(lengths) == 1),
        relation=header.get("relation"),
    )
