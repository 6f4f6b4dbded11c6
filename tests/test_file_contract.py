"""The file contract: ``runtime.load`` checks metadata against a schema and the graph
before serving, so any crafted or damaged file is a loaded model or one
``ValueError`` naming the key, in bounded time and memory; ``seqpipe info`` on it
prints its one error line.

Files are edited in memory (``onnx``, test-only) and loaded from bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
import tracemalloc
from datetime import timedelta

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from seqpipe import LSTMClassifier, LSTMRegressor, runtime
from seqpipe import _format as fmt
from seqpipe.cli import main
from seqpipe.onnx import export

FAST = {"hidden_size": 3, "epochs": 1, "random_state": 0}
QUICK = {"verify_batch_sizes": (1,), "verify_lengths": (2,)}
#: Python memory a load may take (the crafted classes dtype of issue 12 took 1.6 GB).
MEMORY_BOUND = 40 * 1024 * 1024


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(12, 5, 3))


@pytest.fixture(scope="module")
def classifier(X, tmp_path_factory):
    """A streaming classifier file: it has every key, classes and recurrent states."""
    # Streaming cannot scale a window it has not seen yet: local scaling off.
    clf = LSTMClassifier(local_scaling=None, **FAST)
    clf.fit(X, np.where(X[:, 0, 0] > 0, "up", "down"))
    path = export(clf, tmp_path_factory.mktemp("clf") / "c.onnx", streaming=True, **QUICK)
    return onnx.load(path), path


@pytest.fixture(scope="module")
def regressor(X, tmp_path_factory):
    est = LSTMRegressor(**FAST).fit(X, X[:, -1, 0])
    path = export(est, tmp_path_factory.mktemp("reg") / "r.onnx", verify=False)
    return onnx.load(path), path


def _edited(model: onnx.ModelProto, changes: dict[str, str | None]) -> bytes:
    """``model`` serialized with metadata keys set (None: removed)."""
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.metadata_props[:]
    for key, value in props.items():
        copy.metadata_props.add(key=key, value=value)
    return copy.SerializeToString()


def _load_measured(data: bytes) -> tuple[runtime.OnnxSequenceModel | ValueError, int]:
    """``runtime.load(data)`` (or its ValueError) and the peak Python memory it took."""
    tracemalloc.start()
    try:
        return runtime.load(data), tracemalloc.get_traced_memory()[1]
    except ValueError as exc:
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _info(path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["info", str(path)])
    return status, out.getvalue(), err.getvalue()


# --- what issue 12 found ----------------------------------------------------------------
@pytest.mark.parametrize(
    "dtype", ["(10000,10000)f8", "V100000000", "S5", "<M8[ns]", "<U0", "f8,i4", "<U9999999"]
)
def test_crafted_classes_dtype_is_refused_in_bounded_memory(classifier, dtype):
    result, peak = _load_measured(_edited(classifier[0], {fmt.KEY_CLASSES_DTYPE: dtype}))
    assert isinstance(result, ValueError)
    assert "'seqpipe.classes_dtype'" in str(result) and repr(dtype) in str(result)
    assert peak < MEMORY_BOUND


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2", r"'seqpipe.n_features' is 2 but the graph's input 'X' has 3 features"),
        ("4", r"'seqpipe.n_features' is 4 but the graph's input 'X' has 3 features"),
        ("-1", r"'seqpipe.n_features' must be a positive integer .*got '-1'"),
        ("0", r"'seqpipe.n_features' must be a positive integer"),
        ("3.0", r"'seqpipe.n_features' must be a positive integer"),
        ("\uff13", r"'seqpipe.n_features' must be a positive integer"),  # fullwidth 3
        ("9" * 5000, r"'seqpipe.n_features' must be a positive integer"),
    ],
)
def test_n_features_must_be_the_graphs(classifier, value, message):
    with pytest.raises(ValueError, match=message):
        runtime.load(_edited(classifier[0], {fmt.KEY_N_FEATURES: value}))


@pytest.mark.parametrize(
    "key",
    [
        fmt.KEY_VERSION,
        fmt.KEY_TASK,
        fmt.KEY_MODEL,
        fmt.KEY_ARCHITECTURE,
        fmt.KEY_N_FEATURES,
        fmt.KEY_OUTPUT_KIND,
        fmt.KEY_INPUTS,
        fmt.KEY_OUTPUTS,
        fmt.KEY_STREAMING,
        fmt.KEY_NETWORK,
        fmt.KEY_CUDA_UNSUPPORTED,
        fmt.KEY_CLASSES,
        fmt.KEY_CLASSES_DTYPE,
    ],
)
def test_a_missing_key_is_named(classifier, key):
    with pytest.raises(ValueError, match=f"metadata '{key}' must be present"):
        runtime.load(_edited(classifier[0], {key: None}))


MALFORMED = {
    # key: (value, what the message says was expected)
    fmt.KEY_NETWORK: [
        ("[1,2", "must be valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"max_timesteps": NaN}', "must be valid JSON"),
        ('{"max_timesteps": -3}', "'max_timesteps' is null or an integer"),
        ('{"a": [[[[1]]]]}', "nested at most 4 deep"),
        ("[" * 50000 + "]" * 50000, "at most 65536 characters"),
        ("[" * 30000, "must be valid JSON|nested at most"),
        ('{"activation": "tanh\\u001b[2J"}', "printable text"),
    ],
    fmt.KEY_VERIFIED: [
        ('{"max_abs_diff": "x", "rtol": 1, "batch_sizes": [1], "lengths": [1]}', '"max_abs_diff"'),
        ('{"max_abs_diff": 0.1}', '"rtol"'),
        ("7", "a JSON object"),
    ],
    fmt.KEY_INPUTS: [("{}", "non-empty JSON list"), ('[{"name": "X"}]', '"shape"')],
    fmt.KEY_OUTPUTS: [('[{"name": 1, "dtype": "", "shape": [], "meaning": ""}]', '"name": str')],
    fmt.KEY_STREAMING: [('[{"input": 1}]', '"input": str'), ('"x"', "JSON list")],
    fmt.KEY_CUDA_UNSUPPORTED: [('"x"', "JSON list of strings"), ("[1]", "JSON list of strings")],
    fmt.KEY_TASK: [("regresion", "one of 'classification', 'regression', 'transform'")],
    fmt.KEY_OUTPUT_KIND: [("single", "one of 'classes'")],
    fmt.KEY_MODEL: [("evil\x1b]0;owned\x07", "printable text"), ("", "non-empty")],
    fmt.KEY_FORMAT: [("1.0", "format version number"), ("2", "newer than this runtime")],
    fmt.KEY_CLASSES: [
        ("[1, 2]", "labels that fit dtype '<U4'"),
        ('["up", "up"]', "labels distinct as '<U4'"),
        ('["down", "upward"]', "labels that fit dtype '<U4'"),
        ("[false, true]", "labels that fit dtype '<U4'"),
        ("{}", "JSON list of 1 to"),
    ],
}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [(key, value, expected) for key, cases in MALFORMED.items() for value, expected in cases],
    ids=lambda v: v[:20] if isinstance(v, str) else None,
)
def test_malformed_values_are_one_value_error_naming_the_key(classifier, key, value, expected):
    result, peak = _load_measured(_edited(classifier[0], {key: value}))
    assert isinstance(result, ValueError)
    message = str(result)
    assert f"'{key}'" in message, message
    assert any(part in message for part in expected.split("|")), message
    assert message.isprintable() and len(message) < 1000
    assert peak < MEMORY_BOUND


def test_metadata_must_agree_with_the_graph(classifier, regressor):
    clf, reg = classifier[0], regressor[0]
    states = json.loads({p.key: p.value for p in clf.metadata_props}[fmt.KEY_STREAMING])
    wider = [{**s, "shape": [1, "batch", 4]} for s in states]
    dtype = fmt.KEY_CLASSES_DTYPE
    cases = [
        (clf, {fmt.KEY_CLASSES: '["a", "b", "c"]'}, "lists 3 classes but .* has 2 columns"),
        (clf, {fmt.KEY_CLASSES: "[false, true]", fmt.KEY_CLASSES_DTYPE: "|b1"}, "tensor\\(bool\\)"),
        (clf, {fmt.KEY_STREAMING: "[]"}, "lists state inputs \\[\\] but"),
        (clf, {fmt.KEY_STREAMING: json.dumps(wider)}, "shape \\(1, batch, 4\\)"),
        (clf, {fmt.KEY_TASK: "regression"}, "'seqpipe.output_kind' must be one of"),
        (reg, {fmt.KEY_OUTPUT_KIND: "vector"}, "output 'y' of type tensor\\(double\\) and rank 2"),
        (reg, {fmt.KEY_TASK: "transform", fmt.KEY_OUTPUT_KIND: "features"}, "output 'features'"),
        (reg, {fmt.KEY_OUTPUTS: "[]"}, "'seqpipe.outputs' must be a non-empty"),
        (reg, {fmt.KEY_CLASSES: '["a"]'}, "'seqpipe.classes' must be absent for task 'regression'"),
        (clf, {fmt.KEY_CLASSES: "[1.0, 1.0001]", dtype: "<f2"}, "distinct as '<f2'"),
        (clf, {fmt.KEY_CLASSES: "[1.0, 1e300]", dtype: "<f4"}, "finite as '<f4'"),
    ]
    for model, changes, message in cases:
        with pytest.raises(ValueError, match=message):
            runtime.load(_edited(model, changes))


def test_damaged_files_are_a_value_error_naming_the_file(classifier, tmp_path):
    data = classifier[1].read_bytes()
    for name, damaged in [
        ("truncated.onnx", data[: len(data) // 2]),
        ("empty.onnx", b""),
        ("flipped.onnx", bytes([data[0] ^ 0x80]) + data[1:]),
    ]:
        path = tmp_path / name
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match=f"{name}' is not a valid ONNX model") as error:
            runtime.load(path)
        assert "\n" not in str(error.value)
        status, out, err = _info(path)
        assert (status, out) == (1, "") and err.startswith("seqpipe: error: ")
        assert err.count("\n") == 1


def test_valid_files_load_as_before(classifier, regressor, X):
    # Older files lack the shortest-fit key; files exported with verify=False lack
    # the verification summary.
    model = runtime.load(_edited(classifier[0], {fmt.KEY_SHORTEST_FIT: None}))
    assert model.classes_.tolist() == ["down", "up"] and model.streaming
    assert model.predict(X).shape == (len(X),)
    assert fmt.KEY_VERIFIED not in {p.key for p in regressor[0].metadata_props}
    assert runtime.load(regressor[1]).predict(X).shape == (len(X),)
    # Class labels are the user's data: any text, shown escaped by info.
    labels = {fmt.KEY_CLASSES: '["\\u001b[31m", "b\\n"]', fmt.KEY_CLASSES_DTYPE: "<U5"}
    assert runtime.load(_edited(classifier[0], labels)).classes_.tolist() == ["\x1b[31m", "b\n"]


def test_info_prints_one_error_line_for_a_broken_file(classifier, tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(_edited(classifier[0], {fmt.KEY_VERIFIED: '{"max_abs_diff": "x"}'}))
    status, out, err = _info(path)
    assert (status, out) == (1, "")
    assert err.startswith("seqpipe: error: ") and "'seqpipe.verified'" in err
    assert err.count("\n") == 1


# --- fuzzing ------------------------------------------------------------------------
_CHARS = st.characters(codec="utf-8")  # control characters included; protobuf needs UTF-8
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(_CHARS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(_CHARS), inner, max_size=4),
    max_leaves=12,
).map(json.dumps)  # floats include NaN and Infinity, which json writes and the contract refuses
_CRAFTED = st.sampled_from(
    [
        "(10000,10000)f8",
        "<U999999",
        "|O",
        "<i8",
        "|b1",
        "-1",
        "0",
        "1e999",
        "2147483648",
        '["up", "down"]',
        '[{"input": "state_0_h", "output": "y", "shape": [1, "batch", 3]}]',
        '{"max_timesteps": 1}',
        "null",
        "",
    ]
)
_HUGE = st.tuples(st.sampled_from(["9", "[", '["a",', "{}", "\x1b"]), st.integers(0, 150_000)).map(
    lambda t: t[0] * t[1]
)
_KEYS = [
    fmt.KEY_FORMAT,
    fmt.KEY_VERSION,
    fmt.KEY_TASK,
    fmt.KEY_MODEL,
    fmt.KEY_ARCHITECTURE,
    fmt.KEY_N_FEATURES,
    fmt.KEY_OUTPUT_KIND,
    fmt.KEY_INPUTS,
    fmt.KEY_OUTPUTS,
    fmt.KEY_CLASSES,
    fmt.KEY_CLASSES_DTYPE,
    fmt.KEY_STREAMING,
    fmt.KEY_NETWORK,
    fmt.KEY_CUDA_UNSUPPORTED,
    fmt.KEY_VERIFIED,
    fmt.KEY_SHORTEST_FIT,
    fmt.KEY_QUANTIZATION,
]
#: A valid ``seqpipe.quantization`` value (optional key: int8 files have it).
_QUANTIZATION = json.dumps(
    {
        "dtype": "int8",
        "error": 0.01,
        "tolerance": 0.05,
        "max_abs_diff": 0.002,
        "sequences": 9,
        "nodes": {"DynamicQuantizeLSTM": 1},
        "data": "drawn",
        "class_agreement": 1.0,
    }
)
#: Changes a valid file may have (free text, optional keys), so some fuzzed files load.
_BENIGN = st.one_of(
    st.tuples(
        st.sampled_from([fmt.KEY_MODEL, fmt.KEY_VERSION, fmt.KEY_ARCHITECTURE]),
        st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1),
    ),
    st.tuples(st.just(fmt.KEY_SHORTEST_FIT), st.integers(1, 10**6).map(str)),
    st.tuples(st.sampled_from([fmt.KEY_VERIFIED, fmt.KEY_SHORTEST_FIT]), st.just(None)),
    st.tuples(st.just(fmt.KEY_QUANTIZATION), st.just(_QUANTIZATION)),
    st.tuples(st.just(fmt.KEY_CLASSES_DTYPE), st.sampled_from(["<U4", "<U50", "|O"])),
)
#: A change to one key: removed, replaced, or its current text edited at one place.
_CHANGE = st.one_of(
    _BENIGN,
    st.tuples(st.sampled_from(_KEYS), st.just(None)),
    st.tuples(
        st.sampled_from(_KEYS), st.one_of(st.text(_CHARS, max_size=30), _JSON, _CRAFTED, _HUGE)
    ),
    st.tuples(
        st.sampled_from(_KEYS),
        st.tuples(st.sampled_from(["drop", "insert", "replace"]), st.integers(0, 2000), _CHARS),
    ),
)
_FUZZ = settings(
    max_examples=80,
    deadline=timedelta(seconds=5),  # far above a normal load; catches runaway parsing
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _apply(model: onnx.ModelProto, changes) -> bytes:
    props = {p.key: p.value for p in model.metadata_props}
    edits: dict[str, str | None] = {}
    for key, change in changes:
        if isinstance(change, tuple):  # edit the current text at one place
            op, at, char = change
            text = edits.get(key, props.get(key)) or ""
            at = at % (len(text) + 1)
            if op == "insert":
                text = text[:at] + char + text[at:]
            else:
                text = text[:at] + ("" if op == "drop" else char) + text[at + 1 :]
            change = text
        edits[key] = change
    return _edited(model, edits)


def _check_outcome(data: bytes, path, X) -> runtime.OnnxSequenceModel | ValueError:
    """A loaded model that serves, or one ValueError; bounded memory; info agrees."""
    result, peak = _load_measured(data)
    event("refused" if isinstance(result, ValueError) else "loaded")  # --hypothesis-show-statistics
    assert peak < MEMORY_BOUND, f"load took {peak} bytes"
    if isinstance(result, ValueError):
        message = str(result)
        assert message.isprintable() and len(message) < 2000, message
    path.write_bytes(data)
    status, out, err = _info(path)
    if isinstance(result, ValueError):
        assert (status, out) == (1, "")
        assert err.startswith("seqpipe: error: ") and err.count("\n") == 1, err
    else:
        assert (status, err) == (0, "")
        assert all(line.isprintable() for line in out.splitlines()), out
    return result


@given(changes=st.lists(_CHANGE, min_size=1, max_size=3))
@_FUZZ
def test_any_metadata_loads_or_is_one_value_error(classifier, X, tmp_path_factory, changes):
    path = tmp_path_factory.getbasetemp() / "fuzzed_metadata.onnx"
    model = _check_outcome(_apply(classifier[0], changes), path, X)
    if isinstance(model, ValueError):
        return
    # A file that loads serves: the graph and the metadata agree, so onnxruntime
    # never sees input it rejects (our own checks may still refuse the input, e.g.
    # an edited max_timesteps).
    try:
        assert len(model.predict(X)) == len(X)
        assert model.predict_proba(X).shape == (len(X), len(model.classes_))
    except ValueError:
        pass
    if model.streaming:
        assert len(model.stream(batch_size=2).feed(X[:2])) == 2


@given(
    damage=st.one_of(
        st.tuples(st.just("cut"), st.floats(0, 1, exclude_max=True)),
        st.tuples(
            st.just("flip"),
            st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), max_size=8),
        ),
    )
)
@_FUZZ
def test_truncated_or_bit_flipped_files_load_or_are_one_value_error(
    classifier, X, tmp_path_factory, damage
):
    data = bytearray(classifier[1].read_bytes())
    kind, how = damage
    if kind == "cut":
        data = data[: int(how * len(data))]
    else:
        for where, bit in how:
            data[int(where * len(data))] ^= 1 << bit
    _check_outcome(bytes(data), tmp_path_factory.getbasetemp() / "fuzzed_bytes.onnx", X)
