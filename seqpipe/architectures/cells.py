"""Hand-written LSTM and GRU layers with Keras-style activations, peepholes and CIFG.

``torch.nn.LSTM``/``GRU`` hard-wire tanh and sigmoid. Keras users write
``LSTM(50, activation="relu")`` (tanh saturates and cannot extrapolate to targets
like 450), and the literature adds peephole connections and a coupled input-forget
gate. :class:`CustomLSTM` and :class:`CustomGRU` implement these behind the body
contract of :mod:`seqpipe.architectures.spec`.

Equations (``a`` = ``activation``, ``σ`` = ``recurrent_activation``, ``⊙`` elementwise)::

    LSTM   i = σ(W_i x + R_i h + b_i [+ p_i ⊙ c_prev])
           f = σ(W_f x + R_f h + b_f [+ p_f ⊙ c_prev])      CIFG: f = 1 - i
           g = a(W_g x + R_g h + b_g)
           c = f ⊙ c_prev + i ⊙ g
           o = σ(W_o x + R_o h + b_o [+ p_o ⊙ c])            (peepholes: Gers & Schmidhuber 2000)
           h = o ⊙ a(c)
    GRU    r = σ(W_r x + b_ir + R_r h + b_hr)               (torch's GRU, Keras reset_after=True,
           z = σ(W_z x + b_iz + R_z h + b_hz)                ONNX linear_before_reset=1)
           n = a(W_n x + b_in + r ⊙ (R_n h + b_hn))
           h = (1 - z) ⊙ n + z ⊙ h_prev

With the coupled gate (CIFG) the *input* gate owns the weights and the forget gate
is ``f = 1 - i``, exactly what onnxruntime's ``LSTM`` computes with
``input_forget=1`` (checked numerically: it ignores the forget-gate weights and
peephole). "The input gate is 1 - the forget gate" is the same statement.

Parameters are stored as torch stores them (``weight_ih_l{k}[_reverse]``
``(gates*H, in)``, ``weight_hh_l{k}`` ``(gates*H, H)``, ``bias_ih_l{k}``,
``bias_hh_l{k}``; LSTM gate order ``i, f, g, o``, CIFG ``i, g, o``, GRU ``r, z, n``),
so a :class:`CustomLSTM` with zero peepholes and tanh/sigmoid equals ``nn.LSTM``
with the same weights. Peepholes are ``peephole_l{k}`` of shape ``(n, H)``, rows
``i, f, o`` (CIFG: ``i, o``).

Module layout: activations in :mod:`~seqpipe.architectures.activations`, the
time loops (autograd functions) in :mod:`~seqpipe.architectures.recurrences`, the
bodies here.

Speed: the input projection of all time steps is one matmul; only the recurrent
matmul and a few fused elementwise ops run per step, inside a custom
``autograd.Function`` whose hand-written backward also runs one matmul per step
and computes the weight gradients of all steps in one matmul. Ragged batches need
no masking inside the loop: padding is trailing, the forward direction is causal,
and the backward direction runs on each sequence reversed within its own length
(:func:`~seqpipe.architectures.padding.reverse_padded`), so valid steps never see
padding; final states are gathered at each sequence's last valid step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from seqpipe.architectures.layout import (
    CIFG_PEEPHOLES_TO_ONNX,
    CIFG_TO_ONNX,
    PEEPHOLES_TO_ONNX,
    TORCH_TO_ONNX,
    activation_name,
    onnx_activations,
    reorder_blocks,
)
from seqpipe.architectures.padding import last_valid, reverse_padded, summarize
from seqpipe.architectures.recurrences import GRURecurrence, LSTMRecurrence
from seqpipe.architectures.spec import BodyConfig

Tensor = torch.Tensor


def _reversal_index(lengths: Tensor | None, steps: int, batch: int, device: torch.device):
    """Row index that reverses a flattened time-major ``(T*B, d)`` tensor per sequence.

    Built from :func:`reverse_padded`, so the rule (reverse within each length, leave
    padding in place) lives in one place; it is its own inverse.
    """
    if lengths is None:
        return None
    times = torch.arange(steps, device=device).expand(batch, steps).unsqueeze(-1)
    reversed_times = reverse_padded(times, lengths).squeeze(-1)  # (B, T)
    return (reversed_times.t() * batch + torch.arange(batch, device=device)).reshape(-1)


def _reverse(x: Tensor, index: Tensor | None) -> Tensor:
    if index is None:
        return x.flip(0)
    return x.reshape(-1, x.shape[-1]).index_select(0, index).view(x.shape)


def _float_state(hx: Any) -> Any:
    """An initial state (a tensor, a tuple of them, or None) in float32."""
    if hx is None:
        return None
    return tuple(h.float() for h in hx) if isinstance(hx, tuple) else hx.float()


class _CustomRecurrentBody(nn.Module):
    """Stacking, directions, parameters and the body contract shared by both cells."""

    kind = ""
    gates = 0

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        activation: str | None = "tanh",
        recurrent_activation: str | None = "sigmoid",
    ) -> None:
        super().__init__()
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.activation = activation_name(activation, "activation")
        self.recurrent_activation = activation_name(recurrent_activation, "recurrent_activation")
        self.output_size = self.hidden_size * self.num_directions

    @classmethod
    def from_config(cls, config: BodyConfig, **kwargs: Any) -> _CustomRecurrentBody:
        """Build from the estimators' :class:`~seqpipe.BodyConfig`.

        ``kwargs`` are the subclass's own options (``peephole``, ``cifg``). Dropout
        applies between layers only, as in torch.nn.LSTM, so one layer gets none.
        """
        return cls(
            config.input_size,
            config.hidden_size,
            config.num_layers,
            config.bidirectional,
            config.dropout if config.num_layers > 1 else 0.0,
            config.activation,
            config.recurrent_activation,
            **kwargs,
        )

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.output_size

    def _make_parameters(self, extra: Callable[[int, str], None] | None = None) -> None:
        rows = self.gates * self.hidden_size
        for layer in range(self.num_layers):
            for s in self.suffixes:
                shapes = {
                    "weight_ih": (rows, self.layer_input_size(layer)),
                    "weight_hh": (rows, self.hidden_size),
                    "bias_ih": (rows,),
                    "bias_hh": (rows,),
                }
                for name, shape in shapes.items():
                    self.register_parameter(f"{name}_l{layer}{s}", nn.Parameter(torch.empty(shape)))
                if extra is not None:
                    extra(layer, s)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's RNN initialisation: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = self.hidden_size**-0.5
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _param(self, name: str, layer: int, suffix: str) -> Tensor:
        return getattr(self, f"{name}_l{layer}{suffix}")

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}, "
            f"activation={self.activation!r}, recurrent_activation={self.recurrent_activation!r}"
        )

    # Subclasses: run one direction of one layer on time-major input.
    def _direction(self, x: Tensor, layer: int, suffix: str, state: Any) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def _zero_state(self, batch: int, like: Tensor) -> Any:
        raise NotImplementedError

    def _split_state(self, hx: Any, index: int) -> Any:
        raise NotImplementedError

    def _final_state(self, per_step: Any, last: Tensor | None) -> Any:
        raise NotImplementedError

    def _stack_states(self, states: list[Any]) -> Any:
        raise NotImplementedError

    def forward_with_state(
        self, x: Tensor, lengths: Tensor | None = None, hx: Any = None
    ) -> tuple[Tensor, Any]:
        """Run the layers; return per-step outputs and the final state, like ``nn.LSTM``.

        Parameters
        ----------
        x : Tensor of shape (batch, time, input_size)
        lengths : int64 Tensor of shape (batch,) or None
            Each sequence's true length; final states are taken at the last valid
            step (for the backward direction: after step 0).
        hx : initial state or None
            ``(h0, c0)`` for an LSTM, ``h0`` for a GRU, each shaped
            ``(num_layers * num_directions, batch, hidden_size)``; zeros if None.

        Returns
        -------
        output : Tensor of shape (batch, time, output_size)
        state : ``(h_n, c_n)`` (LSTM) or ``h_n`` (GRU), shaped like ``hx``.
        """
        return self._run(x, lengths, hx, want_state=True)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out, _ = self._run(x, lengths, None, want_state=False)
        return out, summarize(out, lengths, self.hidden_size, self.bidirectional)

    def _run(self, x: Tensor, lengths: Tensor | None, hx: Any, *, want_state: bool):
        if not torch.is_autocast_enabled(x.device.type):
            return self._run_float32(x, lengths, hx, want_state)
        # Under autocast (precision="bf16-mixed") the hand-written time loops compute
        # in float32: their per-step matmuls mix the float32 recurrent weights with
        # the state, which autocast does not cast inside an autograd Function, and at
        # these sizes their cost is per-step overhead, not arithmetic.
        with torch.autocast(x.device.type, enabled=False):
            return self._run_float32(x.float(), lengths, _float_state(hx), want_state)

    def _run_float32(self, x: Tensor, lengths: Tensor | None, hx: Any, want_state: bool):
        batch, steps, _ = x.shape
        device = x.device
        rev_index = _reversal_index(lengths, steps, batch, device) if self.bidirectional else None
        last = lengths if want_state else None
        layer_in = x.transpose(0, 1).contiguous()  # time-major from here on
        finals: list[Any] = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout and self.training:
                layer_in = F.dropout(layer_in, self.dropout, training=True)
            outputs = []
            for d, suffix in enumerate(self.suffixes):
                index = layer * self.num_directions + d
                state = self._zero_state(batch, x) if hx is None else self._split_state(hx, index)
                source = layer_in if d == 0 else _reverse(layer_in, rev_index)
                out, per_step = self._direction(source, layer, suffix, state)
                if want_state:
                    finals.append(self._final_state(per_step, last))
                outputs.append(out if d == 0 else _reverse(out, rev_index))
            layer_in = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
        return layer_in.transpose(0, 1), (self._stack_states(finals) if want_state else None)

    @staticmethod
    def _at_last(per_step: Tensor, lengths: Tensor | None) -> Tensor:
        # per_step is time-major (T, B, H); the shared helper reads batch-first.
        return last_valid(per_step.transpose(0, 1), lengths)

    # --- ONNX ----------------------------------------------------------------------
    def _onnx_stack(self, name: str, layer: int, order: tuple[int, ...]) -> np.ndarray:
        """``(num_directions, len(order)*H, ...)`` with torch's gate blocks reordered
        (see :func:`~seqpipe.architectures.layout.reorder_blocks`)."""
        blocks = []
        for s in self.suffixes:
            weight = self._param(name, layer, s).detach().float().cpu().numpy()
            if name == "peephole":  # (n, H) rows -> one (n*H,) vector of gate blocks
                weight = weight.reshape(-1)
            blocks.append(reorder_blocks(weight, order))
        return np.stack(blocks)

    def _onnx_layer(self, layer: int, op: str, order: tuple[int, ...], names: list[str]) -> dict:
        bias = [self._onnx_stack(b, layer, order) for b in ("bias_ih", "bias_hh")]
        return {
            "op": op,
            "hidden_size": self.hidden_size,
            "direction": "bidirectional" if self.bidirectional else "forward",
            "W": self._onnx_stack("weight_ih", layer, order),
            "R": self._onnx_stack("weight_hh", layer, order),
            "B": np.concatenate(bias, axis=1),
            "P": None,
            **onnx_activations(names, self.num_directions),
            "input_forget": 0,
            "linear_before_reset": 0,
        }


class CustomLSTM(_CustomRecurrentBody):
    """LSTM layers with Keras activations, optional peepholes and coupled gate.

    Follows the body contract (``forward(x, lengths) -> (sequence, summary)``);
    see the module docstring for the equations.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int, default=1
    bidirectional : bool, default=False
    dropout : float, default=0.0
        Dropout on the outputs of every layer but the last (training only).
    activation : str or None, default="tanh"
        Keras name of the candidate and cell-output activation.
    recurrent_activation : str or None, default="sigmoid"
        Keras name of the gate activation.
    peephole : bool, default=False
        Gers & Schmidhuber peepholes: i and f see ``c_prev``, o sees the new ``c``.
    cifg : bool, default=False
        Coupled input-forget gate: ``f = 1 - i``; no forget-gate weights.

    Examples
    --------
    >>> import torch
    >>> body = CustomLSTM(3, 8, activation="relu", peephole=True)
    >>> out, summary = body(torch.zeros(2, 5, 3))
    >>> out.shape, summary.shape
    (torch.Size([2, 5, 8]), torch.Size([2, 8]))
    """

    kind = "lstm"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        activation: str | None = "tanh",
        recurrent_activation: str | None = "sigmoid",
        peephole: bool = False,
        cifg: bool = False,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bidirectional,
            dropout,
            activation,
            recurrent_activation,
        )
        self.peephole = bool(peephole)
        self.cifg = bool(cifg)
        self.gates = 3 if self.cifg else 4

        def peepholes(layer: int, suffix: str) -> None:
            if self.peephole:
                shape = (self.gates - 1, self.hidden_size)  # i, f, o (CIFG: i, o)
                weight = nn.Parameter(torch.empty(shape))
                self.register_parameter(f"peephole_l{layer}{suffix}", weight)

        self._make_parameters(peepholes)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, peephole={self.peephole}, cifg={self.cifg}"

    def _direction(self, x, layer, suffix, state):
        w_ih = self._param("weight_ih", layer, suffix)
        bias = self._param("bias_ih", layer, suffix) + self._param("bias_hh", layer, suffix)
        steps, batch, features = x.shape
        xproj = torch.addmm(bias, x.reshape(-1, features), w_ih.t()).view(steps, batch, -1)
        peep = self._param("peephole", layer, suffix) if self.peephole else x.new_empty(0)
        h0, c0 = state
        outs, cells = LSTMRecurrence.apply(
            xproj,
            self._param("weight_hh", layer, suffix),
            peep,
            h0,
            c0,
            self.activation,
            self.recurrent_activation,
            self.cifg,
        )
        return outs, (outs, cells)

    def _zero_state(self, batch, like):
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros

    def _split_state(self, hx, index):
        return hx[0][index], hx[1][index]

    def _final_state(self, per_step, last):
        return self._at_last(per_step[0], last), self._at_last(per_step[1], last)

    def _stack_states(self, states):
        return torch.stack([h for h, _ in states]), torch.stack([c for _, c in states])

    def onnx_recurrent_layers(self) -> list[dict[str, Any]]:
        """The layers as ONNX ``LSTM`` nodes (see :mod:`~seqpipe.architectures.layout`).

        ONNX gate order is ``i, o, f, c``; with the coupled gate the forget block is
        zero (onnxruntime ignores it with ``input_forget=1``) and ``P`` is ``i, o, f``.
        """
        order = CIFG_TO_ONNX if self.cifg else TORCH_TO_ONNX["LSTM"]
        names = [self.recurrent_activation, self.activation, self.activation]
        layers = []
        for layer in range(self.num_layers):
            spec = self._onnx_layer(layer, "LSTM", order, names)
            if self.peephole:
                peep_order = CIFG_PEEPHOLES_TO_ONNX if self.cifg else PEEPHOLES_TO_ONNX
                spec["P"] = self._onnx_stack("peephole", layer, peep_order)
            spec["input_forget"] = int(self.cifg)
            layers.append(spec)
        return layers


class CustomGRU(_CustomRecurrentBody):
    """GRU layers with Keras activations (Keras ``reset_after=True`` = torch's GRU).

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int, default=1
    bidirectional : bool, default=False
    dropout : float, default=0.0
    activation : str or None, default="tanh"
        Keras name of the candidate activation.
    recurrent_activation : str or None, default="sigmoid"
        Keras name of the update/reset gate activation.

    Examples
    --------
    >>> import torch
    >>> body = CustomGRU(2, 4, bidirectional=True, activation="relu")
    >>> body(torch.zeros(3, 6, 2))[1].shape
    torch.Size([3, 8])
    """

    kind = "gru"
    gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        activation: str | None = "tanh",
        recurrent_activation: str | None = "sigmoid",
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bidirectional,
            dropout,
            activation,
            recurrent_activation,
        )
        self._make_parameters()

    def _direction(self, x, layer, suffix, state):
        w_ih = self._param("weight_ih", layer, suffix)
        steps, batch, features = x.shape
        xproj = torch.addmm(
            self._param("bias_ih", layer, suffix), x.reshape(-1, features), w_ih.t()
        ).view(steps, batch, -1)
        outs = GRURecurrence.apply(
            xproj,
            self._param("weight_hh", layer, suffix),
            self._param("bias_hh", layer, suffix),
            state,
            self.activation,
            self.recurrent_activation,
        )
        return outs, outs

    def _zero_state(self, batch, like):
        return like.new_zeros(batch, self.hidden_size)

    def _split_state(self, hx, index):
        return hx[index]

    def _final_state(self, per_step, last):
        return self._at_last(per_step, last)

    def _stack_states(self, states):
        return torch.stack(states)

    def onnx_recurrent_layers(self) -> list[dict[str, Any]]:
        """The layers as ONNX ``GRU`` nodes, gate order ``z, r, h``, ``linear_before_reset=1``."""
        names = [self.recurrent_activation, self.activation]
        layers = []
        for layer in range(self.num_layers):
            spec = self._onnx_layer(layer, "GRU", TORCH_TO_ONNX["GRU"], names)
            spec["linear_before_reset"] = 1  # torch's (and Keras reset_after) GRU
            layers.append(spec)
        return layers


class _GRUTimeLoop(CustomGRU):
    """:class:`CustomGRU`'s time loop over the parameters of an ``nn.GRU``.

    The names (``weight_ih_l0``, ..., ``_reverse``) and gate order (``r, z, n``)
    are torch's in both, so the same weights give the same function. No parameters
    of its own: built per call, it only reads the ``nn.GRU``'s.
    """

    def __init__(self, rnn: nn.GRU, training: bool) -> None:
        _CustomRecurrentBody.__init__(
            self, rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bidirectional, rnn.dropout
        )
        self._rnn = (rnn,)  # a tuple: not registered as a submodule
        self.train(training)

    def _param(self, name: str, layer: int, suffix: str) -> Tensor:
        return getattr(self._rnn[0], f"{name}_l{layer}{suffix}")


def gru_time_loop(rnn: nn.GRU, x: Tensor, lengths: Tensor | None, training: bool) -> Tensor:
    """The per-step outputs of ``rnn`` (batch first) computed by :class:`GRURecurrence`.

    Equal to ``rnn(x)[0]`` up to float rounding at every valid step (for a
    bidirectional ``rnn`` with ``lengths``: to the packed run's; its padded steps
    are not zeroed). Its hand-written backward trains faster than torch's CPU GRU
    at small batches (see
    :func:`seqpipe.architectures.torch_rnn.gru_time_loop_is_faster`); it is
    differentiable once (no gradient of a gradient), and ``rnn``'s hooks do not run.

    Parameters
    ----------
    rnn : torch.nn.GRU
        Batch first, tanh/sigmoid (torch's only GRU).
    x : Tensor of shape (batch, time, input_size)
    lengths : int64 Tensor of shape (batch,) or None
    training : bool
        Whether dropout between stacked layers applies (the caller's ``training``).

    Returns
    -------
    Tensor of shape (batch, time, hidden_size * num_directions)
    """
    out, _ = _GRUTimeLoop(rnn, training)._run(x, lengths, None, want_state=False)
    return out


def build_custom(
    kind: str, config: BodyConfig, *, peephole: bool = False, cifg: bool = False
) -> nn.Module:
    """The hand-written body for ``kind`` ("lstm" or "gru") and ``config``.

    Used by the ``lstm``/``gru`` architectures when the activations are not
    tanh/sigmoid, and by the ``peephole_lstm``/``cifg_lstm`` architectures.

    Examples
    --------
    >>> from seqpipe import BodyConfig
    >>> body = build_custom("gru", BodyConfig(input_size=2, hidden_size=4, activation="relu"))
    >>> type(body).__name__, body.output_size
    ('CustomGRU', 4)
    """
    if kind == "lstm":
        return CustomLSTM.from_config(config, peephole=peephole, cifg=cifg)
    if kind == "gru":
        if peephole or cifg:
            raise ValueError("peepholes and the coupled input-forget gate exist only for LSTMs")
        return CustomGRU.from_config(config)
    raise ValueError(f"no hand-written cell for kind {kind!r}; expected 'lstm' or 'gru'")
