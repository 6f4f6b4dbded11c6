"""The hand-written LSTM/GRU cells: equations, padding, gradients, ONNX layout, plugins."""

from __future__ import annotations

import pickle

import numpy as np
import onnxruntime as ort
import pytest
import torch
from numpy.testing import assert_allclose
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import seqpipe
from seqpipe import BodyConfig, LSTMRegressor
from seqpipe.architectures import NATIVE_RECURRENT, activation_name
from seqpipe.architectures.activations import ACTIVATIONS
from seqpipe.architectures.cells import CustomGRU, CustomLSTM, build_custom
from seqpipe.architectures.layout import ONNX_ACTIVATIONS

# --- an independent numpy reference of the equations --------------------------------

NP_ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),  # Keras 3: relu6(x + 3) / 6
    "relu": lambda x: np.maximum(x, 0),
    "linear": lambda x: x,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def ref_lstm_direction(x, p, act, ract, *, peephole, cifg, h0=None, c0=None):
    """One sequence ``x (T, F)``; ``p`` holds torch-named numpy weights of one direction."""
    a, s = NP_ACTIVATIONS[act], NP_ACTIVATIONS[ract]
    hidden = p["weight_hh"].shape[1]
    h = np.zeros(hidden) if h0 is None else h0
    c = np.zeros(hidden) if c0 is None else c0
    names = ["i", "g", "o"] if cifg else ["i", "f", "g", "o"]
    w = dict(zip(names, np.split(p["weight_ih"], len(names)), strict=True))
    r = dict(zip(names, np.split(p["weight_hh"], len(names)), strict=True))
    b = dict(zip(names, np.split(p["bias_ih"] + p["bias_hh"], len(names)), strict=True))
    peep_names = ["i", "o"] if cifg else ["i", "f", "o"]
    peeps = dict(zip(peep_names, p["peephole"], strict=True)) if peephole else {}
    pi, pf, po = (peeps.get(k, np.zeros(hidden)) for k in ("i", "f", "o"))
    outs = []
    for xt in x:
        pre = {k: w[k] @ xt + r[k] @ h + b[k] for k in names}
        i = s(pre["i"] + pi * c)
        f = 1 - i if cifg else s(pre["f"] + pf * c)
        c = f * c + i * a(pre["g"])
        o = s(pre["o"] + po * c)
        h = o * a(c)
        outs.append(h)
    return np.array(outs), (h, c)


def ref_gru_direction(x, p, act, ract, h0=None):
    a, s = NP_ACTIVATIONS[act], NP_ACTIVATIONS[ract]
    hidden = p["weight_hh"].shape[1]
    h = np.zeros(hidden) if h0 is None else h0
    wr, wz, wn = np.split(p["weight_ih"], 3)
    rr, rz, rn = np.split(p["weight_hh"], 3)
    bir, biz, bin_ = np.split(p["bias_ih"], 3)
    bhr, bhz, bhn = np.split(p["bias_hh"], 3)
    outs = []
    for xt in x:
        r = s(wr @ xt + bir + rr @ h + bhr)
        z = s(wz @ xt + biz + rz @ h + bhz)
        n = a(wn @ xt + bin_ + r * (rn @ h + bhn))
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.array(outs), (h,)


def ref_body(body, x):
    """Reference for a whole stack on one unpadded sequence ``x (T, F)``."""
    finals = []
    for layer in range(body.num_layers):
        outs = []
        for suffix in body.suffixes:
            p = {
                name.rsplit("_l", 1)[0]: _np(value)
                for name, value in body.named_parameters()
                if name.endswith(f"_l{layer}{suffix}")
            }
            seq = x[::-1] if suffix else x
            if isinstance(body, CustomLSTM):
                out, state = ref_lstm_direction(
                    seq,
                    p,
                    body.activation,
                    body.recurrent_activation,
                    peephole=body.peephole,
                    cifg=body.cifg,
                )
            else:
                out, state = ref_gru_direction(seq, p, body.activation, body.recurrent_activation)
            outs.append(out[::-1] if suffix else out)
            finals.append(state)
        x = np.concatenate(outs, axis=-1)
    return x, finals


