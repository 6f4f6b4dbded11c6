"""``hidden_size="auto"``: each architecture is built at the width its spec declares."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

import seqpipe
from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer, runtime
from seqpipe.architectures.spec import DEFAULT_HIDDEN_SIZE
from seqpipe.onnx import export
from seqpipe.testing import check_architecture, check_body_contract, check_grid_search

FCN = {"filters": (4, 4, 4)}  # tiny conv blocks: the recurrent width is what is tested


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 12, 2)), np.arange(16) % 2


def recurrent_width(model) -> int:
    """Units of the fitted body's first recurrent layer, read off the torch module."""
    for module in model.module_.modules():
        if isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
            return module.hidden_size
        if hasattr(module, "hidden_size") and module is not model.module_:
            return int(module.hidden_size)  # seqpipe's own cells (peephole, CIFG)
    raise AssertionError(f"no recurrent layer in {model.module_}")


@pytest.mark.parametrize(
    "architecture, expected",
    [
        ("lstm", DEFAULT_HIDDEN_SIZE),
        ("gru", DEFAULT_HIDDEN_SIZE),
        ("rnn", DEFAULT_HIDDEN_SIZE),
        ("peephole_lstm", DEFAULT_HIDDEN_SIZE),
        ("cifg_lstm", DEFAULT_HIDDEN_SIZE),
        ("lstm_fcn", 8),
        ("mlstm_fcn", 8),
    ],
)
def test_classifier_default_builds_the_architecture_width(architecture, expected, data):
    X, y = data
    options = FCN if "fcn" in architecture else None
    model = LSTMClassifier(architecture, architecture_options=options, epochs=1, random_state=0)
    model.fit(X, y)
    assert model.get_params()["hidden_size"] == "auto"  # the spec stays a spec
    assert clone(model).get_params()["hidden_size"] == "auto"
    assert model.hidden_size_ == expected
    assert recurrent_width(model) == expected


def test_explicit_width_wins_and_regressor_keeps_32(data):
    X, y = data
    model = LSTMClassifier("lstm_fcn", hidden_size=5, architecture_options=FCN, epochs=1)
    assert model.fit(X, y).hidden_size_ == 5
    assert recurrent_width(model) == 5
    regressor = LSTMRegressor("lstm_fcn", architecture_options=FCN, epochs=1).fit(X, y * 1.0)
    assert regressor.hidden_size_ == 32


def test_transformer_columns_follow_the_resolved_width(data):
    X, _ = data
    auto = LSTMTransformer("lstm_fcn", hidden_size="auto", architecture_options=FCN, epochs=1)
    features = auto.fit(X).transform(X)
    assert auto.hidden_size_ == 8
    assert features.shape == (len(X), 8 + FCN["filters"][-1])


def test_partial_fit_resolves_on_the_first_call(data):
    X, y = data
    model = LSTMClassifier("mlstm_fcn", architecture_options=FCN, random_state=0)
    model.partial_fit(X, y, classes=[0, 1]).partial_fit(X, y)
    assert model.hidden_size_ == 8
    assert recurrent_width(model) == 8


def test_exported_metadata_states_the_width_built(data, tmp_path):
    X, y = data
    model = LSTMClassifier("lstm_fcn", architecture_options=FCN, epochs=1).fit(X, y)
    network = json.loads(
        runtime.load(export(model, tmp_path / "m.onnx")).metadata["seqpipe.network"]
    )
    assert network["hidden_size"] == 8
    # A model pickled before hidden_size_ existed held the width in hidden_size.
    old = pickle.loads(pickle.dumps(LSTMClassifier(hidden_size=6, epochs=1).fit(X, y)))
    del old.hidden_size_
    network = json.loads(runtime.load(export(old, tmp_path / "o.onnx")).metadata["seqpipe.network"])
    assert network["hidden_size"] == 6
    # ...and a warm start of it keeps that width and records it.
    old.set_params(warm_start=True).fit(X, y)
    assert old.hidden_size_ == 6


def test_warm_start_refuses_another_width(data):
    X, y = data
    model = LSTMClassifier("lstm_fcn", architecture_options=FCN, epochs=1, warm_start=True)
    model.fit(X, y)
    before = [p.detach().clone() for p in model.module_.parameters()]
    with pytest.raises(ValueError, match="built with hidden_size=8, but the parameters now ask"):
        model.set_params(hidden_size=16).fit(X, y)
    assert all((a == b).all() for a, b in zip(before, model.module_.parameters(), strict=True))
    model.set_params(hidden_size=8).fit(X, y)  # "auto" and 8 are the same width
    assert model.n_epochs_ == 2  # the first epoch, then the warm-started one


def test_plugin_declares_its_width(data):
    class Tiny(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.output_size = config.hidden_size
            self.rnn = nn.GRU(config.input_size, config.hidden_size, batch_first=True)

        def forward(self, x, lengths=None):
            out, _ = self.rnn(x)  # causal: padding after a sequence cannot change it
            last = torch.full((len(x),), x.shape[1] - 1) if lengths is None else lengths - 1
            return out, out[torch.arange(len(x)), last.to(torch.long)]

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
        # The conformance kit accepts "auto" in a plugin's test_params.
        params = [{"hidden_size": "auto"}]
        check_architecture("tiny_width", params=params, checks=[check_body_contract])
        check_grid_search("tiny_width", {"hidden_size": "auto"})
    finally:
        seqpipe.unregister_plugin("tiny_width_plugin")


def test_unknown_string_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="'hidden_size' parameter"):
        LSTMClassifier(hidden_size="wide", epochs=1).fit(X, y)


def test_body_config_refuses_an_unresolved_width():
    with pytest.raises(ValueError, match="resolved_hidden_size"):
        seqpipe.BodyConfig.from_params(LSTMClassifier().get_params(), 3)
