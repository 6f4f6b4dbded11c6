"""``lr="auto"``: each architecture trains at the rate its spec declares."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import seqpipe
from seqpipe import LSTMClassifier, LSTMRegressor
from seqpipe.architectures.spec import DEFAULT_LR


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 12, 2)), np.arange(16) % 2


@pytest.mark.parametrize(
    "architecture, expected",
    [
        ("lstm", 1e-2),
        ("gru", 1e-2),
        ("peephole_lstm", 1e-2),
        ("cifg_lstm", 1e-2),
        ("rnn", DEFAULT_LR),
        ("lstm_fcn", 1e-3),
        ("mlstm_fcn", 1e-3),
    ],
)
def test_classifier_default_resolves_to_the_architecture_rate(architecture, expected, data):
    X, y = data
    model = LSTMClassifier(architecture, hidden_size=4, epochs=1, random_state=0).fit(X, y)
    assert model.get_params()["lr"] == "auto"  # the spec stays a spec
    assert model.lr_ == pytest.approx(expected)
    assert model.optimizer_.param_groups[0]["initial_lr"] == pytest.approx(expected)


def test_explicit_rate_wins_and_regressor_keeps_its_default(data):
    X, y = data
    assert LSTMClassifier(hidden_size=4, epochs=1, lr=3e-4).fit(X, y).lr_ == pytest.approx(3e-4)
    assert LSTMRegressor(hidden_size=4, epochs=1).fit(X, y.astype(float)).lr_ == 1e-3
    auto = LSTMRegressor(hidden_size=4, epochs=1, lr="auto").fit(X, y.astype(float))
    assert auto.lr_ == pytest.approx(1e-2)


def test_plugin_declares_its_rate(data):
    class Tiny(nn.Module):
        output_size = 3

        def __init__(self, config):
            super().__init__()
            self.rnn = nn.GRU(config.input_size, 3, batch_first=True)

        def forward(self, x, lengths=None):
            out, _ = self.rnn(x)
            return out, out[:, -1]

    class Plugin:
        @seqpipe.hookimpl
        def seqpipe_architectures(self):
            return [seqpipe.ArchitectureSpec("tiny_lr", Tiny, default_lr=0.05)]

    seqpipe.register_plugin(Plugin(), name="tiny_lr_plugin")
    try:
        X, y = data
        model = LSTMClassifier("tiny_lr", epochs=1, random_state=0).fit(X, y)
        assert model.lr_ == pytest.approx(0.05)
    finally:
        seqpipe.unregister_plugin("tiny_lr_plugin")


def test_unknown_string_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="'lr' parameter"):
        LSTMClassifier(lr="fast", epochs=1).fit(X, y)
