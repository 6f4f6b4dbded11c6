"""Chrono gate-bias initialisation (Tallec & Ollivier 2018) of the gated bodies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqpipe import BodyConfig, LSTMClassifier
from seqpipe.plugins import get_architecture

H, T = 6, 40


def build(name: str, max_timesteps: int | None = T, **params):
    config = BodyConfig(input_size=2, hidden_size=H, max_timesteps=max_timesteps, **params)
    torch.manual_seed(0)
    return get_architecture(name).build(config)


def biases(body: torch.nn.Module, side: str) -> list[torch.Tensor]:
    return [
        p.detach()
        for name, p in body.named_parameters()
        if name.rsplit(".", 1)[-1].startswith(f"bias_{side}_l")
    ]


def block(bias: torch.Tensor, gate: int) -> torch.Tensor:
    return bias[gate * H : (gate + 1) * H]


@pytest.mark.parametrize(
    "name, params",
    [
        ("lstm", {}),
        ("lstm", {"num_layers": 2, "bidirectional": True}),
        ("lstm", {"recurrent_activation": "hard_sigmoid", "activation": "relu"}),  # custom cell
        ("peephole_lstm", {}),
    ],
)
def test_lstm_default_is_chrono(name, params):
    body = build(name, **params)
    for bias in biases(body, "ih"):
        forget, inp = block(bias, 1), block(bias, 0)
        assert torch.all(forget >= 0) and torch.all(forget <= math.log(T - 1))
        assert torch.equal(inp, -forget)
        assert torch.all(block(bias, 2) == 0) and torch.all(block(bias, 3) == 0)
        assert forget.std() > 0  # drawn, not one constant
    assert all(torch.all(b == 0) for b in biases(body, "hh"))


def test_gru_and_cifg_open_the_gate_that_keeps_the_state():
    for bias in biases(build("gru"), "ih"):
        update = block(bias, 1)  # torch's GRU: h' = (1 - z) n + z h
        assert torch.all(update >= 0) and update.max() > 0.5
        assert torch.all(block(bias, 0) == 0) and torch.all(block(bias, 2) == 0)
    for bias in biases(build("cifg_lstm"), "ih"):
        assert torch.all(block(bias, 0) <= 0)  # f = 1 - i: a closed input gate keeps memory


def test_torch_init_is_kept_on_request_and_for_non_sigmoid_gates():
    torch_init = build("lstm", options={"gate_bias_init": "torch"})
    assert all(torch.any(b != 0) for b in biases(torch_init, "hh"))
    tanh_gates = build("lstm", activation="sigmoid", recurrent_activation="tanh")
    assert all(torch.any(b != 0) for b in biases(tanh_gates, "hh"))


def test_short_or_unknown_length_gives_zero_biases():
    for max_timesteps in (None, 1, 2):
        body = build("lstm", max_timesteps=max_timesteps)
        assert all(torch.all(b == 0) for b in biases(body, "ih") + biases(body, "hh"))


@pytest.mark.parametrize(
    "options, params, message",
    [
        ({"gate_bias_init": "xavier"}, {}, r"must be one of \['chrono', 'torch'\]"),
        ({"gate_bias_init": "chrono"}, {"recurrent_activation": "tanh"}, "sigmoid-like gates"),
        ({"gate_bias_init": "chrono"}, {}, "takes no options"),
    ],
)
def test_bad_gate_bias_init_is_a_clear_error(options, params, message):
    name = "rnn" if message == "takes no options" else "lstm"
    with pytest.raises(ValueError, match=message):
        build(name, options=options, **params)


def test_fit_uses_the_longest_training_sequence_and_stays_reproducible():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 30, 1)), np.arange(12) % 2
    params = {"hidden_size": 4, "epochs": 1, "random_state": 3}
    model = LSTMClassifier(**params).fit(X, y)
    # One epoch moves the biases a little; the initial span log(1 .. 29) shows.
    forget = block(model.module_.body.rnn.bias_ih_l0.detach(), 1)
    assert forget.max() > 1.0 and forget.max() <= math.log(29) + 0.1
    again = LSTMClassifier(**params).fit(X, y)
    assert torch.equal(again.module_.body.rnn.bias_ih_l0, model.module_.body.rnn.bias_ih_l0)