LSTM_VARIANTS = {
    "plain": {},
    "peephole": {"peephole": True},
    "cifg": {"cifg": True},
    "cifg_peephole": {"cifg": True, "peephole": True},
}


def make_body(variant: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    if variant == "gru":
        return CustomGRU(**kwargs).double()
    return CustomLSTM(**kwargs, **LSTM_VARIANTS[variant]).double()


VARIANTS = [*LSTM_VARIANTS, "gru"]
ACTIVATION_PAIRS = [
    ("tanh", "sigmoid"),
    ("relu", "hard_sigmoid"),
    ("linear", "linear"),
    ("softsign", "sigmoid"),
    ("elu", "hard_sigmoid"),
    ("softplus", "tanh"),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("act,ract", ACTIVATION_PAIRS)
def test_single_layer_matches_numpy_equations(variant, act, ract):
    body = make_body(
        variant, input_size=3, hidden_size=4, activation=act, recurrent_activation=ract
    )
    x = np.random.default_rng(1).normal(size=(6, 3))
    expected, (state,) = ref_body(body, x)
    out, final = body.forward_with_state(torch.from_numpy(x[None]))
    assert_allclose(_np(out[0]), expected, atol=1e-10)
    finals = final if variant == "gru" else torch.stack(final)
    assert_allclose(_np(finals).reshape(len(state), -1), np.array(state), atol=1e-10)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ragged_stacked_bidirectional_matches_numpy_per_sequence(variant):
    body = make_body(
        variant,
        input_size=2,
        hidden_size=3,
        num_layers=2,
        bidirectional=True,
        activation="relu",
        recurrent_activation="hard_sigmoid",
    ).eval()
    rng = np.random.default_rng(2)
    lengths = [5, 2, 7, 1]
    x = np.zeros((4, 7, 2))
    sequences = [rng.normal(size=(n, 2)) for n in lengths]
    for row, seq in zip(x, sequences, strict=True):
        row[: len(seq)] = seq
    out, summary = body(torch.from_numpy(x), torch.tensor(lengths))
    out_state, state = body.forward_with_state(torch.from_numpy(x), torch.tensor(lengths))
    h_n = state if variant == "gru" else state[0]
    for b, seq in enumerate(sequences):
        expected, finals = ref_body(body, seq)
        n = len(seq)
        assert_allclose(_np(out[b, :n]), expected, atol=1e-10)
        assert_allclose(_np(out_state[b, :n]), expected, atol=1e-10)
        # summary: forward half at the last valid step, backward half at step 0
        assert_allclose(_np(summary[b]), np.r_[expected[n - 1, :3], expected[0, 3:]], atol=1e-10)
        assert_allclose(_np(h_n[:, b]), np.array([f[0] for f in finals]), atol=1e-10)
        if variant != "gru":
            assert_allclose(_np(state[1][:, b]), np.array([f[1] for f in finals]), atol=1e-10)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_ragged_batch_equals_each_sequence_alone(variant, bidirectional):
    body = (
        make_body(
            variant,
            input_size=2,
            hidden_size=4,
            num_layers=2,
            bidirectional=bidirectional,
            activation="relu",
            dropout=0.3,
        )
        .float()
        .eval()
    )
    rng = np.random.default_rng(3)
    lengths = torch.tensor([3, 6, 1, 4])
    x = torch.zeros(4, 6, 2)
    for b, n in enumerate(lengths):
        x[b, :n] = torch.from_numpy(rng.normal(size=(n, 2)))
    with torch.no_grad():
        out, summary = body(x, lengths)
        for b, n in enumerate(lengths):
            out_b, summary_b = body(x[b : b + 1, :n])
            assert_allclose(out[b, :n].numpy(), out_b[0].numpy(), rtol=1e-5, atol=1e-6)
            assert_allclose(summary[b].numpy(), summary_b[0].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_zero_peepholes_default_activations_equal_nn_lstm(bidirectional):
    torch.manual_seed(0)
    ref = nn.LSTM(3, 5, num_layers=2, bidirectional=bidirectional, batch_first=True)
    body = CustomLSTM(3, 5, num_layers=2, bidirectional=bidirectional, peephole=True)
    missing = body.load_state_dict(ref.state_dict(), strict=False).missing_keys
    assert all(name.startswith("peephole") for name in missing)
    with torch.no_grad():
        for name in missing:
            getattr(body, name).zero_()
    x = torch.randn(4, 7, 3)
    h0, c0 = torch.randn(2, 2 * (1 + bidirectional), 4, 5).unbind(0)
    expected, (h_ref, c_ref) = ref(x, (h0, c0))
    out, (h_n, c_n) = body.forward_with_state(x, hx=(h0, c0))
    for got, want in ((out, expected), (h_n, h_ref), (c_n, c_ref)):
        assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)
    (expected.square().sum() + c_ref.sum()).backward()
    (out.square().sum() + c_n.sum()).backward()
    ref_params = dict(ref.named_parameters())
    for name, param in body.named_parameters():
        if name in ref_params:
            assert_allclose(param.grad.numpy(), ref_params[name].grad.numpy(), rtol=1e-4, atol=1e-5)


def test_gru_with_default_activations_equals_nn_gru():
    torch.manual_seed(0)
    ref = nn.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    body = CustomGRU(3, 5, num_layers=2, bidirectional=True)
    body.load_state_dict(ref.state_dict())
    x = torch.randn(4, 7, 3)
    expected, h_ref = ref(x)
    out, h_n = body.forward_with_state(x)
    assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert_allclose(h_n.detach().numpy(), h_ref.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_match_finite_differences(variant):
    body = make_body(
        variant,
        input_size=2,
        hidden_size=2,
        num_layers=2,
        bidirectional=True,
        activation="softsign",
        recurrent_activation="sigmoid",
    )
    x = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])
    h0, c0 = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True).unbind(0)
    params = list(body.parameters())

    def run(x, h0, c0, *_params):
        hx = h0 if variant == "gru" else (h0, c0)
        out, state = body.forward_with_state(x, lengths, hx)
        return (out, state) if variant == "gru" else (out, *state)

    assert torch.autograd.gradcheck(run, (x, h0, c0, *params), fast_mode=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant):
    body = make_body(
        variant, input_size=2, hidden_size=4, num_layers=2, bidirectional=True, activation="relu"
    ).float()
    x = torch.randn(5, 6, 2, requires_grad=True)
    out, summary = body(x, torch.tensor([6, 2, 5, 1, 3]))
    (out.sum() + summary.square().sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, param in body.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown activation 'swish'.*hard_sigmoid.*relu"):
        CustomLSTM(2, 3, activation="swish")
    with pytest.raises(ValueError, match=r"unknown recurrent_activation 'bogus'.*sigmoid"):
        build_custom("gru", BodyConfig(input_size=2, recurrent_activation="bogus"))
    with pytest.raises(ValueError, match="unknown activation"):
        LSTMRegressor(architecture="lstm", activation="swish", epochs=1).fit(
            np.zeros((4, 3, 1)), np.zeros(4)
        )
    assert activation_name(None) == "linear"
    assert activation_name("ReLU") == "relu"


def test_build_custom_kinds():
    config = BodyConfig(input_size=2, hidden_size=3, activation="relu")
    assert isinstance(build_custom("lstm", config), CustomLSTM)
    assert isinstance(build_custom("gru", config), CustomGRU)
    with pytest.raises(ValueError, match="expected 'lstm' or 'gru'"):
        build_custom("rnn", config)
    with pytest.raises(ValueError, match="only for LSTMs"):
        build_custom("gru", config, peephole=True)


def test_dropout_only_while_training():
    body = make_body("plain", input_size=2, hidden_size=8, num_layers=2, dropout=0.5).float()
    x = torch.randn(3, 5, 2)
    body.train()
    assert not torch.equal(body(x)[0], body(x)[0])
    body.eval()
    assert torch.equal(body(x)[0], body(x)[0])


# --- ONNX: the weight layout offered to the exporter ---------------------------------


def run_onnx_layers(layers, x: np.ndarray, lengths: np.ndarray | None):
    """Chain one native ONNX node per layer, run it in onnxruntime (time-major)."""
    batch, steps, features = x.shape
    nodes, inits = [], [numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape")]
    current = "x"
    seq = ""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, batch, features])]
    if lengths is not None:
        seq = "seq_lens"
        inputs.append(helper.make_tensor_value_info(seq, TensorProto.INT32, [batch]))
    outputs = []
    for k, layer in enumerate(layers):
        names = {}
        for key in ("W", "R", "B", "P"):
            if layer.get(key) is not None:
                names[key] = f"{key}{k}"
                inits.append(numpy_helper.from_array(layer[key].astype(np.float32), names[key]))
        attrs = {
            "hidden_size": layer["hidden_size"],
            "direction": layer["direction"],
            "activations": layer["activations"],
        }
        for key in ("activation_alpha", "activation_beta"):
            if layer[key] is not None:
                attrs[key] = layer[key]
        node_inputs = [current, names["W"], names["R"], names["B"], seq, ""]
        node_outputs = [f"Y{k}", f"Yh{k}"]
        if layer["op"] == "LSTM":
            node_inputs += ["", names.get("P", "")]
            node_outputs.append(f"Yc{k}")
            attrs["input_forget"] = layer["input_forget"]
        else:
            attrs["linear_before_reset"] = layer["linear_before_reset"]
        nodes.append(helper.make_node(layer["op"], node_inputs, node_outputs, **attrs))
        # (T, D, B, H) -> (T, B, D*H), the next layer's input
        nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"Yt{k}"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"Yt{k}", "shape"], [f"out{k}"]))
        current = f"out{k}"
        outputs += node_outputs[1:]
    graph = helper.make_graph(
        nodes,
        "layers",
        inputs,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in [current, *outputs]],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # onnxruntime rejects onnx 1.23's default IR version
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": np.ascontiguousarray(x.transpose(1, 0, 2), dtype=np.float32)}
    if lengths is not None:
        feeds[seq] = lengths.astype(np.int32)
    y, *states = session.run(None, feeds)
    return y.transpose(1, 0, 2), states


