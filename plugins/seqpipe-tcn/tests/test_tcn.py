"""seqpipe-tcn's tests: seqpipe's public conformance kit plus what is specific to a TCN.

Only public API is used: ``seqpipe.testing``, the estimators, ``seqpipe.BodyConfig``
and ``seqpipe.get_architecture``.
"""

from __future__ import annotations

import numpy as np
import pytest
import seqpipe
import torch
from seqpipe.testing import parametrize_architecture_checks

import seqpipe_tcn


@parametrize_architecture_checks(["tcn"])
def test_tcn_conforms(name, params, check):
    check(name, params)


def test_installed_through_the_entry_point():
    assert "tcn" in seqpipe.list_architectures()
    assert seqpipe.list_plugins()["tcn"] == ["tcn"]
    assert seqpipe.get_architecture("tcn").onnx_lowering is None  # verified fallback


def build(**kwargs) -> torch.nn.Module:
    return seqpipe.get_architecture("tcn").build(seqpipe.BodyConfig(input_size=2, **kwargs))


def test_hidden_size_is_channels_and_num_layers_is_blocks():
    body = build(hidden_size=5, num_layers=3, options={"kernel_size": 2})
    assert body.output_size == 5
    assert len(body.blocks) == 3
    assert [block.conv1.dilation[0] for block in body.blocks] == [1, 2, 4]
    assert body.receptive_field == 1 + 2 * (2 - 1) * (2**3 - 1)


def test_causal_future_steps_never_change_the_past():
    body = build(hidden_size=4, num_layers=3).eval()
    x = torch.randn(2, 12, 2)
    changed = x.clone()
    changed[:, 7:] = torch.randn(2, 5, 2) * 100
    with torch.no_grad():
        before, after = body(x)[0], body(changed)[0]
    assert torch.equal(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bidirectional": True}, "bidirectional=False only"),
        ({"activation": "linear"}, "always uses ReLU.*got 'linear'"),
        ({"recurrent_activation": "hard_sigmoid"}, "has no gates"),
        ({"options": {"kernel": 3}}, r"unknown architecture_options \['kernel'\]; valid options"),
        ({"options": {"kernel_size": 0}}, "kernel_size must be an integer >= 1"),
    ],
)
def test_unsupported_settings_say_what_is_supported(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


def test_relu_activation_is_accepted():
    assert build(activation="relu").output_size == 32


def test_estimator_error_names_the_problem():
    X = np.zeros((4, 3, 1))
    model = seqpipe.LSTMRegressor("tcn", bidirectional=True, epochs=1)
    with pytest.raises(ValueError, match=r"tcn.*bidirectional=False only"):
        model.fit(X, np.zeros(4))


def test_version_is_exposed():
    assert seqpipe_tcn.__version__ == "0.1.0"
