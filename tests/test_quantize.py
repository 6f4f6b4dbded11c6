"""int8 export: ``export(..., quantize="int8")`` and ``seqpipe export --quantize int8``.

Two kinds of tests:

* facts about onnxruntime the exporter relies on, checked on single nodes: its
  ``DynamicQuantizeLSTM`` honours peepholes, the coupled gate, activations and
  ``clip`` (so those are exported, not refused), and it has no int8 GRU or RNN
  kernel (so those are refused). If a future onnxruntime changes either, these
  fail and the exporter's rules must change with them;
* the export itself: quantized files load in ``seqpipe.runtime`` with their measured
  error in the metadata and in ``seqpipe info``, refused models and options raise
  a clear error, and a budget that is too tight writes nothing.
"""

from __future__ import annotations

import json
import logging
import os

import joblib
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer, runtime
from seqpipe import _format as fmt
from seqpipe.cli import main
from seqpipe.onnx import QuantizationError, UnsupportedModelError, VerificationError, export
from seqpipe.onnx._quantize import quantize_int8

#: Fewer verification shapes: these tests are about quantization, not parity.
QUICK = {"verify_batch_sizes": (1, 8), "verify_lengths": (3, 12)}
HIDDEN = 8


def _data(n=80, t=12, f=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, t, f))
    return X, np.tanh(X[:, -4:, 0].sum(axis=1)) + 0.5 * X[:, :, 1].mean(axis=1)


