"""Keras LSTM/GRU weights in seqpipe bodies, checked against a numpy Keras reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.exceptions import NotFittedError
from torch import nn

from seqpipe import BodyConfig, LSTMRegressor
from seqpipe.architectures.cells import CustomGRU, CustomLSTM
from seqpipe.architectures.torch_rnn import TorchRecurrentBody
from seqpipe.keras_weights import get_keras_weights, set_keras_weights

# --- Keras' equations, written from its documentation, in Keras' layout -------------

KERAS_ACTIVATIONS = {
    None: lambda x: x,
    "linear": lambda x: x,
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "relu": lambda x: np.maximum(x, 0),
}


def keras_lstm(
    x,
    kernel,
    recurrent,
    bias,
    activation="tanh",
    recurrent_activation="sigmoid",
    peepholes=None,
    cifg=False,
):
    """``x (B, T, F)`` -> outputs ``(B, T, H)``, final ``h``, ``c``.

    ``peepholes``: (i, f, o) diagonal vectors as ``PeepholeLSTMCell``; ``cifg``: three
    gate blocks (i, c, o) and f = 1 - i.
    """
    act, ract = KERAS_ACTIVATIONS[activation], KERAS_ACTIVATIONS[recurrent_activation]
    hidden = recurrent.shape[0]
    h = np.zeros((x.shape[0], hidden))
    c = np.zeros_like(h)
    w_i, w_f, w_o = peepholes if peepholes is not None else (0, 0, 0)
    outs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        if cifg:
            z_i, z_c, z_o = np.split(z, 3, axis=-1)
            i = ract(z_i + w_i * c)
            f = 1 - i
        else:
            z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
            i = ract(z_i + w_i * c)
            f = ract(z_f + w_f * c)
        c = f * c + i * act(z_c)
        o = ract(z_o + w_o * c)
        h = o * act(c)
        outs.append(h)
    return np.stack(outs, axis=1), h, c


def keras_gru(x, kernel, recurrent, bias, activation="tanh", recurrent_activation="sigmoid"):
    """Keras GRU with ``reset_after=True``: bias (2, 3H) = input and recurrent biases."""
    act, ract = KERAS_ACTIVATIONS[activation], KERAS_ACTIVATIONS[recurrent_activation]
    h = np.zeros((x.shape[0], recurrent.shape[0]))
    outs = []
    for t in range(x.shape[1]):
        x_z, x_r, x_h = np.split(x[:, t] @ kernel + bias[0], 3, axis=-1)
        r_z, r_r, r_h = np.split(h @ recurrent + bias[1], 3, axis=-1)
        z = ract(x_z + r_z)
        r = ract(x_r + r_r)
        candidate = act(x_h + r * r_h)
        h = z * h + (1 - z) * candidate
        outs.append(h)
    return np.stack(outs, axis=1), h


def keras_arrays(rng, n_in, hidden, kind="lstm", gates=None):
    gates = gates or (4 if kind == "lstm" else 3)
    kernel = rng.normal(scale=0.5, size=(n_in, gates * hidden))
    recurrent = rng.normal(scale=0.5, size=(hidden, gates * hidden))
    bias_shape = (2, 3 * hidden) if kind == "gru" else (gates * hidden,)
    return [kernel, recurrent, rng.normal(scale=0.5, size=bias_shape)]


def run_body(body, x):
    """Per-step outputs and final states of a body (nn-based or custom), float64."""
    with torch.no_grad():
        xt = torch.from_numpy(x).to(next(body.parameters()).dtype)
        if isinstance(body, TorchRecurrentBody):
            out, state = body.rnn(xt)
        else:
            out, state = body.forward_with_state(xt)
    states = state if isinstance(state, tuple) else (state,)
    return out.double().numpy(), [s.double().numpy() for s in states]


# --- LSTM ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "activation,recurrent_activation",
    [("tanh", "sigmoid"), ("relu", "sigmoid"), (None, None), ("relu", "hard_sigmoid")],
)
def test_keras_lstm_weights_reproduce_keras(activation, recurrent_activation):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 2))
    weights = keras_arrays(rng, 2, 4)
    config = BodyConfig(
        input_size=2,
        hidden_size=4,
        activation=activation,
        recurrent_activation=recurrent_activation,
    )
    if (activation, recurrent_activation) == ("tanh", "sigmoid"):
        body = TorchRecurrentBody("lstm", config)  # the nn.LSTM path
    else:
        body = CustomLSTM.from_config(config)
    body.double()  # linear activations grow large: compare in float64
    set_keras_weights(body, weights)
    expected, h, c = keras_lstm(x, *weights, activation, recurrent_activation)
    out, (h_n, c_n) = run_body(body, x)
    assert_allclose(out, expected, atol=1e-5)
    assert_allclose(h_n[0], h, atol=1e-5)
    assert_allclose(c_n[0], c, atol=1e-5)
    back = get_keras_weights(body)
    for got, want in zip(back, weights, strict=True):
        assert_allclose(got, want, atol=1e-6)


def test_gate_arithmetic_by_hand_with_linear_activations():
    """The tutorials' hand check: one unit, one step, linear activations."""
    body = CustomLSTM(1, 1, activation=None, recurrent_activation=None).double()
    # Keras gate order i, f, c, o
    set_keras_weights(
        body, [np.array([[1.0, 2.0, 3.0, 4.0]]), np.zeros((1, 4)), np.array([0.1, 0.2, 0.3, 0.4])]
    )
    out, (h_n, c_n) = run_body(body, np.array([[[2.0]]]))
    i, f, g, o = 2.1, 4.2, 6.3, 8.4  # x * kernel + bias, gates i, f, c, o
    assert_allclose(c_n.item(), f * 0 + i * g)
    assert_allclose(out.item(), o * (i * g))
    assert_allclose(h_n.item(), out.item())


