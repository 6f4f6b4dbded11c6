"""One bad input, one message: estimators, preprocessing and the runtime agree.

All three validate through ``seqpipe._sequence_rules``; this feeds each of them the
same bad sequences and compares exception type and text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import seqpipe
from seqpipe import runtime
from seqpipe.onnx import export
from seqpipe.preprocessing import SequenceScaler

FAST = {"hidden_size": 4, "epochs": 1, "random_state": 0}
N_FEATURES = 2


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only fight each other
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted() -> seqpipe.LSTMRegressor:
    X = np.random.default_rng(0).normal(size=(12, 5, N_FEATURES))
    return seqpipe.LSTMRegressor(**FAST).fit(X, X.sum(axis=(1, 2)))


@pytest.fixture(scope="module")
def callers(fitted, tmp_path_factory) -> dict[str, Callable[[Any], Any]]:
    """Every entry point that validates sequences, by name, ready to take one X."""
    path = export(fitted, tmp_path_factory.mktemp("onnx") / "m.onnx")
    model = runtime.load(path)
    scaler = SequenceScaler().fit(np.ones((3, 4, N_FEATURES)))
    return {
        "LSTMRegressor.fit": lambda X: seqpipe.LSTMRegressor(**FAST).fit(
            X, np.zeros(_n_samples(X))
        ),
        "LSTMRegressor.predict": fitted.predict,
        "SequenceScaler.fit": lambda X: SequenceScaler().fit(X),
        "SequenceScaler.transform": scaler.transform,
        "runtime.predict": model.predict,
    }


def _n_samples(X: Any) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _with(dtype: type, index: Any, value: float) -> np.ndarray:
    """A valid (3, 4, 2) batch of ``dtype`` with ``X[index] = value``."""
    X = np.ones((3, 4, N_FEATURES), dtype=dtype)
    X[index] = value
    return X


def _gap_sequence() -> np.ndarray:
    seq = np.ones((4, N_FEATURES))
    seq[1] = np.nan
    return seq


def _long_frame(levels: int = 2) -> pd.DataFrame:
    """A valid long-format frame of 3 sequences of 4 steps, or one with more levels."""
    index = pd.MultiIndex.from_product([range(3), range(4), *[[0]] * (levels - 2)])
    return pd.DataFrame(np.ones((12, N_FEATURES)), index=index, columns=["a", "b"])


def _columns_multiindex() -> pd.DataFrame:
    frame = _long_frame()
    frame.columns = pd.MultiIndex.from_tuples([("x", "a"), ("x", "b")])
    return frame


ALL = (
    "LSTMRegressor.fit",
    "LSTMRegressor.predict",
    "SequenceScaler.fit",
    "SequenceScaler.transform",
    "runtime.predict",
)
# A 2-D X is valid for fitting (one feature); only a fitted 2-feature model rejects it.
FITTED = ("SequenceScaler.transform", "runtime.predict")
# The scaler keeps float64, so only float32 validators see an overflow.
FLOAT32 = ("LSTMRegressor.fit", "LSTMRegressor.predict", "runtime.predict")

# name: (X, entry points, exception type, what the message must say)
CASES: dict[str, tuple[Any, tuple[str, ...], type, str]] = {
    "inf": (
        _with(np.float64, (1, 2, 0), np.inf),
        ALL,
        ValueError,
        "infinity at sample 1, step 2, feature 0",
    ),
    # float32 C-contiguous takes the runtime's fast path (vdot, then check_padding).
    "inf, float32": (
        _with(np.float32, (1, 2, 1), -np.inf),
        ALL,
        ValueError,
        "infinity at sample 1, step 2, feature 1",
    ),
    "NaN in some features of a step": (
        _with(np.float32, (1, 2, 1), np.nan),
        ALL,
        ValueError,
        "NaN in only some features at sample 1, step 2 \\(feature 1",
    ),
    "all-NaN step before data": (
        _with(np.float64, (1, 1), np.nan),
        ALL,
        ValueError,
        "NaN inside sample 1: step 1 is all NaN but later steps hold data",
    ),
    "all-NaN sample": (
        _with(np.float32, 2, np.nan),
        ALL,
        ValueError,
        "NaN everywhere in sample 2",
    ),
    "overflow to float32": (
        _with(np.float64, (0, 3, 1), 1e300),
        FLOAT32,
        ValueError,
        "too large for float32 at sample 0, step 3, feature 1",
    ),
    "1-D": (np.arange(4.0), ALL, ValueError, "1 dimension .*X.reshape\\(1, -1\\)"),
    "4-D": (np.zeros((2, 3, 4, 2)), ALL, ValueError, "4 dimensions .*expected a 3-D array"),
    "ragged, different feature counts": (
        [np.ones((3, 2)), np.ones((2, 3))],
        ALL,
        ValueError,
        "X\\[1\\] has 3 features but X\\[0\\] has 2",
    ),
    "ragged, 0-length sequence": (
        [np.ones((3, 2)), np.ones((0, 2))],
        ALL,
        ValueError,
        "X\\[1\\] has 0 time steps",
    ),
    "ragged, NaN gap in a sequence": (
        [np.ones((3, 2)), _gap_sequence()],
        ALL,
        ValueError,
        "NaN inside sample 1: step 1",
    ),
    "no samples": (np.zeros((0, 4, 2)), ALL, ValueError, "0 sample\\(s\\)"),
    "empty list": ([], ALL, ValueError, "0 sample\\(s\\) \\(X is an empty list\\)"),
    "no time steps": (np.zeros((3, 0, 2)), ALL, ValueError, "0 time step\\(s\\)"),
    "strings": (np.full((3, 4, 2), "a"), ALL, TypeError, "must hold numbers.*<U1"),
    "objects": (
        np.array([[[{}, 1.0]]], dtype=object),
        ALL,
        TypeError,
        "must hold numbers.*not 'dict'",
    ),
    "complex": (np.ones((3, 4, 2)) + 1j, ALL, ValueError, "Complex data not supported"),
    "sparse": (sp.csr_matrix(np.eye(3)), ALL, TypeError, "Sparse data .*X.toarray\\(\\)"),
    "2-D for a 2-feature model": (
        np.ones((3, 4)),
        FITTED,
        ValueError,
        "X is 2-D .* one feature, but 2 features per time step are expected",
    ),
}

# Long-format frames are read in the shared validator, so every caller refuses other
# MultiIndex layouts with the same words.
LONG = (
    "long-format DataFrame has a two-level row MultiIndex \\(instance, time\\) and one flat "
    "column per feature"
)
CASES["frame, 3 row levels"] = (
    _long_frame(3),
    ALL,
    ValueError,
    "3-level row MultiIndex; a " + LONG,
)
CASES["frame, MultiIndex columns"] = (
    _columns_multiindex(),
    ALL,
    ValueError,
    "MultiIndex columns \\(2 levels\\); a " + LONG,
)
CASES["frame, time not increasing"] = (
    _long_frame().iloc[::-1],
    ALL,
    ValueError,
    "instance 2 has time 3 \\(row 0\\) followed by 2 \\(row 1\\).*X.sort_index\\(\\)",
)
CASES["2-D for a 2-feature model, estimator too"] = (
    np.ones((3, 4)),
    ("LSTMRegressor.predict", *FITTED),
    ValueError,
    "X is 2-D .* one feature, but 2 features per time step are expected",
)
CASE_PARAMS = [pytest.param(name, id=name) for name in CASES]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. numpy's cast overflow warning
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_one_bad_input_gives_one_message(callers, case):
    X, names, error, match = CASES[case]
    raised = {}
    for name in names:
        with pytest.raises((TypeError, ValueError)) as info:
            callers[name](X)
        raised[name] = (type(info.value), str(info.value))
    # Identical first, so a difference shows every caller's wording side by side.
    assert len(set(raised.values())) == 1, "\n".join(
        f"{name}: {kind.__name__}: {text}" for name, (kind, text) in raised.items()
    )
    kind, text = raised[names[0]]
    assert kind is error
    assert re.search(match, text), text
