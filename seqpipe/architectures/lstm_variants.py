"""Built-in plugin: the LSTM variants ``peephole_lstm`` and ``cifg_lstm``.

Both run on :class:`~seqpipe.architectures.cells.CustomLSTM` and honour every
common knob (``hidden_size``, ``num_layers``, ``bidirectional``, ``dropout``,
``activation``, ``recurrent_activation``). ``architecture_options`` may combine
the two ideas: ``{"cifg": True}`` for ``peephole_lstm``, ``{"peephole": True}``
for ``cifg_lstm``. Both export as native ONNX ``LSTM`` nodes (``P`` input,
``input_forget=1``).

Registered through the same ``seqpipe_architectures`` hook as any external plugin.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from seqpipe.architectures.initialization import chrono_init, resolve_gate_bias_init
from seqpipe.architectures.layout import activation_name
from seqpipe.architectures.native_onnx import NATIVE_RECURRENT
from seqpipe.architectures.options import check_options
from seqpipe.architectures.spec import ArchitectureSpec, BodyConfig
from seqpipe.architectures.torch_rnn import (
    BASE_TEST_PARAMS,
    GATED_DEFAULT_LR,
    GATED_OPTIONS,
    KERAS_ACTIVATION_TEST_PARAMS,
)
from seqpipe.hookspecs import hookimpl

_TEST_PARAMS = BASE_TEST_PARAMS + KERAS_ACTIVATION_TEST_PARAMS


def _builder(name: str, *, peephole: bool, cifg: bool) -> Callable[[BodyConfig], nn.Module]:
    # The option that is not fixed by the architecture's name may be switched on.
    option = "cifg" if peephole else "peephole"

    def build(config: BodyConfig) -> nn.Module:
        options = check_options(name, config.options, {option: False, **GATED_OPTIONS})
        recurrent = activation_name(config.recurrent_activation, "recurrent_activation")
        gate_bias_init = resolve_gate_bias_init(name, options["gate_bias_init"], recurrent)
        # Imported here so building the registry stays cheap.
        from seqpipe.architectures.cells import build_custom

        use_cifg = cifg or (option == "cifg" and options[option])
        body = build_custom("lstm", config, peephole=peephole or options[option], cifg=use_cifg)
        if gate_bias_init == "chrono":
            chrono_init(
                body, "cifg" if use_cifg else "lstm", config.hidden_size, config.max_timesteps
            )
        return body

    build.__name__ = f"build_{name}"
    return build


@hookimpl
def seqpipe_architectures() -> list[ArchitectureSpec]:
    return [
        ArchitectureSpec(
            name="peephole_lstm",
            build=_builder("peephole_lstm", peephole=True, cifg=False),
            description="LSTM with peephole connections (Gers & Schmidhuber 2000)",
            onnx_lowering=NATIVE_RECURRENT,
            test_params=_TEST_PARAMS,
            default_lr=GATED_DEFAULT_LR,
        ),
        ArchitectureSpec(
            name="cifg_lstm",
            build=_builder("cifg_lstm", peephole=False, cifg=True),
            description="LSTM with a coupled input-forget gate (f = 1 - i)",
            onnx_lowering=NATIVE_RECURRENT,
            test_params=_TEST_PARAMS,
            default_lr=GATED_DEFAULT_LR,
        ),
    ]
