"""One lowering mechanism: plugins declare what their lowering can do, export obeys.

A plugin whose lowering is native (declared ``NATIVE_RECURRENT``) and one whose body
is traced (``onnx_lowering=None``) both export and verify; the native one streams
because it declares streaming, the traced one is refused with a message naming its
lowering. A custom lowering's declarations are honoured the same way.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pluggy
import pytest
from torch import nn

import seqpipe
from seqpipe import LSTMRegressor, runtime
from seqpipe.architectures import (
    NATIVE_RECURRENT,
    ArchitectureSpec,
    LoweredBody,
    OnnxLowering,
    last_valid,
)
from seqpipe.architectures.layout import torch_rnn_layers
from seqpipe.onnx import UnsupportedModelError, export
from seqpipe.plugins import PluginWarning

QUICK = {"verify_batch_sizes": (1, 3), "verify_lengths": (1, 7)}


class GRUBody(nn.Module):
    """A plugin's plain nn.GRU body; offers its layers for the native lowering."""

    def __init__(self, config):
        super().__init__()
        self.rnn = nn.GRU(config.input_size, config.hidden_size, batch_first=True)
        self.output_size = config.hidden_size

    def forward(self, x, lengths=None):
        out, _ = self.rnn(x)
        return out, last_valid(out, lengths)

    def onnx_recurrent_layers(self):
        return torch_rnn_layers(self.rnn)


def _lower_without_states(body, request):
    # Delegates to the native lowering but drops the states it was asked for.
    lowered = NATIVE_RECURRENT.lower(body, request)
    return LoweredBody(lowered.sequence, lowered.summary)


class Plugin:
    @seqpipe.hookimpl
    def seqpipe_architectures(self):
        return [
            ArchitectureSpec("test_native_gru", GRUBody, onnx_lowering=NATIVE_RECURRENT),
            ArchitectureSpec("test_traced_gru", GRUBody, onnx_lowering=None),
            ArchitectureSpec(
                "test_no_fold_gru",
                GRUBody,
                onnx_lowering=OnnxLowering(NATIVE_RECURRENT.lower, "plain native"),
            ),
            ArchitectureSpec(
                "test_lying_gru",
                GRUBody,
                onnx_lowering=OnnxLowering(_lower_without_states, "lying", streaming=True),
            ),
        ]


@pytest.fixture(scope="module")
def plugin():
    name = seqpipe.register_plugin(Plugin(), name="test-lowering-plugin")
    yield
    seqpipe.unregister_plugin(name)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=3.0, scale=2.0, size=(24, 6, 2))
    return X, X[:, -1, 0] - X[:, 0, 1]


def _fit(name, data):
    X, y = data
    return LSTMRegressor(name, hidden_size=4, epochs=2, random_state=0).fit(X, y)


@pytest.mark.parametrize(
    "name, lowering, traced",
    [
        ("test_native_gru", "native recurrent nodes", False),
        ("test_traced_gru", "torch.onnx.export", True),
        ("test_no_fold_gru", "plain native", False),
    ],
)
def test_declared_lowering_exports_and_verifies(plugin, data, tmp_path, name, lowering, traced):
    est = _fit(name, data)
    model = runtime.load(export(est, tmp_path / "m.onnx", **QUICK))
    network = json.loads(model.metadata["seqpipe.network"])
    assert network["lowering"] == lowering and network["lowering_traced"] is traced
    ragged = data[0][:4].copy()
    ragged[1, 3:] = np.nan
    np.testing.assert_allclose(model.predict(ragged), est.predict(ragged), rtol=1e-5, atol=1e-5)


def test_folding_follows_the_declaration(plugin, data, tmp_path):
    """The native lowering folds the input scaling (no Sub/Div over the input); a
    lowering that does not declare it gets the exporter's own scaling nodes."""
    ops = {}
    for name in ("test_native_gru", "test_no_fold_gru"):
        model = runtime.load(export(_fit(name, data), tmp_path / f"{name}.onnx", **QUICK))
        ops[name] = {node.op_type for node in _graph(model).node}
    assert "Div" not in ops["test_native_gru"]
    assert "Div" in ops["test_no_fold_gru"]


def _graph(model):
    import onnx

    return onnx.load(model.path).graph


def test_streaming_where_declared(plugin, data, tmp_path):
    X, _ = data
    est = _fit("test_native_gru", data)
    stream = runtime.load(export(est, tmp_path / "s.onnx", streaming=True, **QUICK)).stream(3)
    for t in range(X.shape[1]):
        out = stream.step(X[:3, t])
    np.testing.assert_allclose(out, est.predict(X[:3]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["test_traced_gru", "test_no_fold_gru"])
def test_streaming_refused_where_not_declared(plugin, data, tmp_path, name):
    with pytest.raises(UnsupportedModelError, match="does not"):
        export(_fit(name, data), tmp_path / "s.onnx", streaming=True)
    assert not list(tmp_path.iterdir())


def test_a_lowering_that_breaks_its_declaration_is_caught(plugin, data, tmp_path):
    with pytest.raises(UnsupportedModelError, match="declares streaming but returned no"):
        export(_fit("test_lying_gru", data), tmp_path / "s.onnx", streaming=True)


def test_plain_function_as_lowering_is_reported_with_the_fix():
    class OldStyle:
        @seqpipe.hookimpl
        def seqpipe_architectures(self):
            return [ArchitectureSpec("test_old_style", GRUBody, onnx_lowering=lambda *a: a)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        name = seqpipe.register_plugin(OldStyle(), name="test-old-style")
        try:
            problems = [p.message for p in seqpipe.plugin_errors() if p.plugin == name]
            assert "test_old_style" not in seqpipe.list_architectures()
        finally:
            seqpipe.unregister_plugin(name)
    assert problems and "OnnxLowering(lower=..., name=...)" in problems[0]


def test_hooks_are_called_through_pluggy():
    """The registry calls hooks through pluggy's hook caller (so hooks may gain
    arguments that implementations do not take), which call monitoring sees."""
    seen = []
    pm = seqpipe.plugins.get_plugin_manager()
    undo = pm.add_hookcall_monitoring(
        lambda hook_name, impls, kwargs: seen.append(hook_name), lambda *a: None
    )
    try:
        seqpipe.plugins._registry.cache_clear()
        assert "lstm" in seqpipe.list_architectures()
    finally:
        undo()
    assert seen and set(seen) == {"seqpipe_architectures"}
    assert isinstance(pm, pluggy.PluginManager)
