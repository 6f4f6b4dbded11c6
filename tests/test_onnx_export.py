"""ONNX export: one parity suite over every architecture, output mode and pipeline
shape, then the pieces (lowering semantics, pipelines, errors, atomic writes,
metadata, streaming, fallback, GPU detection, skl2onnx).

Parity is checked with a bare ``onnxruntime.InferenceSession`` (not seqpipe's
runtime) against the Python object, at 3 batch sizes x 3 lengths (the longest
longer than training) plus a NaN-padded ragged batch.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from sklearn.compose import TransformedTargetRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    PolynomialFeatures,
    RobustScaler,
    StandardScaler,
)
from torch import nn

import seqpipe
from seqpipe import (
    ArchitectureSpec,
    LSTMClassifier,
    LSTMRegressor,
    LSTMTransformer,
    get_architecture,
    list_architectures,
    runtime,
)
from seqpipe.architectures.layout import parse_layers
from seqpipe.architectures.native_onnx import lower_layers
from seqpipe.architectures.padding import last_valid
from seqpipe.onnx import (
    UnsupportedModelError,
    VerificationError,
    cuda_incompatibilities,
    export,
)
from seqpipe.onnx.graph import GraphBuilder

try:
    from seqpipe.preprocessing import FeatureWiseTransformer, SequenceScaler
except ImportError:  # pragma: no cover - written concurrently
    SequenceScaler = FeatureWiseTransformer = None

N, T, F = 24, 6, 2
BATCHES, LENGTHS = (1, 3, 7), (1, 4, 15)  # 15 > T: longer than training
FAST = {"epochs": 1, "batch_size": 32, "random_state": 0}
QUICK_VERIFY = {"verify_batch_sizes": (1, 3), "verify_lengths": (1, 8)}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # Tiny models: with 2 threads torch's OpenMP workers spin against each other (and
    # against other processes), 10-30x slower here than with 1.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(mode: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, T, F)) * [1.0, 10.0] + [0.0, 50.0]
    signal = X[:, :, 0].sum(axis=1)
    y = {
        "single": 100 + 10 * signal,
        "vector": np.stack([100 + 10 * signal, 5 + signal], axis=1),
        "per_step": 2 + np.abs(np.cumsum(X[:, :, :1], axis=1)),
        "horizon": 1 + np.abs(X[:, -3:, :] + X[:, :3, :]),  # seq2seq: 3 steps x 2 targets
        "binary": np.where(signal > 0, "up", "down"),
        "multiclass": np.array(["low", "mid", "high"])[np.digitize(signal, [-1, 1])],
        "transform": None,
    }[mode]
    return X, y


def _estimator(mode: str, arch: str, params: dict):
    kwargs = {"architecture": arch, **FAST, **params}
    if mode in ("binary", "multiclass"):
        return LSTMClassifier(**kwargs)
    if mode == "transform":
        return LSTMTransformer(**kwargs)
    if mode == "horizon":
        return LSTMRegressor(head="seq2seq", **kwargs)
    return LSTMRegressor(**kwargs)


def _wrap(est, mode: str, shape: str):
    if shape == "pipeline":
        return make_pipeline(SequenceScaler(), est)
    if shape == "ttr":
        transformer = {
            "single": StandardScaler(),
            "vector": MinMaxScaler(),
            "per_step": FunctionTransformer(np.log1p, np.expm1),
            "horizon": FunctionTransformer(np.log, np.exp),
        }[mode]
        return TransformedTargetRegressor(est, transformer=transformer)
    return est


def _inputs(seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    cases = [
        (rng.normal(size=(b, t, F)) * [1.0, 10.0] + [0.0, 50.0]).astype(np.float32)
        for b in BATCHES
        for t in LENGTHS
    ]
    ragged = (rng.normal(size=(5, max(LENGTHS), F)) * [1.0, 10.0] + [0.0, 50.0]).astype(np.float32)
    lengths = np.array([max(LENGTHS), 1, 7, 2, max(LENGTHS) - 1])
    ragged[np.arange(max(LENGTHS))[None, :] >= lengths[:, None]] = np.nan
    return [*cases, ragged]


def assert_close(got: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> None:
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    diff = np.abs(np.nan_to_num(got - expected))
    assert (diff <= rtol * np.maximum(1.0, np.abs(np.nan_to_num(expected)))).all(), diff.max()


def _as_input(session: ort.InferenceSession, X: np.ndarray) -> np.ndarray:
    """``X`` in the type the file declares: float64 where float32 would lose precision
    (local scaling, the classifier's default), else float32."""
    wide = session.get_inputs()[0].type == "tensor(double)"
    return np.asarray(X, np.float64 if wide else np.float32)


def assert_parity(model, path) -> None:
    """Bare onnxruntime vs the Python object on every input of :func:`_inputs`."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for X in _inputs():
        out = dict(zip(names, session.run(None, {"X": _as_input(session, X)}), strict=True))
        if "probabilities" in out:
            proba = model.predict_proba(X)
            assert_close(out["probabilities"], proba)
            clear = np.ptp(np.sort(proba, axis=1)[:, -2:], axis=1) > 1e-3
            assert (out["label"][clear] == model.predict(X)[clear]).all()
        elif "features" in out:
            assert_close(out["features"], model.transform(X))
        else:
            assert_close(out["y"], model.predict(X))


MODES = ("single", "vector", "per_step", "horizon", "binary", "multiclass", "transform")
REGRESSION = ("single", "vector", "per_step", "horizon")
SHAPES = ("bare", "pipeline", "ttr")
CASES = [
    pytest.param(arch, params, mode, shape, id=f"{arch}-{i}-{mode}-{shape}")
    for arch in list_architectures()
    for i, params in enumerate(get_architecture(arch).test_params)
    for mode in MODES
    for shape in SHAPES
    if not (shape == "ttr" and mode not in REGRESSION)
    and not (shape == "pipeline" and SequenceScaler is None)
]


@pytest.mark.parametrize(("arch", "params", "mode", "shape"), CASES)
def test_parity_every_architecture_mode_and_pipeline(tmp_path, arch, params, mode, shape):
    X, y = _data(mode)
    model = _wrap(_estimator(mode, arch, params), mode, shape).fit(X, y)
    path = export(model, tmp_path / "model.onnx", verify=False)
    assert_parity(model, path)
    # The output has exactly the estimator's shape rule.
    expected = model.transform(X[:2]) if mode == "transform" else model.predict(X[:2])
    key = {"transform": "features", "binary": "label", "multiclass": "label"}.get(mode, "y")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.run([key], {"X": _as_input(session, X[:2])})[0].shape == expected.shape


# --- lowering semantics, for every feature a body may declare -------------------------
def _act(name: str, x: np.ndarray, alpha: float | None, beta: float | None) -> np.ndarray:
    if name == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "Tanh":
        return np.tanh(x)
    if name == "Relu":
        return np.maximum(x, 0)
    if name == "HardSigmoid":
        return np.clip(alpha * x + beta, 0, 1)
    if name == "Affine":
        return alpha * x + beta
    raise AssertionError(name)


def _reference(layer: dict, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """numpy recurrence (ONNX semantics) of one layer: (T, B, I) -> Y (T, D, B, H)."""
    op, hidden = layer["op"], layer["hidden_size"]
    dirs = 2 if layer.get("direction") == "bidirectional" else 1
    per_dir = {"LSTM": 3, "GRU": 2}[op]
    acts = layer["activations"]
    alphas, betas = layer.get("activation_alpha") or [], layer.get("activation_beta") or []
    T_, B_, _ = x.shape
    Y = np.zeros((T_, dirs, B_, hidden))
    for d in range(dirs):
        W, R, Bias = layer["W"][d], layer["R"][d], layer["B"][d]
        fs = [
            (
                acts[d * per_dir + k],
                *((alphas[d * per_dir + k], betas[d * per_dir + k]) if alphas else (None, None)),
            )
            for k in range(per_dir)
        ]
        f, g = (
            (lambda z, a=fs[0]: _act(a[0], z, a[1], a[2])),
            (lambda z, a=fs[1]: _act(a[0], z, a[1], a[2])),
        )
        for b in range(B_):
            h, c = np.zeros(hidden), np.zeros(hidden)
            steps = range(lengths[b]) if d == 0 else reversed(range(lengths[b]))
            for t in steps:
                if op == "LSTM":
                    z = W @ x[t, b] + R @ h + Bias[: 4 * hidden] + Bias[4 * hidden :]
                    zi, zo, zf, zc = np.split(z, 4)
                    P = layer.get("P")
                    pi, po, pf = np.split(P[d], 3) if P is not None else (0, 0, 0)
                    i = f(zi + pi * c)
                    fg = 1 - i if layer.get("input_forget") else f(zf + pf * c)
                    c = fg * c + i * g(zc)
                    o = f(zo + po * c)
                    h = o * _act(fs[2][0], c, fs[2][1], fs[2][2])
                else:
                    Wz, Wr, Wh = np.split(W, 3)
                    Rz, Rr, Rh = np.split(R, 3)
                    wbz, wbr, wbh, rbz, rbr, rbh = np.split(Bias, 6)
                    zt = f(Wz @ x[t, b] + Rz @ h + wbz + rbz)
                    rt = f(Wr @ x[t, b] + Rr @ h + wbr + rbr)
                    if layer.get("linear_before_reset"):
                        ht = g(Wh @ x[t, b] + rt * (Rh @ h + rbh) + wbh)
                    else:
                        ht = g(Wh @ x[t, b] + Rh @ (rt * h) + rbh + wbh)
                    h = (1 - zt) * ht + zt * h
                Y[t, d, b] = h
    return Y


def _random_layer(op: str, rng, bidirectional: bool = False, **extra) -> dict:
    hidden, inputs, dirs = 3, 2, 2 if bidirectional else 1
    gates = {"LSTM": 4, "GRU": 3}[op]
    layer = {
        "op": op,
        "hidden_size": hidden,
        "direction": "bidirectional" if bidirectional else "forward",
        "W": rng.normal(size=(dirs, gates * hidden, inputs)) * 0.5,
        "R": rng.normal(size=(dirs, gates * hidden, hidden)) * 0.5,
        "B": rng.normal(size=(dirs, 2 * gates * hidden)) * 0.1,
        "P": None,
        "activations": (["Sigmoid", "Tanh", "Tanh"] if op == "LSTM" else ["Sigmoid", "Tanh"])
        * dirs,
        "input_forget": 0,
        "linear_before_reset": 0,
    }
    layer.update(extra)
    if extra.get("P") == "random":
        layer["P"] = rng.normal(size=(dirs, 3 * hidden)) * 0.5
    return layer


LAYER_VARIANTS = {
    "peephole": ("LSTM", {"P": "random"}),
    "coupled_gate": ("LSTM", {"input_forget": 1}),
    "keras_relu": ("LSTM", {"activations": ["Sigmoid", "Relu", "Relu"]}),
    "hard_sigmoid_linear": (
        "LSTM",
        {
            "activations": ["HardSigmoid", "Affine", "Affine"],
            "activation_alpha": [0.2, 1.0, 1.0],
            "activation_beta": [0.5, 0.0, 0.0],
        },
    ),
    "gru_reset_after": ("GRU", {"linear_before_reset": 1}),
    "gru_reset_before": ("GRU", {"linear_before_reset": 0}),
}


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("variant", sorted(LAYER_VARIANTS))
def test_lowering_matches_onnx_semantics(variant, bidirectional):
    """Peepholes, coupled gate, custom activations with alpha/beta and both GRU reset
    orders, ragged and bidirectional, against a numpy recurrence."""
    rng = np.random.default_rng(0)
    op, extra = LAYER_VARIANTS[variant]
    if bidirectional and "activations" in extra:
        extra = {
            **extra,
            **{k: list(v) * 2 for k, v in extra.items() if k.startswith("activation")},
        }
    layer = _random_layer(op, rng, bidirectional, **extra)
    g = GraphBuilder()
    x = g.input("x", np.float32, ["batch", "time", 2])
    lengths = g.input("lengths", np.int32, ["batch"])
    lowered = lower_layers(parse_layers([layer]), g, x, lengths)
    g.output(lowered.sequence, np.float32, ["batch", "time", None], name="sequence")
    g.output(lowered.summary, np.float32, ["batch", None], name="summary")
    session = ort.InferenceSession(
        g.build().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    data = rng.normal(size=(4, 6, 2)).astype(np.float32)
    lens = np.array([6, 1, 4, 5], dtype=np.int32)
    sequence, summary = session.run(None, {"x": data, "lengths": lens})
    Y = _reference(layer, data.transpose(1, 0, 2), lens)
    expected_seq = Y.transpose(2, 0, 1, 3).reshape(4, 6, -1)
    valid = np.arange(6)[None, :] < lens[:, None]
    np.testing.assert_allclose(sequence[valid], expected_seq[valid], atol=1e-5)
    last = expected_seq[np.arange(4), lens - 1, :3]
    expected_summary = (
        np.concatenate([last, expected_seq[:, 0, 3:]], axis=1) if bidirectional else last
    )
    np.testing.assert_allclose(summary, expected_summary, atol=1e-5)


def test_lowering_rejects_malformed_layers():
    rng = np.random.default_rng(0)
    layer = _random_layer("LSTM", rng)
    with pytest.raises(ValueError, match=r"W has shape .*, expected \(1, 12, 5\)|R has shape"):
        parse_layers([{**layer, "R": np.zeros((1, 12, 4))}])
    with pytest.raises(ValueError, match="op must be one of"):
        parse_layers([{**layer, "op": "Transformer"}])
    with pytest.raises(ValueError, match=r"peepholes .* only for op 'LSTM'"):
        parse_layers([{**_random_layer("GRU", rng), "P": np.zeros((1, 9))}])
    with pytest.raises(ValueError, match="previous layer produces 3"):
        parse_layers([layer, layer | {"W": np.zeros((1, 12, 7))}])


# --- pipelines and target transforms --------------------------------------------------
@pytest.mark.skipif(FeatureWiseTransformer is None, reason="seqpipe.preprocessing missing")
@pytest.mark.parametrize(
    "scaler",
    [
        StandardScaler(),
        MinMaxScaler(clip=True),
        RobustScaler(),
        MaxAbsScaler(),
        StandardScaler(with_mean=False),
    ],
    ids=lambda s: repr(s),
)
def test_featurewise_scalers_and_chains(tmp_path, scaler):
    X, y = _data("single")
    pipe = make_pipeline(
        FeatureWiseTransformer(scaler), SequenceScaler(), LSTMRegressor(hidden_size=5, **FAST)
    ).fit(X, y)
    assert_parity(pipe, export(pipe, tmp_path / "m.onnx", **QUICK_VERIFY))


@pytest.mark.parametrize(
    "params",
    [
        {"activation": "relu"},
        {"activation": None, "recurrent_activation": "hard_sigmoid", "bidirectional": True},
        {"architecture": "gru", "activation": "relu", "num_layers": 2},
    ],
    ids=["lstm-relu", "lstm-linear-hard_sigmoid-bi", "gru-relu-stacked"],
)
def test_keras_activation_cells_export_natively(tmp_path, params):
    pytest.importorskip("seqpipe.architectures.cells")
    X, y = _data("single")
    est = LSTMRegressor(hidden_size=5, **FAST, **params).fit(X, y)
    path = export(est, tmp_path / "keras.onnx", **QUICK_VERIFY)
    assert json.loads(runtime.load(path).metadata["seqpipe.cuda_unsupported"])
    assert_parity(est, path)


def test_ttr_with_functions_and_1d_column_target(tmp_path):
    X, y = _data("single")
    ttr = TransformedTargetRegressor(
        LSTMRegressor(hidden_size=5, **FAST), func=np.log, inverse_func=np.exp
    ).fit(X, np.abs(y) + 1)
    assert_parity(ttr, export(ttr, tmp_path / "log.onnx", **QUICK_VERIFY))
    column = TransformedTargetRegressor(
        LSTMRegressor(hidden_size=5, **FAST), transformer=StandardScaler()
    ).fit(X, y[:, None])
    assert column.predict(X[:2]).shape == (2, 1)
    assert_parity(column, export(column, tmp_path / "col.onnx", **QUICK_VERIFY))


def test_unsupported_steps_name_what_is_supported(tmp_path):
    X, y = _data("single")
    est = LSTMRegressor(hidden_size=4, **FAST)
    with pytest.raises(UnsupportedModelError, match=r"SequenceScaler.*MinMaxScaler"):
        export(
            Pipeline([("poly", FunctionTransformer(np.abs)), ("m", est)]).fit(X, y),
            tmp_path / "x.onnx",
        )
    if FeatureWiseTransformer is not None:
        pipe = make_pipeline(FeatureWiseTransformer(PolynomialFeatures(1, include_bias=False)), est)
        with pytest.raises(
            UnsupportedModelError, match=r"FeatureWiseTransformer\(PolynomialFeatures\)"
        ):
            export(pipe.fit(X, y), tmp_path / "x.onnx")
    ttr = TransformedTargetRegressor(est, func=np.cbrt, inverse_func=np.power, check_inverse=False)
    with pytest.raises(UnsupportedModelError, match=r"numpy\.\{exp, log"):
        export(ttr.fit(X, y), tmp_path / "x.onnx")
    with pytest.raises(UnsupportedModelError, match="final estimator must be one of"):
        export(make_pipeline(StandardScaler()).fit(X[:, 0], y), tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


# --- metadata, atomic writes ----------------------------------------------------------
def test_metadata_describes_inputs_outputs_and_task(tmp_path):
    X, y = _data("multiclass")
    clf = LSTMClassifier(hidden_size=4, **FAST).fit(X, y)
    path = export(clf, tmp_path / "clf.onnx", **QUICK_VERIFY)
    model = onnx.load(path)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["seqpipe.format"] == "1" and meta["seqpipe.version"] == seqpipe.__version__
    assert meta["seqpipe.task"] == "classification"
    assert meta["seqpipe.architecture"] == "lstm" and meta["seqpipe.n_features"] == str(F)
    assert json.loads(meta["seqpipe.classes"]) == clf.classes_.tolist()
    inputs = json.loads(meta["seqpipe.inputs"])
    assert inputs[0]["name"] == "X" and inputs[0]["shape"] == ["batch", "time", F]
    assert [o["name"] for o in json.loads(meta["seqpipe.outputs"])] == ["label", "probabilities"]
    assert json.loads(meta["seqpipe.verified"])["max_abs_diff"] < 1e-4
    assert json.loads(meta["seqpipe.cuda_unsupported"]) == []
    # Native nodes, dynamic axes, an IR version onnxruntime reads.
    assert "LSTM" in {n.op_type for n in model.graph.node}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "time", F]
    assert model.ir_version <= 10
    label = model.graph.output[0].type.tensor_type.elem_type
    assert label == onnx.TensorProto.STRING


class _Sabotaged(LSTMRegressor):
    """predict disagrees with the network, as a broken export would."""

    def predict(self, X):
        return super().predict(X) + 1.0


def test_failed_verification_keeps_old_file_and_leaves_no_temp(tmp_path):
    X, y = _data("single")
    good = LSTMRegressor(hidden_size=4, **FAST).fit(X, y)
    path = export(good, tmp_path / "m.onnx", **QUICK_VERIFY)
    before = path.read_bytes()
    bad = _Sabotaged(hidden_size=4, **FAST).fit(X, y)
    with pytest.raises(VerificationError, match=r"nothing was written.*differs .* by up to 1 "):
        export(bad, path, **QUICK_VERIFY)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.onnx"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export(good, tmp_path / "missing" / "m.onnx")


def test_write_failure_removes_temp_file(tmp_path, monkeypatch):
    X, y = _data("single")
    est = LSTMRegressor(hidden_size=4, **FAST).fit(X, y)

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        export(est, tmp_path / "m.onnx", verify=False)
    assert os.listdir(tmp_path) == []


# --- streaming ------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("mode", ["single", "per_step", "binary", "transform"])
def test_streaming_export_equals_full_window(tmp_path, arch, mode):
    X, y = _data(mode)
    # local_scaling=None: the classifier scales each window by default, which a stream cannot.
    params = {"hidden_size": 5, "num_layers": 2, "local_scaling": None}
    est = _estimator(mode, arch, params).fit(X, y)
    path = export(est, tmp_path / "s.onnx", streaming=True, **QUICK_VERIFY)
    model = runtime.load(path)
    assert [s["input"] for s in model.states][:2] == (
        ["state_0_h", "state_0_c"] if arch == "lstm" else ["state_0_h", "state_1_h"]
    )
    window = X[:3]
    stream = model.stream(batch_size=3)
    outs = [stream.step(window[:, t]) for t in range(T)]
    if mode == "per_step":
        assert_close(np.stack(outs, axis=1), est.predict(window))
    elif mode == "binary":
        assert_close(stream.outputs["probabilities"], est.predict_proba(window))
    elif mode == "transform":
        assert_close(outs[-1], est.transform(window))
    else:
        assert_close(outs[-1], est.predict(window))
    # A batch predict on the streaming file starts from zero state.
    expected = est.transform(window) if mode == "transform" else est.predict(window)
    got = model.transform(window) if mode == "transform" else model.predict(window)
    assert_close(got, expected) if mode != "binary" else np.testing.assert_array_equal(
        got, expected
    )


def test_streaming_refuses_bidirectional(tmp_path):
    X, y = _data("single")
    est = LSTMRegressor(hidden_size=4, bidirectional=True, **FAST).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="causal"):
        export(est, tmp_path / "s.onnx", streaming=True)
    assert not list(tmp_path.iterdir())


# --- architectures without a lowering: torch.onnx.export, then verification -----------
class _GRUBody(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.rnn = nn.GRU(config.input_size, config.hidden_size, batch_first=True)
        self.output_size = config.hidden_size

    def forward(self, x, lengths=None):
        out, _ = self.rnn(x)
        return out, last_valid(out, lengths)


class _UnrolledBody(_GRUBody):
    """A Python loop over time steps: traced unrolled, wrong at other lengths."""

    def __init__(self, config):
        super().__init__(config)
        self.cell = nn.GRUCell(config.input_size, config.hidden_size)

    def forward(self, x, lengths=None):
        h = x.new_zeros(x.shape[0], self.output_size)
        outs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(h)
        out = torch.stack(outs, 1)
        return out, last_valid(out, lengths)


class _FallbackPlugin:
    @seqpipe.hookimpl
    def seqpipe_architectures(self):
        return [
            ArchitectureSpec("test_plain_gru", _GRUBody),
            ArchitectureSpec("test_unrolled_gru", _UnrolledBody),
        ]


@pytest.fixture
def fallback_plugin():
    name = seqpipe.register_plugin(_FallbackPlugin(), name="test-onnx-fallback")
    yield
    seqpipe.unregister_plugin(name)


def test_fallback_exports_verified_body(tmp_path, fallback_plugin):
    X, y = _data("single")
    est = LSTMRegressor("test_plain_gru", hidden_size=5, **FAST).fit(X, y)
    path = export(est, tmp_path / "f.onnx", **QUICK_VERIFY)
    assert (
        json.loads(runtime.load(path).metadata["seqpipe.network"])["lowering"]
        == "torch.onnx.export"
    )
    assert_parity(est, path)


def test_fallback_of_unrolled_loop_fails_verification(tmp_path, fallback_plugin):
    X, y = _data("single")
    est = LSTMRegressor("test_unrolled_gru", hidden_size=5, **FAST).fit(X, y)
    with pytest.raises((VerificationError, RuntimeError)):
        export(est, tmp_path / "f.onnx", **QUICK_VERIFY)
    assert not list(tmp_path.iterdir())


# --- GPU: detection only (no GPU here) ------------------------------------------------
@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("peephole", "LSTM peepholes (P)"),
        ("coupled_gate", "input_forget=1"),
        ("keras_relu", "activations"),
        ("hard_sigmoid_linear", "activation_alpha/beta"),
        ("gru_reset_before", "linear_before_reset=0"),
        ("gru_reset_after", None),
    ],
)
def test_cuda_incompatibilities_detects_what_cudnn_ignores(variant, expected):
    op, extra = LAYER_VARIANTS[variant]
    g = GraphBuilder()
    x = g.input("x", np.float32, ["batch", "time", 2])
    lowered = lower_layers(
        parse_layers([_random_layer(op, np.random.default_rng(0), **extra)]), g, x, None
    )
    g.output(lowered.summary, np.float32, ["batch", 3], name="s")
    found = cuda_incompatibilities(g.build())
    if expected is None:
        assert found == []
    else:
        assert any(expected in item for item in found), found


def test_builtin_models_are_cuda_compatible(tmp_path):
    X, y = _data("single")
    for arch in ("lstm", "gru", "rnn"):
        est = LSTMRegressor(arch, hidden_size=4, **FAST).fit(X, y)
        path = export(est, tmp_path / f"{arch}.onnx", verify=False)
        assert cuda_incompatibilities(onnx.load(path)) == []


# --- skl2onnx interop -----------------------------------------------------------------
def test_skl2onnx_converts_seqpipe_steps():
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    from seqpipe.onnx import register_skl2onnx_converters

    register_skl2onnx_converters()
    X, y = _data("multiclass")
    X32 = X.astype(np.float32)
    types = [("X", FloatTensorType([None, None, F]))]
    tiny_fcn = {"architecture_options": {"filters": (4, 4, 4)}, "hidden_size": 3, **FAST}
    models = [
        LSTMClassifier(hidden_size=4, **FAST).fit(X, y),
        LSTMRegressor(hidden_size=4, **FAST).fit(X, _data("single")[1]),
        LSTMClassifier("lstm_fcn", **tiny_fcn).fit(X, y),
        LSTMRegressor("mlstm_fcn", **{**tiny_fcn, "local_scaling": "standard"}).fit(
            X, _data("vector")[1]
        ),
    ]
    if SequenceScaler is not None:
        models.append(
            make_pipeline(SequenceScaler(), LSTMRegressor(hidden_size=4, **FAST)).fit(
                X, _data("vector")[1]
            )
        )
        models.append(
            make_pipeline(
                FeatureWiseTransformer(MinMaxScaler()), LSTMTransformer(hidden_size=4, **FAST)
            ).fit(X)
        )
    for model in models:
        onx = skl2onnx.to_onnx(model, initial_types=types)
        session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
        for data in (X32[:3], X32[:5, :2]):
            got = session.run(None, {"X": data})
            if hasattr(model, "predict_proba"):
                assert_close(got[1], model.predict_proba(data))
                assert (got[0] == model.predict(data)).all()
            elif hasattr(model, "transform"):
                assert_close(got[0], model.transform(data))
            else:
                assert_close(got[0], model.predict(data))
    # A pipeline that goes on after the encoder: skl2onnx converts the rest.
    from sklearn.linear_model import Ridge

    pipe = make_pipeline(LSTMTransformer(hidden_size=4, **FAST), Ridge()).fit(X, _data("single")[1])
    onx = skl2onnx.to_onnx(pipe, initial_types=types)
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    assert_close(session.run(None, {"X": X32[:4]})[0].ravel(), pipe.predict(X32[:4]))
    # The sample-array form works too (length fixed by the sample).
    onx = skl2onnx.to_onnx(models[1], X32[:1])
    assert {n.op_type for n in onx.graph.node} >= {"LSTM"}
    assert all(i for n in onx.graph.node for i in n.input)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([0, 5, 7]),
        np.array([False, True]),
        np.array([1.0, 2.0]),
        np.array(["a", "bb"], dtype=object),
    ],
    ids=["int", "bool", "float", "object-str"],
)
def test_class_labels_of_every_dtype(tmp_path, labels):
    X, _ = _data("single")
    y = labels[np.arange(N) % len(labels)]
    clf = LSTMClassifier(hidden_size=4, **FAST).fit(X, y)
    model = runtime.load(export(clf, tmp_path / "c.onnx", **QUICK_VERIFY))
    got, expected = model.predict(X[:6]), clf.predict(X[:6])
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("opset", [14, 17, 21])
def test_other_opsets(tmp_path, opset):
    X, y = _data("per_step")
    est = LSTMRegressor(hidden_size=4, bidirectional=True, **FAST).fit(X, y)
    path = export(est, tmp_path / "m.onnx", opset=opset, **QUICK_VERIFY)
    assert onnx.load(path).opset_import[0].version == opset
    assert_parity(est, path)
    with pytest.raises(ValueError, match="opset=9 is not supported"):
        export(est, tmp_path / "old.onnx", opset=9)


def test_filled_optional_inputs_compute_the_same():
    """skl2onnx mode: every omitted optional recurrent input gets a real name."""
    rng = np.random.default_rng(0)
    layer = _random_layer("LSTM", rng, P="random")
    data = rng.normal(size=(3, 5, 2)).astype(np.float32)
    results = []
    for fill in (False, True):
        g = GraphBuilder()
        g.keep_optional_outputs = fill
        x = g.input("x", np.float32, ["batch", "time", 2])
        lowered = lower_layers(parse_layers([layer]), g, x, None, fill_optional_inputs=fill)
        g.output(lowered.summary, np.float32, ["batch", 3], name="s")
        model = g.build()
        recurrent = next(n for n in model.graph.node if n.op_type == "LSTM")
        assert all(recurrent.input) == fill
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        results.append(session.run(None, {"x": data})[0])
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)


def test_input_scaling_folds_into_weights_unless_precision_would_suffer(tmp_path):
    X, y = _data("single")
    ops, inputs = {}, {}
    for name, offset in (("folded", 0.0), ("explicit", 1e5)):
        data = X + np.array([0.0, offset])  # feature 1: mean 50 (+1e5), spread 10
        est = LSTMRegressor(hidden_size=5, **FAST).fit(data, y)
        path = export(est, tmp_path / f"{name}.onnx", **QUICK_VERIFY)
        graph = onnx.load(path).graph
        ops[name] = [n.op_type for n in graph.node]
        inputs[name] = graph.input[0].type.tensor_type.elem_type
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        # Far from zero, X enters as float64: float32 would lose what the scaling keeps.
        dtype = np.float32 if offset == 0 else np.float64
        ragged = (_inputs()[-1] + np.array([0, offset])).astype(dtype)
        assert_close(session.run(None, {"X": ragged})[0], est.predict(ragged))
    assert "Sub" not in ops["folded"] and "Div" not in ops["folded"]
    assert {"Sub", "Div"} <= set(ops["explicit"])
    assert inputs == {"folded": onnx.TensorProto.FLOAT, "explicit": onnx.TensorProto.DOUBLE}
