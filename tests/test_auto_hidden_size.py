"""``hidden_size="auto"``: each architecture is built at the width its spec declares."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from torch import nn

import seqpipe
from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer
from seqpipe.architectures.spec import DEFAULT_HIDDEN_SIZE


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 12, 2)), np.arange(16) % 2


def recurrent_width(model) -> int:
    """Units of the fitted body's recurrent layer, read off the torch module."""
    rnns = [m for m in model.module_.modules() if isinstance(m, (nn.LSTM, nn.GRU, nn.RNN))]
    if rnns:
        return rnns[0].hidden_size
    return model.module_.body.output_size // (2 if model.bidirectional else 1)


@pytest.mark.parametrize(
    "architecture, expected",
    [
        ("lstm", DEFAULT_HIDDEN_SIZE),
        ("gru", DEFAULT_HIDDEN_SIZE),
        ("lstm_fcn", 8),
        ("mlstm_fcn", 8),
    ],
)
def test_classifier_default_builds_the_architecture_width(architecture, expected, data):
    X, y = data
    options = {"filters": (4, 4, 4)} if "fcn" in architecture else None
    model = LSTMClassifier(
        architecture, architecture_options=options, epochs=1, random_state=0
    ).fit(X, y)
    assert model.get_params()["hidden_size"] == "auto"  # the spec stays a spec
    assert clone(model).get_params()["hidden_size"] == "auto"
    assert model.hidden_size_ == expected
    assert recurrent_width(model) == expected


def test_explicit_width_wins_and_regressor_keeps_32(data):
    X, y = data
    fcn = {"filters": (4, 4, 4)}
    model = LSTMClassifier("lstm_fcn", hidden_size=5, architecture_options=fcn, epochs=1)
    assert model.fit(X, y).hidden_size_ == 5
    assert recurrent_width(model) == 5
    regressor = LSTMRegressor("lstm_fcn", architecture_options=fcn, epochs=1).fit(X, y * 1.0)
    assert regressor.hidden_size_ == 32
    auto = LSTMTransformer("lstm_fcn", hidden_size="auto", architecture_options=fcn, epochs=1)
    assert auto.fit(X).hidden_size_ == 8


def test_plugin_declares_its_width(data):
    class Tiny(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.output_size = config.hidden_size
            self.rnn = nn.GRU(config.input_size, config.hidden_size, batch_first=True)

        def forward(self, x, lengths=None):
            out, _ = self.rnn(x)
            return out, out[:, -1]

    class Plugin:
        @seqpipe.hookimpl
        def seqpipe_architectures(self):
            return [seqpipe.ArchitectureSpec("tiny_width", Tiny, default_hidden_size=3)]

    seqpipe.register_plugin(Plugin(), name="tiny_width_plugin")
    try:
        X, y = data
        model = LSTMClassifier("tiny_width", epochs=1, random_state=0).fit(X, y)
        assert model.hidden_size_ == 3
        assert recurrent_width(model) == 3
    finally:
        seqpipe.unregister_plugin("tiny_width_plugin")


def test_unknown_string_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="'hidden_size' parameter"):
        LSTMClassifier(hidden_size="wide", epochs=1).fit(X, y)


def test_body_config_refuses_an_unresolved_width():
    with pytest.raises(ValueError, match="resolved_hidden_size"):
        seqpipe.BodyConfig.from_params(LSTMClassifier().get_params(), 3)
