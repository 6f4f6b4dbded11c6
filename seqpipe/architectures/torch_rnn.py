"""Built-in plugin: ``lstm``, ``gru`` and ``rnn`` on the fast ``torch.nn`` kernels.

Registered through the same ``seqpipe_architectures`` hook as any external plugin.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqpipe.architectures.initialization import chrono_init, resolve_gate_bias_init
from seqpipe.architectures.layout import activation_name, torch_rnn_layers
from seqpipe.architectures.native_onnx import NATIVE_RECURRENT
from seqpipe.architectures.options import check_options
from seqpipe.architectures.padding import summarize
from seqpipe.architectures.spec import ArchitectureSpec, BodyConfig
from seqpipe.hookspecs import hookimpl

_RNN_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
#: Activations cuDNN/ATen implement natively: (activation, recurrent_activation).
_NATIVE_GATED = ("tanh", "sigmoid")
_RNN_NONLINEARITIES = ("tanh", "relu")
#: ``architecture_options`` of the gated bodies (lstm, gru and the LSTM variants):
#: ``gate_bias_init`` None picks chrono for sigmoid-like gates (see
#: :mod:`~seqpipe.architectures.initialization`).
GATED_OPTIONS: dict[str, object] = {"gate_bias_init": None}


#: Training on the CPU, torch's ``nn.GRU`` (no oneDNN kernel, unlike ``nn.LSTM``)
#: is slower than seqpipe's hand-written GRU recurrence up to about this many
#: batch rows times hidden units, and faster beyond (``bench/cells.py --gru-sizes``:
#: forward + backward, one thread, 2.5x faster at 8 x 32, 1.2x at 64 x 64, 0.84x at
#: 256 x 64).
GRU_TIME_LOOP_MAX_WIDTH = 4096


def gru_time_loop_is_faster(rnn: nn.GRU, x: torch.Tensor) -> bool:
    """Whether :func:`~seqpipe.architectures.cells.gru_time_loop` should run this
    call of ``rnn`` instead of ``rnn`` itself: a training step (``rnn`` in training
    mode, gradients on) on the CPU, in float32 (no autocast: ``nn.GRU`` computes
    partly in bfloat16 under it), at most :data:`GRU_TIME_LOOP_MAX_WIDTH` batch rows
    times hidden units, with no hooks on ``rnn`` (they would not run: pruning and
    weight norm live in them) and no tracing (a trace would unroll the Python time
    loop). Everything else, inference included, stays on ``nn.GRU``, which is also
    the faster one at inference at every size measured."""
    return (
        # First: under a trace, the size test below would record a tensor comparison.
        not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and rnn.training
        and torch.is_grad_enabled()
        and x.device.type == "cpu"
        and not torch.is_autocast_enabled("cpu")
        and x.shape[0] * rnn.hidden_size <= GRU_TIME_LOOP_MAX_WIDTH
        and not _has_hooks(rnn)
    )


def _has_hooks(module: nn.Module) -> bool:
    """Whether calling ``module`` runs forward or backward hooks of its own or global
    ones, which :func:`gru_time_loop` (reading the parameters directly) would skip."""
    hooks = nn.modules.module
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
        or hooks._global_forward_hooks
        or hooks._global_forward_pre_hooks
        or hooks._global_backward_hooks
        or hooks._global_backward_pre_hooks
    )


class TorchRecurrentBody(nn.Module):
    """``nn.LSTM``/``nn.GRU``/``nn.RNN`` (batch first) behind the body contract.

    Causal bodies run on the padded batch and read each sequence's last valid step
    (later steps cannot leak backwards). Bidirectional bodies with ragged lengths
    are packed, so the backward direction starts at each sequence's own end.
    """

    def __init__(self, kind: str, config: BodyConfig) -> None:
        super().__init__()
        kwargs = {}
        if kind == "rnn":
            kwargs["nonlinearity"] = config.activation
        self.kind = kind
        self.hidden_size = config.hidden_size
        self.bidirectional = config.bidirectional
        self.output_size = config.hidden_size * config.num_directions
        self.rnn = _RNN_CLASSES[kind](
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
            **kwargs,
        )

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "gru" and gru_time_loop_is_faster(self.rnn, x):
            from seqpipe.architectures import cells  # lazily, as _build does

            out = cells.gru_time_loop(self.rnn, x, lengths, self.rnn.training)
        elif lengths is not None and self.bidirectional:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        else:
            out, _ = self.rnn(x)
        return out, summarize(out, lengths, self.hidden_size, self.bidirectional)

    def onnx_recurrent_layers(self) -> list[dict]:
        """The layers as native ONNX recurrent nodes (see :mod:`~seqpipe.architectures.layout`)."""
        return torch_rnn_layers(self.rnn)


def _build(kind: str, config: BodyConfig) -> nn.Module:
    activation = activation_name(config.activation)
    recurrent = activation_name(config.recurrent_activation, "recurrent_activation")
    if kind == "rnn":
        check_options(kind, config.options, {})  # no options: a typo must not pass silently
        if activation not in _RNN_NONLINEARITIES:
            raise ValueError(
                f"architecture 'rnn' supports activation in {list(_RNN_NONLINEARITIES)}, "
                f"got {config.activation!r}"
            )
        return TorchRecurrentBody(kind, replace(config, activation=activation))
    options = check_options(kind, config.options, GATED_OPTIONS)
    gate_bias_init = resolve_gate_bias_init(kind, options["gate_bias_init"], recurrent)
    if (activation, recurrent) != _NATIVE_GATED:
        # Keras-style activations need a hand-written cell; imported lazily so the
        # fast path never pays for it.
        from seqpipe.architectures import cells

        body = cells.build_custom(kind, config)
    else:
        body = TorchRecurrentBody(kind, config)
    if gate_bias_init == "chrono":
        chrono_init(body, kind, config.hidden_size, config.max_timesteps)
    return body


#: Parameter sets for the shared suites. The Keras-activation sets run the custom
#: cells through every check, stacked and bidirectional too, with the activation
#: kinds the ONNX lowering maps differently (Relu, HardSigmoid with alpha/beta,
#: Affine for linear, Sigmoid and Tanh in swapped roles); the LSTM variants reuse
#: them. Linear *gates* are left to tests/test_keras_weights.py: unbounded gates
#: overflow on the suite's longer random sequences, in torch and onnxruntime alike.
BASE_TEST_PARAMS: tuple[dict, ...] = (
    {"hidden_size": 8},
    {"hidden_size": 6, "num_layers": 2, "bidirectional": True, "dropout": 0.1},
)
KERAS_ACTIVATION_TEST_PARAMS: tuple[dict, ...] = (
    {"hidden_size": 8, "activation": "relu", "recurrent_activation": "hard_sigmoid"},
    {
        "hidden_size": 6,
        "num_layers": 2,
        "bidirectional": True,
        "activation": None,
        "recurrent_activation": "sigmoid",
    },
    {"hidden_size": 6, "num_layers": 2, "activation": "sigmoid", "recurrent_activation": "tanh"},
)

#: torch.nn.RNN's other nonlinearity (it has no gates).
RNN_TEST_PARAMS: tuple[dict, ...] = ({"hidden_size": 8, "num_layers": 2, "activation": "relu"},)


#: ``lr="auto"`` for the gated bodies: with chrono init and ``clip_grad_norm=1``, Adam at
#: 1e-2 lifted plain ``lstm`` from 0.55 to 0.79 on PickupGestureWiimoteZ and from 0.48
#: to 0.61 on OSULeaf (``bench/ucr.py``, 3 seeds; see the README's real-data section).
GATED_DEFAULT_LR = 1e-2


def _spec(kind: str, description: str) -> ArchitectureSpec:
    def build(config: BodyConfig) -> nn.Module:
        return _build(kind, config)

    build.__name__ = f"build_{kind}"
    return ArchitectureSpec(
        name=kind,
        build=build,
        description=description,
        onnx_lowering=NATIVE_RECURRENT,
        test_params=BASE_TEST_PARAMS
        + (RNN_TEST_PARAMS if kind == "rnn" else KERAS_ACTIVATION_TEST_PARAMS),
        # rnn has no gates to keep a gradient alive at a larger step: Adam's default.
        default_lr=None if kind == "rnn" else GATED_DEFAULT_LR,
    )


@hookimpl
def seqpipe_architectures() -> list[ArchitectureSpec]:
    return [
        _spec("lstm", "Long short-term memory (torch.nn.LSTM; custom cell for Keras activations)"),
        _spec("gru", "Gated recurrent unit (torch.nn.GRU; custom cell for Keras activations)"),
        _spec("rnn", "Elman RNN with tanh or relu (torch.nn.RNN)"),
    ]