ONNX_CASES = [
    ("plain", "relu", "sigmoid", False, 1),
    ("plain", "tanh", "hard_sigmoid", True, 1),
    ("peephole", "tanh", "sigmoid", False, 1),
    ("peephole", "relu", "sigmoid", True, 2),
    ("cifg", "tanh", "sigmoid", False, 1),
    ("cifg", "relu", "hard_sigmoid", True, 1),
    ("cifg_peephole", "linear", "sigmoid", True, 2),
    ("plain", "elu", "linear", False, 1),
    ("peephole", "softsign", "hard_sigmoid", False, 1),
    ("plain", "softplus", "sigmoid", True, 1),
    ("gru", "relu", "sigmoid", False, 1),
    ("gru", "linear", "hard_sigmoid", True, 2),
    ("gru", "elu", "softsign", True, 1),
]


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize(("variant", "act", "ract", "bidirectional", "layers"), ONNX_CASES)
def test_onnx_recurrent_layers_run_in_onnxruntime(
    variant, act, ract, bidirectional, layers, ragged
):
    body = (
        make_body(
            variant,
            input_size=3,
            hidden_size=4,
            num_layers=layers,
            bidirectional=bidirectional,
            activation=act,
            recurrent_activation=ract,
        )
        .float()
        .eval()
    )
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 6, 3)).astype(np.float32)
    lengths = np.array([6, 2, 4]) if ragged else None
    if ragged:
        x[np.arange(6)[None, :] >= lengths[:, None]] = 0
    with torch.no_grad():
        out, state = body.forward_with_state(
            torch.from_numpy(x), None if lengths is None else torch.from_numpy(lengths)
        )
    got, onnx_states = run_onnx_layers(body.onnx_recurrent_layers(), x, lengths)
    valid = np.ones((3, 6), bool) if lengths is None else np.arange(6) < lengths[:, None]
    assert_allclose(got[valid], out.numpy()[valid], atol=1e-5)
    per_layer = 1 if variant == "gru" else 2
    h_n = np.concatenate(onnx_states[0::per_layer])
    torch_h = state if variant == "gru" else state[0]
    assert_allclose(h_n, torch_h.numpy(), atol=1e-5)
    if variant != "gru":
        assert_allclose(np.concatenate(onnx_states[1::2]), state[1].numpy(), atol=1e-5)