def _ops(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _temp_files(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


# --- what onnxruntime's int8 kernels do (single nodes) -------------------------------
H, F, T, N = 16, 4, 12, 64


def _lstm_node_model(**features) -> onnx.ModelProto:
    """One LSTM node with random weights and the given features."""
    rng = np.random.default_rng(1)
    initializers = [
        numpy_helper.from_array(rng.normal(0, 0.5, (1, 4 * H, F)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(0, 0.3, (1, 4 * H, H)).astype(np.float32), "R"),
        numpy_helper.from_array(rng.normal(0, 0.2, (1, 8 * H)).astype(np.float32), "B"),
    ]
    inputs = ["x", "W", "R", "B"]
    if features.pop("peepholes", False):
        initializers.append(
            numpy_helper.from_array(rng.normal(0, 1.0, (1, 3 * H)).astype(np.float32), "P")
        )
        inputs += ["", "", "", "P"]
    node = helper.make_node("LSTM", inputs, ["Y"], hidden_size=H, **features)
    graph = helper.make_graph(
        [node],
        "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["time", "batch", F])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run_node(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # a dropped P initializer is logged, and that is the point
    return ort.InferenceSession(model.SerializeToString(), options).run(None, {"x": x})[0]


#: (feature, the same node without it). Keras' hard_sigmoid and linear use alpha/beta.
NODE_FEATURES = {
    "peepholes": ({"peepholes": True}, {}),
    "input_forget": ({"input_forget": 1}, {"input_forget": 0}),
    "activations": (
        {
            "activations": ["HardSigmoid", "Relu", "Affine"],
            "activation_alpha": [1 / 6, 1.0],
            "activation_beta": [0.5, 0.0],
        },
        {},
    ),
    "hard_sigmoid_alpha": (
        {"activations": ["HardSigmoid", "Tanh", "Tanh"], "activation_alpha": [1 / 6]},
        {"activations": ["HardSigmoid", "Tanh", "Tanh"], "activation_alpha": [0.2]},
    ),
    "clip": ({"clip": 0.5}, {}),
}


@pytest.mark.parametrize("feature", sorted(NODE_FEATURES))
def test_dynamic_quantize_lstm_honours(feature):
    """The int8 node tracks the float node *with* the feature, far from the one without."""
    with_feature, without = NODE_FEATURES[feature]
    x = np.random.default_rng(2).normal(size=(T, N, F)).astype(np.float32)
    model = _lstm_node_model(**with_feature)
    quantized = quantize_int8(model)
    assert [n.op_type for n in quantized.graph.node if "LSTM" in n.op_type] == [
        "DynamicQuantizeLSTM"
    ]
    expected, got = _run_node(model, x), _run_node(quantized, x)
    other = _run_node(_lstm_node_model(**without), x)
    error = np.sqrt(np.mean((got - expected) ** 2))
    assert error / expected.std() < 0.05
    # Were the feature ignored, the int8 node would sit on the other one (a ratio near 1).
    assert np.sqrt(np.mean((got - other) ** 2)) > 4 * error


@pytest.mark.parametrize("op", ["GRU", "RNN"])
def test_onnxruntime_has_no_int8_kernel_for(op):
    """Why GRU and RNN are refused: no such contrib op, and the quantizer leaves them float."""
    node = helper.make_node(f"DynamicQuantize{op}", ["x", "W", "R"], ["Y"], domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(np.zeros((1, 3, 12), np.int8), "W"),
            numpy_helper.from_array(np.zeros((1, 4, 12), np.int8), "R"),
        ],
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    with pytest.raises(Exception, match="not a registered function/op"):
        ort.InferenceSession(helper.make_model(graph, opset_imports=opsets).SerializeToString())
    gates = {"GRU": 3, "RNN": 1}[op]
    rng = np.random.default_rng(0)
    float_node = helper.make_graph(
        [helper.make_node(op, ["x", "W", "R"], ["Y"], hidden_size=4)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(rng.normal(size=(1, 4 * gates, 3)).astype(np.float32), "W"),
            numpy_helper.from_array(rng.normal(size=(1, 4 * gates, 4)).astype(np.float32), "R"),
        ],
    )
    with pytest.raises(UnsupportedModelError, match=f"left the recurrent node.*{op}"):
        quantize_int8(helper.make_model(float_node, opset_imports=opsets[:1]))


# --- the export ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def regressor():
    X, y = _data()
    return LSTMRegressor(hidden_size=HIDDEN, epochs=15, random_state=0).fit(X, y), X


@pytest.fixture(scope="module")
def classifier():
    X, y = _data(seed=1)
    labels = np.where(y > np.median(y), "high", "low")
    return LSTMClassifier(hidden_size=HIDDEN, epochs=15, random_state=0).fit(X, labels), X


def test_int8_regressor_loads_and_records_its_error(regressor, tmp_path, caplog):
    est, X = regressor
    with caplog.at_level(logging.WARNING):
        path = export(est, tmp_path / "q.onnx", quantize="int8", **QUICK)
    assert not caplog.records  # no advice from the quantizer on every export
    assert "DynamicQuantizeLSTM" in _ops(path) and "LSTM" not in _ops(path)
    assert "MatMulInteger" in _ops(path)  # the head's Gemm
    model = runtime.load(path)
    q = model.quantization
    assert q["dtype"] == "int8" and q["tolerance"] == 0.05 and q["data"] == "drawn"
    assert 0 < q["error"] <= 0.05
    assert q["nodes"] == {"DynamicQuantizeLSTM": 1, "MatMulInteger": 1}
    assert "class_agreement" not in q
    assert "onnx.infer" not in model.metadata  # the quantizer's marker is dropped
    # Independently of the recorded figure: close to the estimator, but not equal.
    expected, got = est.predict(X), model.predict(X)
    assert 0 < np.sqrt(np.mean((got - expected) ** 2)) / expected.std() < 0.05
    assert runtime.load(export(est, tmp_path / "f.onnx", **QUICK)).quantization is None


def test_int8_classifier_reports_class_agreement(classifier, tmp_path, capsys):
    clf, X = classifier
    path = export(clf, tmp_path / "c.onnx", quantize="int8", quantize_data=X, **QUICK)
    model = runtime.load(path)
    q = model.quantization
    assert q["data"] == "given" and q["sequences"] == len(X) and q["output"] == "probabilities"
    agreement = np.mean(model.predict(X) == clf.predict(X))
    assert q["class_agreement"] == pytest.approx(agreement) and agreement >= 0.95
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "quantized:     int8 (DynamicQuantizeLSTM x1, MatMulInteger x1)" in out
    assert f"int8 error:    RMS {q['error']:.2%} of the float32 output's std" in out
    assert f"on {len(X)} given sequences" in out
    assert f"int8 classes:  {agreement:.2%} agree with float32" in out
    assert "verified:      float32 graph: max abs diff" in out


def test_int8_lstm_fcn_keeps_convolutions_float(tmp_path):
    """ConvInteger is slower than onnxruntime's float Conv: only the LSTM and head go int8."""
    X, y = _data(n=40, t=16)
    clf = LSTMClassifier(
        architecture="lstm_fcn",
        hidden_size=4,
        epochs=3,
        random_state=0,
        architecture_options={"filters": (8, 8, 8), "kernel_sizes": (3, 3, 3)},
    ).fit(X, y > 0)
    path = export(clf, tmp_path / "fcn.onnx", quantize="int8", quantize_data=X, **QUICK)
    assert {"Conv", "DynamicQuantizeLSTM", "MatMulInteger"} <= _ops(path)
    assert "ConvInteger" not in _ops(path)
    assert runtime.load(path).quantization["class_agreement"] >= 0.9


@pytest.mark.parametrize(
    "params",
    [
        {"architecture": "peephole_lstm"},
        {
            "architecture": "cifg_lstm",
            "activation": "softsign",
            "recurrent_activation": "hard_sigmoid",
        },
    ],
    ids=["peephole", "cifg-keras-activations"],
)
def test_int8_lstm_variants_are_supported(params, tmp_path):
    X, y = _data()
    est = LSTMRegressor(hidden_size=HIDDEN, epochs=10, random_state=0, **params).fit(X, y)
    path = export(est, tmp_path / "v.onnx", quantize="int8", quantize_data=X, **QUICK)
    assert "DynamicQuantizeLSTM" in _ops(path)
    assert runtime.load(path).quantization["error"] <= 0.05


def test_int8_streaming_file_streams(regressor, tmp_path):
    est, X = regressor
    model = runtime.load(export(est, tmp_path / "s.onnx", quantize="int8", streaming=True, **QUICK))
    stream = model.stream(batch_size=4)
    for t in range(X.shape[1]):
        stepped = stream.step(X[:4, t])
    expected = est.predict(X[:4])
    assert np.sqrt(np.mean((stepped - expected) ** 2)) / est.predict(X).std() < 0.1


def test_int8_encoder_decoder_and_transformer(tmp_path):
    """Every output kind with LSTM nodes quantizes: a horizon (the decoder too), features."""
    X, y = _data(n=60)
    horizon = np.stack([y, np.roll(y, 1), 0.5 * y], axis=1)
    s2s = LSTMRegressor(head="seq2seq", hidden_size=HIDDEN, epochs=10, random_state=0)
    path = export(s2s.fit(X, horizon), tmp_path / "s2s.onnx", quantize="int8", **QUICK)
    assert runtime.load(path).quantization["nodes"]["DynamicQuantizeLSTM"] == 2
    assert runtime.load(path).predict(X).shape == (len(X), 3)
    encoder = LSTMTransformer(hidden_size=HIDDEN, epochs=5, random_state=0).fit(X, y)
    path = export(encoder, tmp_path / "t.onnx", quantize="int8", quantize_data=X, **QUICK)
    model = runtime.load(path)
    assert model.quantization["output"] == "features" and model.transform(X).shape == (60, 8)


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"architecture": "gru"}, "GRU"),
        ({"architecture": "rnn"}, "RNN"),
        (
            {
                "architecture": "lstm_fcn",
                "architecture_options": {"recurrent": "gru", "filters": (4, 4, 4)},
            },
            "GRU",
        ),
    ],
    ids=["gru", "rnn", "gru_fcn"],
)
def test_int8_refuses_recurrent_layers_without_an_int8_kernel(params, kind, tmp_path):
    X, y = _data(n=16)
    est = LSTMRegressor(hidden_size=4, epochs=1, random_state=0, **params).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=f"cannot quantize this model's {kind} nodes"):
        export(est, tmp_path / "r.onnx", quantize="int8", **QUICK)
    assert os.listdir(tmp_path) == []


