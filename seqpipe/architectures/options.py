"""Checking ``architecture_options``: one rule and one message for every architecture.

An architecture's ``build`` receives the estimator's ``architecture_options`` as
``config.options``. :func:`check_options` merges them over the architecture's
defaults and refuses unknown keys (listing the valid ones) and values of the wrong
type, so a typo never trains silently with the default.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any


def check_options(
    architecture: str,
    options: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    *,
    choices: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """``options`` merged over ``defaults``, each value checked against its default's type.

    A default of type bool accepts only bools; int accepts integers (not bools);
    float accepts real numbers (returned as float); str accepts strings; tuple
    accepts any non-string sequence (returned as a tuple). ``None`` as a default
    accepts anything.

    Parameters
    ----------
    architecture : str
        The architecture's name, for the messages.
    options : mapping or None
        What the user passed (``config.options``).
    defaults : mapping
        Every option the architecture accepts, with its default value.
    choices : mapping, optional
        Allowed values for some options (e.g. ``{"recurrent": ("lstm", "gru")}``).

    Returns
    -------
    dict
        Every option of ``defaults``, with the user's values where given.

    Raises
    ------
    ValueError
        For an unknown key (the message lists the valid ones), a value of the wrong
        type, or a value outside ``choices``.

    Examples
    --------
    >>> from seqpipe.architectures import check_options
    >>> check_options("tcn", {"kernel_size": 2}, {"kernel_size": 3, "causal": True})
    {'kernel_size': 2, 'causal': True}
    >>> check_options("tcn", {"kernel": 2}, {"kernel_size": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: architecture 'tcn' got unknown architecture_options ['kernel']; valid ...
    """
    given = dict(options or {})
    unknown = sorted(set(given) - set(defaults), key=str)
    if unknown:
        valid = sorted(defaults) if defaults else "none (it takes no options)"
        raise ValueError(
            f"architecture {architecture!r} got unknown architecture_options {unknown}; "
            f"valid options are {valid}"
        )
    out = dict(defaults)
    for key, value in given.items():
        out[key] = _check_type(architecture, key, value, defaults[key])
        allowed = (choices or {}).get(key)
        if allowed is not None and out[key] not in allowed:
            raise ValueError(
                f"architecture {architecture!r}: architecture_options[{key!r}] must be one "
                f"of {list(allowed)}, got {value!r}"
            )
    return out


def _check_type(architecture: str, key: str, value: Any, default: Any) -> Any:
    where = f"architecture {architecture!r}: architecture_options[{key!r}]"
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        expected = "a bool"
    elif isinstance(default, numbers.Integral):
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        expected = "an int"
    elif isinstance(default, numbers.Real):
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        expected = "a number"
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
        expected = "a str"
    elif isinstance(default, tuple):
        if isinstance(value, Sequence) and not isinstance(value, str):
            return tuple(value)
        expected = "a sequence (tuple or list)"
    else:
        return value
    raise ValueError(f"{where} must be {expected}, got {value!r}")