def test_onnx_layers_describe_the_variant():
    lstm = make_body(
        "cifg_peephole",
        input_size=2,
        hidden_size=3,
        bidirectional=True,
        activation="linear",
        recurrent_activation="hard_sigmoid",
    )
    (layer,) = lstm.onnx_recurrent_layers()
    assert layer["op"] == "LSTM" and layer["input_forget"] == 1
    assert layer["W"].shape == (2, 12, 2) and layer["R"].shape == (2, 12, 3)
    assert layer["B"].shape == (2, 24) and layer["P"].shape == (2, 9)
    assert layer["activations"] == ["HardSigmoid", "Affine", "Affine"] * 2
    assert layer["activation_alpha"] == pytest.approx([1 / 6, 1, 1] * 2)
    assert layer["activation_beta"] == pytest.approx([0.5, 0, 0] * 2)
    (gru,) = make_body("gru", input_size=2, hidden_size=3).onnx_recurrent_layers()
    assert gru["op"] == "GRU" and gru["linear_before_reset"] == 1 and gru["P"] is None
    assert gru["activations"] == ["Sigmoid", "Tanh"] and gru["activation_alpha"] is None


# --- the architectures and estimators ------------------------------------------------


def test_variant_architectures_are_registered():
    for name, peephole, cifg in (("peephole_lstm", True, False), ("cifg_lstm", False, True)):
        spec = seqpipe.get_architecture(name)
        assert spec.onnx_lowering is NATIVE_RECURRENT
        assert len(spec.test_params) >= 2
        assert any(p.get("bidirectional") and p.get("num_layers", 1) > 1 for p in spec.test_params)
        body = spec.build(
            BodyConfig(
                input_size=2, hidden_size=3, num_layers=2, bidirectional=True, activation="relu"
            )
        )
        assert (body.peephole, body.cifg, body.activation) == (peephole, cifg, "relu")
        assert body.num_layers == 2 and body.output_size == 6
    both = seqpipe.get_architecture("cifg_lstm").build(
        BodyConfig(input_size=2, options={"peephole": True})
    )
    assert both.peephole and both.cifg
    with pytest.raises(ValueError, match=r"unknown architecture_options.*'cifg'"):
        seqpipe.get_architecture("peephole_lstm").build(BodyConfig(2, options={"size": 3}))