def test_too_tight_budget_raises_and_keeps_the_existing_file(regressor, tmp_path):
    est, _ = regressor
    path = export(est, tmp_path / "m.onnx", **QUICK)
    before = path.read_bytes()
    with pytest.raises(QuantizationError, match=r"exceeds the error budget") as caught:
        export(est, path, quantize="int8", quantize_tolerance=1e-6, **QUICK)
    assert isinstance(caught.value, (ValueError, VerificationError))
    assert "quantize_tolerance=1e-06" in str(caught.value)
    assert "nothing was written: measured error" in str(caught.value)
    assert path.read_bytes() == before and _temp_files(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantize": "int4"}, "quantize must be None or one of 'int8'; got 'int4'"),
        ({"quantize": "int8", "quantize_tolerance": 0}, "quantize_tolerance must be a positive"),
        ({"quantize": "int8", "quantize_tolerance": float("nan")}, "positive finite"),
        ({"quantize": "int8", "quantize_tolerance": True}, "positive finite"),
        ({"quantize_data": np.zeros((2, 3, 2))}, "quantize_data is only used with"),
        (
            {"quantize": "int8", "quantize_data": np.zeros((2, 3, 5))},
            "quantize_data is not valid input for this model: .*5 features",
        ),
        ({"quantize": "int8", "quantize_data": np.zeros((0, 3, 2))}, "holds no sequences"),
    ],
    ids=["dtype", "zero", "nan", "bool", "data-alone", "data-features", "data-empty"],
)
def test_bad_quantize_options_are_clear_errors(regressor, tmp_path, kwargs, message):
    est, _ = regressor
    with pytest.raises(ValueError, match=message):
        export(est, tmp_path / "m.onnx", **kwargs, **QUICK)
    assert os.listdir(tmp_path) == []


