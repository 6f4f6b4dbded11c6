"""Small real time series shipped with the package, for examples, demos and tests.

The CSV files live in ``seqpipe/data`` and are read through
:mod:`importlib.resources`, so the loaders work from a wheel, a zip or an
editable install alike, with no network access and no path guessing.
"""

from __future__ import annotations

import csv
import io
from importlib import resources
from typing import Any

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_airline_passengers", "load_sunspots"]

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