def test_bidirectional_stacked_lstm_by_layer_and_direction():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 3))
    body = CustomLSTM(3, 4, num_layers=2, bidirectional=True, activation="relu").double()
    layers = []
    for layer in range(2):
        n_in = 3 if layer == 0 else 8
        pair = [keras_arrays(rng, n_in, 4) for _ in range(2)]
        for direction, weights in zip(("forward", "backward"), pair, strict=True):
            set_keras_weights(body, weights, layer=layer, direction=direction)
        layers.append(pair)
    # Keras: Bidirectional(LSTM(return_sequences=True), merge_mode="concat"), twice.
    seq = x
    for forward, backward in layers:
        fwd = keras_lstm(seq, *forward, "relu")[0]
        bwd = keras_lstm(seq[:, ::-1], *backward, "relu")[0][:, ::-1]
        seq = np.concatenate([fwd, bwd], axis=-1)
    out, _ = run_body(body, x)
    assert_allclose(out, seq, atol=1e-5)
    assert_allclose(
        get_keras_weights(body, layer=1, direction="backward")[1], layers[1][1][1], atol=1e-6
    )


def test_fitted_estimator_takes_keras_weights():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(8, 4, 2))
    model = LSTMRegressor(hidden_size=3, activation="relu", epochs=1, random_state=0)
    model.fit(X, X.sum(axis=(1, 2)))
    weights = keras_arrays(rng, 2, 3)
    set_keras_weights(model, weights)
    for got, want in zip(get_keras_weights(model), weights, strict=True):
        assert_allclose(got, want, atol=1e-6)
    out, _ = run_body(model.module_.body, X)
    assert_allclose(out, keras_lstm(X, *weights, "relu")[0], atol=1e-5)


def test_peephole_and_cifg_layouts():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 2))
    peephole = CustomLSTM(2, 3, peephole=True).double()
    weights = keras_arrays(rng, 2, 3)
    peeps = [rng.normal(size=3) for _ in range(3)]  # PeepholeLSTMCell: i, f, o
    set_keras_weights(peephole, [*weights, *peeps])
    assert_allclose(
        run_body(peephole, x)[0], keras_lstm(x, *weights, peepholes=peeps)[0], atol=1e-5
    )
    assert len(get_keras_weights(peephole)) == 6
    # Only the three LSTM arrays: peepholes become zero, i.e. exactly Keras' LSTM.
    set_keras_weights(peephole, weights)
    assert_allclose(run_body(peephole, x)[0], keras_lstm(x, *weights)[0], atol=1e-5)

    cifg = CustomLSTM(2, 3, cifg=True, activation="relu").double()
    weights = keras_arrays(rng, 2, 3, gates=3)  # blocks i, c, o
    set_keras_weights(cifg, weights)
    expected, h, c = keras_lstm(x, *weights, "relu", cifg=True)
    out, (h_n, c_n) = run_body(cifg, x)
    assert_allclose(out, expected, atol=1e-5)
    assert_allclose(h_n[0], h, atol=1e-5)
    assert_allclose(c_n[0], c, atol=1e-5)
    with pytest.raises(ValueError, match=r"kernel has shape \(2, 12\), expected \(2, 9\)"):
        set_keras_weights(cifg, keras_arrays(rng, 2, 3))