@pytest.mark.parametrize(
    "name,params",
    [
        ("lstm", {}),
        ("gru", {}),
        ("peephole_lstm", {}),
        ("cifg_lstm", {}),
        ("lstm", {"bidirectional": True, "num_layers": 2}),
        ("gru", {"bidirectional": True, "num_layers": 2}),
        ("peephole_lstm", {"bidirectional": True, "num_layers": 2}),
        ("cifg_lstm", {"bidirectional": True, "num_layers": 2}),
    ],
)
def test_estimator_with_relu_fits_predicts_pickles(name, params):
    X = np.arange(10, 100, 10.0)[np.arange(6)[:, None] + np.arange(3)]
    y = X[:, -1] + 10
    model = LSTMRegressor(
        architecture=name, activation="relu", hidden_size=8, epochs=3, random_state=0, **params
    ).fit(X, y)
    assert isinstance(model.module_.body, (CustomLSTM, CustomGRU))
    assert model.module_.body.activation == "relu"
    pred = model.predict(X)
    assert pred.shape == (6,) and np.isfinite(pred).all()
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(restored.predict(X), pred)


def test_every_activation_is_covered_by_the_reference():
    assert set(NP_ACTIVATIONS) == set(ACTIVATIONS) == set(ONNX_ACTIVATIONS)


# --- nn.GRU trained through the hand-written recurrence ------------------------------


