"""Fill-in template for a seqpipe architecture plugin.

Copy this file into your package (e.g. ``src/my_package/__init__.py``), rename the
architecture, replace the body, and declare the entry point in ``pyproject.toml``::

    [project.entry-points.seqpipe]
    my-plugin = "my_package"

It works as it stands: the architecture ``template_residual_gru`` is a GRU whose
output adds a linear projection of the input (a residual path), which shows every
part of the body contract. Try it without installing anything::

    >>> import importlib.util, seqpipe
    >>> spec = importlib.util.spec_from_file_location("plugin_template", "docs/plugin_template.py")
    >>> module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    >>> seqpipe.register_plugin(module, name="plugin-template")   # what the entry point does
    'plugin-template'
    >>> "template_residual_gru" in seqpipe.list_architectures()
    True
    >>> seqpipe.unregister_plugin("plugin-template")

Then prove it with the conformance kit in your own tests::

    from seqpipe.testing import check_architecture

    def test_conforms():
        check_architecture("template_residual_gru")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

import seqpipe
from seqpipe.architectures import last_valid

# TODO: your architecture's name: what users pass as ``architecture=``. It must be a
# Python identifier and unique across every installed plugin.
NAME = "template_residual_gru"

# TODO: the options your architecture reads from ``architecture_options``, with defaults.
DEFAULT_OPTIONS: dict[str, Any] = {"residual": True}


class TemplateBody(nn.Module):
    """The recurrent body: ``forward(x, lengths) -> (sequence_output, summary)``.

    TODO: replace the layers. Keep the contract (see ``docs/plugins.md``):

    * ``x`` is ``(batch, time, input_size)``, padded steps are zeros;
    * ``lengths`` is None (no padding) or an int64 ``(batch,)`` tensor of true lengths;
    * return ``(batch, time, output_size)`` and ``(batch, output_size)``;
    * padding must not change any sequence's numbers.
    """

    def __init__(self, config: seqpipe.BodyConfig) -> None:
        super().__init__()
        options = _check(config)
        self.gru = nn.GRU(
            config.input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.skip = (
            nn.Linear(config.input_size, config.hidden_size) if options["residual"] else None
        )
        # Required: the estimators size their heads (and LSTMTransformer its output) from it.
        self.output_size = config.hidden_size

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # A causal body can run on the padded batch: steps after a sequence's end
        # never reach its earlier steps. (A bidirectional one must pack the batch or
        # reverse each sequence within its own length instead.) last_valid is a
        # gather, so the exported graph is right at every batch size and length.
        sequence, _ = self.gru(x)
        if self.skip is not None:
            sequence = sequence + self.skip(x)
        return sequence, last_valid(sequence, lengths)


def _check(config: seqpipe.BodyConfig) -> dict[str, Any]:
    """Refuse what the body cannot honour, saying what is supported (a ValueError)."""
    # TODO: the settings your body supports.
    if config.bidirectional:
        raise ValueError(f"architecture {NAME!r} supports bidirectional=False only")
    if (config.activation, config.recurrent_activation) != ("tanh", "sigmoid"):
        raise ValueError(
            f"architecture {NAME!r} supports activation='tanh' and "
            f"recurrent_activation='sigmoid' only, got {config.activation!r} and "
            f"{config.recurrent_activation!r}"
        )
    return _options(config.options)


def _options(given: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(
            f"architecture {NAME!r} got unknown architecture_options {unknown}; "
            f"supported: {sorted(DEFAULT_OPTIONS)}"
        )
    return {**DEFAULT_OPTIONS, **given}


def build(config: seqpipe.BodyConfig) -> nn.Module:
    """``ArchitectureSpec.build``: a fresh body for ``config``."""
    return TemplateBody(config)


@seqpipe.hookimpl
def seqpipe_architectures() -> list[seqpipe.ArchitectureSpec]:
    """The hook seqpipe calls once per process; return data only."""
    return [
        seqpipe.ArchitectureSpec(
            name=NAME,
            build=build,
            description="Template: GRU plus a linear residual path from the input",
            # TODO: None exports through torch.onnx.export, verified by seqpipe before a
            # file is written. Declare `seqpipe.architectures.NATIVE_RECURRENT` if the
            # body implements `onnx_recurrent_layers()`, or your own OnnxLowering.
            onnx_lowering=None,
            # TODO: two or more cheap estimator parameter sets for the conformance kit.
            test_params=(
                {"hidden_size": 6},
                {"hidden_size": 4, "num_layers": 2, "architecture_options": {"residual": False}},
            ),
        )
    ]