def test_use_bias_false_means_zero_bias():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 2))
    kernel, recurrent, _ = keras_arrays(rng, 2, 3)
    body = TorchRecurrentBody("lstm", BodyConfig(input_size=2, hidden_size=3))
    set_keras_weights(body, [kernel, recurrent])
    assert_allclose(run_body(body, x)[0], keras_lstm(x, kernel, recurrent, 0.0)[0], atol=1e-5)


# --- GRU -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "activation,recurrent_activation",
    [("tanh", "sigmoid"), ("relu", "sigmoid"), (None, None), ("linear", "hard_sigmoid")],
)
def test_keras_gru_weights_reproduce_keras(activation, recurrent_activation):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 5, 2))
    weights = keras_arrays(rng, 2, 4, kind="gru")
    config = BodyConfig(
        input_size=2,
        hidden_size=4,
        activation=activation,
        recurrent_activation=recurrent_activation,
    )
    if (activation, recurrent_activation) == ("tanh", "sigmoid"):
        body = TorchRecurrentBody("gru", config)
    else:
        body = CustomGRU.from_config(config)
    body.double()  # linear activations grow large: compare in float64
    set_keras_weights(body, weights)
    expected, h = keras_gru(x, *weights, activation, recurrent_activation)
    out, (h_n,) = run_body(body, x)
    assert_allclose(out, expected, atol=1e-5)
    assert_allclose(h_n[0], h, atol=1e-5)
    for got, want in zip(get_keras_weights(body), weights, strict=True):
        assert_allclose(got, want, atol=1e-6)


def test_gru_bidirectional_into_nn_gru():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 4, 3))
    gru = nn.GRU(3, 2, bidirectional=True, batch_first=True).double()
    forward, backward = keras_arrays(rng, 3, 2, "gru"), keras_arrays(rng, 3, 2, "gru")
    set_keras_weights(gru, forward)
    set_keras_weights(gru, backward, direction="backward")
    expected = np.concatenate(
        [keras_gru(x, *forward)[0], keras_gru(x[:, ::-1], *backward)[0][:, ::-1]], axis=-1
    )
    with torch.no_grad():
        out = gru(torch.from_numpy(x))[0].numpy()
    assert_allclose(out, expected, atol=1e-5)


# --- errors ----------------------------------------------------------------------


def test_wrong_shapes_name_the_array_and_expected_shape():
    body = CustomLSTM(2, 3)
    kernel, recurrent, bias = keras_arrays(np.random.default_rng(7), 2, 3)
    with pytest.raises(ValueError, match=r"kernel has shape \(3, 12\), expected \(2, 12\)"):
        set_keras_weights(body, [np.zeros((3, 12)), recurrent, bias])
    message = r"recurrent_kernel has shape \(12, 3\), expected \(3, 12\)"
    with pytest.raises(ValueError, match=message):
        set_keras_weights(body, [kernel, recurrent.T, bias])
    with pytest.raises(ValueError, match=r"bias has shape \(3,\), expected \(12,\)"):
        set_keras_weights(body, [kernel, recurrent, bias[:3]])
    with pytest.raises(ValueError, match="expected 2 or 3 arrays"):
        set_keras_weights(body, [kernel])
    with pytest.raises(ValueError, match="NaN"):
        set_keras_weights(body, [kernel * np.nan, recurrent, bias])
    gru = CustomGRU(2, 3)
    gru_kernel, gru_recurrent, _ = keras_arrays(np.random.default_rng(8), 2, 3, "gru")
    with pytest.raises(ValueError, match="reset_after=False"):
        set_keras_weights(gru, [gru_kernel, gru_recurrent, np.zeros(9)])


def test_bad_targets_layers_and_directions():
    body = CustomLSTM(2, 3, num_layers=2)
    weights = keras_arrays(np.random.default_rng(9), 2, 3)
    with pytest.raises(ValueError, match="needs a bidirectional model"):
        set_keras_weights(body, weights, direction="backward")
    with pytest.raises(ValueError, match="direction must be"):
        get_keras_weights(body, direction="reverse")
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\)"):
        get_keras_weights(body, layer=2)
    with pytest.raises(TypeError, match="cannot hold Keras"):
        set_keras_weights(nn.RNN(2, 3), weights)
    with pytest.raises(NotFittedError):
        set_keras_weights(LSTMRegressor(), weights)
