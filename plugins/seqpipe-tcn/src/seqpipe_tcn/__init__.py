"""seqpipe-tcn: a temporal convolutional network as a seqpipe architecture.

Installing this distribution registers the plugin ``tcn`` in seqpipe's ``seqpipe``
entry-point group; the plugin provides the architecture ``"tcn"``, usable wherever
seqpipe takes an architecture name.

Examples
--------
>>> import numpy as np
>>> import seqpipe
>>> "tcn" in seqpipe.list_architectures()
True
>>> X = np.random.default_rng(0).normal(size=(20, 8, 1))
>>> model = seqpipe.LSTMRegressor("tcn", hidden_size=8, num_layers=2, epochs=2, random_state=0)
>>> model.fit(X, X.sum(axis=(1, 2))).predict(X[:3]).shape
(3,)
"""

from __future__ import annotations

import seqpipe

from seqpipe_tcn.body import DEFAULT_OPTIONS, TCNBody, TemporalBlock

__version__ = "0.1.0"

__all__ = ["DEFAULT_OPTIONS", "TCNBody", "TemporalBlock", "__version__", "seqpipe_architectures"]


def build(config: seqpipe.BodyConfig) -> TCNBody:
    """``ArchitectureSpec.build`` for ``"tcn"``: validates ``config`` and builds the body."""
    return TCNBody(config)


@seqpipe.hookimpl
def seqpipe_architectures() -> list[seqpipe.ArchitectureSpec]:
    """The ``seqpipe_architectures`` hook: this plugin provides ``"tcn"``."""
    return [
        seqpipe.ArchitectureSpec(
            name="tcn",
            build=build,
            description="Temporal convolutional network: residual dilated causal Conv1d blocks",
            # No native lowering: convolutions go through torch.onnx.export, which
            # seqpipe verifies at other batch sizes and lengths before writing a file.
            onnx_lowering=None,
            test_params=(
                {"hidden_size": 8},
                {
                    "hidden_size": 6,
                    "num_layers": 2,
                    "dropout": 0.1,
                    "architecture_options": {"kernel_size": 2},
                },
            ),
        )
    ]