def test_malformed_quantization_metadata_is_refused(regressor, tmp_path):
    est, _ = regressor
    proto = onnx.load(str(export(est, tmp_path / "q.onnx", quantize="int8", **QUICK)))
    for entry in proto.metadata_props:
        if entry.key == fmt.KEY_QUANTIZATION:
            value = json.loads(entry.value)
            entry.value = json.dumps({**value, "class_agreement": 1.5})
    with pytest.raises(ValueError, match=f"metadata '{fmt.KEY_QUANTIZATION}' must be"):
        runtime.load(proto.SerializeToString())


def test_cli_exports_int8_and_keeps_the_target_on_a_tight_budget(classifier, tmp_path, capsys):
    clf, X = classifier
    joblib.dump(clf, tmp_path / "m.joblib")
    np.save(tmp_path / "X.npy", X)
    target = tmp_path / "m.onnx"
    argv = ["export", str(tmp_path / "m.joblib"), str(target), "--quantize", "int8"]
    assert main([*argv, "--quantize-data", str(tmp_path / "X.npy")]) == 0
    assert runtime.load(target).quantization["sequences"] == len(X)
    before = target.read_bytes()
    capsys.readouterr()
    assert main([*argv, "--quantize-tolerance", "1e-6"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("seqpipe: error: int8 export") and err.count("\n") == 1
    assert "measured error" in err and target.read_bytes() == before
    assert main(["export", str(tmp_path / "m.joblib"), str(target), "--quantize-data", "x"]) == 1
    assert "--quantize-data is only used with --quantize int8" in capsys.readouterr().err