@pytest.mark.parametrize(
    "num_layers, bidirectional, ragged",
    [(1, False, False), (1, False, True), (2, True, True), (1, True, False)],
)
def test_gru_time_loop_trains_as_nn_gru(num_layers, bidirectional, ragged):
    """The `gru` body's fast CPU training path computes nn.GRU's function and
    gradients (packed for a ragged bidirectional batch), from nn.GRU's weights."""
    from seqpipe.architectures.torch_rnn import TorchRecurrentBody, gru_time_loop_is_faster

    torch.manual_seed(0)
    config = BodyConfig(3, 5, num_layers=num_layers, bidirectional=bidirectional)
    body = TorchRecurrentBody("gru", config)
    x = torch.randn(4, 7, 3)
    lengths = torch.tensor([7, 3, 5, 1]) if ragged else None
    assert gru_time_loop_is_faster(body.rnn, x)

    def run(fast: bool):
        body.zero_grad()
        out, summary = body(x, lengths) if fast else _nn_gru_forward(body, x, lengths)
        (summary.square().sum() + out[:, 0].sum()).backward()
        return summary.detach(), [p.grad.clone() for p in body.parameters()]

    fast_summary, fast_grads = run(True)
    torch_summary, torch_grads = run(False)
    assert_allclose(fast_summary.numpy(), torch_summary.numpy(), rtol=1e-5, atol=1e-6)
    for fast, slow in zip(fast_grads, torch_grads, strict=True):
        assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-4, atol=1e-6)


def _nn_gru_forward(body, x, lengths):
    """TorchRecurrentBody.forward's nn.GRU branch, whatever the dispatch rule says."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from seqpipe.architectures.padding import summarize

    if lengths is not None and body.bidirectional:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(body.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
    else:
        out, _ = body.rnn(x)
    return out, summarize(out, lengths, body.hidden_size, body.bidirectional)


def test_gru_time_loop_rule():
    from seqpipe.architectures.torch_rnn import GRU_TIME_LOOP_MAX_WIDTH, gru_time_loop_is_faster

    rnn = nn.GRU(1, 32, batch_first=True)
    small, large = torch.zeros(8, 5, 1), torch.zeros(GRU_TIME_LOOP_MAX_WIDTH // 32 + 1, 5, 1)
    assert gru_time_loop_is_faster(rnn, small)
    assert not gru_time_loop_is_faster(rnn, large)  # wide batches: nn.GRU is faster
    with torch.no_grad():
        assert not gru_time_loop_is_faster(rnn, small)  # inference: nn.GRU is faster
    with torch.autocast("cpu", dtype=torch.bfloat16):  # nn.GRU computes partly in bf16
        assert not gru_time_loop_is_faster(rnn, small)
    assert not gru_time_loop_is_faster(rnn.eval(), small)  # not a training step
    rnn.train().register_forward_pre_hook(lambda module, args: None)
    assert not gru_time_loop_is_faster(rnn, small)  # hooks would be skipped


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # nn.GRU's own shape checks
def test_gru_time_loop_keeps_nn_gru_hooks_and_traces():
    """What reads or rewrites nn.GRU at call time still works: pruning (a pre-hook
    that recomputes the weights), and a trace, which must not unroll a Python loop."""
    from torch.nn.utils import prune

    from seqpipe.architectures.torch_rnn import TorchRecurrentBody

    torch.manual_seed(0)
    body = TorchRecurrentBody("gru", BodyConfig(3, 5))
    prune.l1_unstructured(body.rnn, "weight_hh_l0", 0.5)
    optimizer = torch.optim.SGD(body.parameters(), lr=0.1)
    for _ in range(2):  # the second step failed when the pruned weight was read stale
        optimizer.zero_grad()
        body(torch.randn(4, 6, 3))[1].sum().backward()
        optimizer.step()
    plain = TorchRecurrentBody("gru", BodyConfig(3, 5))
    traced = torch.jit.trace(plain, torch.randn(2, 5, 3), check_trace=False)
    longer = torch.randn(2, 11, 3)  # a trace of an unrolled loop would read 5 steps
    with torch.no_grad():
        expected = plain(longer)[1].numpy()
    assert_allclose(traced(longer)[1].detach().numpy(), expected, rtol=1e-5, atol=1e-6)
