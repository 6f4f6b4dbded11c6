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
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from seqpipe.architectures.padding import reverse_padded, summarize
from seqpipe.architectures.spec import BodyConfig

Tensor = torch.Tensor

# --- activations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Activation:
    """A Keras activation: how to apply it, its derivative, its ONNX spelling.

    ``backward(grad, y)`` is ``grad * act'(x)`` computed *from the output*
    ``y = act(x)`` (all supported activations allow it, so backward needs no
    pre-activations); ``None`` means the identity. Where ATen has a fused kernel
    for it (the ``*_backward`` ops autograd itself uses), that kernel is used.
    ``onnx_alpha``/``onnx_beta`` are the ONNX ``activation_alpha``/``_beta`` values
    the activation consumes (``None``: it takes none).
    """

    name: str
    apply: Callable[[Tensor], Tensor]
    inplace: Callable[[Tensor], Tensor]
    backward: Callable[[Tensor, Tensor], Tensor] | None
    onnx: str
    onnx_alpha: float | None = None
    onnx_beta: float | None = None


def _identity(x: Tensor) -> Tensor:
    return x


def _softsign_(x: Tensor) -> Tensor:
    return x.div_(x.abs().add_(1.0))


def _softplus_(x: Tensor) -> Tensor:
    return x.copy_(F.softplus(x))  # torch has no in-place softplus


_aten = torch.ops.aten


def _hard_sigmoid_backward(grad: Tensor, y: Tensor) -> Tensor:
    # slope 1/6 strictly inside (0, 1), i.e. for -3 < x < 3, as torch's hardsigmoid
    return grad * ((y > 0) & (y < 1)) / 6


#: Keras activation names seqpipe's custom cells accept (``None`` means "linear").
ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("tanh", torch.tanh, torch.tanh_, _aten.tanh_backward, "Tanh"),
        Activation("sigmoid", torch.sigmoid, torch.sigmoid_, _aten.sigmoid_backward, "Sigmoid"),
        # Keras 3: hard_sigmoid(x) = relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1), which is
        # torch's hardsigmoid and ONNX HardSigmoid(alpha=1/6, beta=0.5). (Keras 2 used 0.2.)
        Activation(
            "hard_sigmoid",
            F.hardsigmoid,
            lambda x: F.hardsigmoid(x, inplace=True),
            _hard_sigmoid_backward,
            "HardSigmoid",
            1.0 / 6.0,
            0.5,
        ),
        Activation(
            "relu", torch.relu, torch.relu_, lambda g, y: _aten.threshold_backward(g, y, 0), "Relu"
        ),
        # ONNX has no Identity activation for RNN ops; Affine(1, 0) is the identity.
        Activation("linear", _identity, _identity, None, "Affine", 1.0, 0.0),
        Activation(
            "softsign",
            F.softsign,
            _softsign_,
            lambda g, y: g * (1 - y.abs()).square(),
            "Softsign",
        ),
        Activation(
            "softplus", F.softplus, _softplus_, lambda g, y: g * -torch.expm1(-y), "Softplus"
        ),
        Activation(
            "elu",
            F.elu,
            F.elu_,
            lambda g, y: _aten.elu_backward(g, 1.0, 1.0, 1.0, True, y),
            "Elu",
            1.0,
        ),
    )
}


def check_activation(name: str | None, what: str = "activation") -> str:
    """Canonical (lower-case) Keras name of ``name``; ``None`` means ``"linear"``.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.

    Examples
    --------
    >>> check_activation("ReLU")
    'relu'
    >>> check_activation(None)
    'linear'
    """
    key = "linear" if name is None else str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(
            f"unknown {what} {name!r}; valid names are {sorted(ACTIVATIONS)} (or None for linear)"
        )
    return key


def _times_grad(act: Activation, y: Tensor, x: Tensor) -> Tensor:
    """``x * act'(.)`` evaluated from the activation's output ``y``."""
    return x if act.backward is None else act.backward(x, y)


# --- the recurrences -------------------------------------------------------------------


class _LSTMRecurrence(torch.autograd.Function):
    """One LSTM direction over time-major pre-projected inputs.

    Inputs: ``xproj (T, B, G*H)`` (``x @ W_ih.T + b_ih + b_hh``), ``w_hh (G*H, H)``,
    ``peep`` (``(n, H)`` or empty), ``h0``, ``c0`` ``(B, H)``. Returns every step's
    ``h`` and ``c``, ``(T, B, H)`` each.

    Per-step views are split off once with ``unbind`` and results are written with
    ``out=``: at these sizes the cost of a step is mostly per-op overhead.
    """

    @staticmethod
    def forward(ctx, xproj, w_hh, peep, h0, c0, act_name, ract_name, cifg):  # type: ignore[override]
        act, ract = ACTIVATIONS[act_name], ACTIVATIONS[ract_name]
        steps, batch, _ = xproj.shape
        hidden = w_hh.shape[1]
        gates = 3 if cifg else 4
        has_peep = peep.numel() > 0
        w_t = w_hh.t()
        acts = torch.empty_like(xproj)  # post-activation gates, kept for backward
        cells = xproj.new_empty(steps, batch, hidden)
        outs = xproj.new_empty(steps, batch, hidden)
        # Gate slots: LSTM (i, f, g, o), CIFG (i, g, o); n_in gates read c_prev.
        n_in = 1 if cifg else 2
        a4 = acts.view(steps, batch, gates, hidden)
        a_steps, x_steps = acts.unbind(0), xproj.unbind(0)
        in_steps = a4[:, :, :n_in].unbind(0)
        i_steps, g_steps, o_steps = (a4[:, :, k].unbind(0) for k in (0, gates - 2, gates - 1))
        f_steps = a4[:, :, 1].unbind(0)
        c_steps, h_steps = cells.unbind(0), outs.unbind(0)
        if has_peep:
            p_in, p_o = peep[:n_in], peep[n_in]
        cell_outs = []  # a(c) of every step
        h, c = h0, c0
        for t in range(steps):
            torch.addmm(x_steps[t], h, w_t, out=a_steps[t])
            if has_peep:
                in_steps[t].addcmul_(p_in, c.unsqueeze(1))
            ract.inplace(in_steps[t])
            act.inplace(g_steps[t])
            o = o_steps[t]
            if not has_peep:  # otherwise o waits for the new c
                ract.inplace(o)
            c_new = c_steps[t]
            if cifg:  # c = (1 - i) c + i g = c + i (g - c)
                torch.addcmul(c, i_steps[t], g_steps[t] - c, out=c_new)
            else:
                torch.mul(f_steps[t], c, out=c_new).addcmul_(i_steps[t], g_steps[t])
            if has_peep:
                ract.inplace(o.addcmul_(p_o, c_new))
            ac = act.apply(c_new)
            cell_outs.append(ac)
            h = torch.mul(o, ac, out=h_steps[t])
            c = c_new
        cell_outs_all = torch.stack(cell_outs) if act.backward is not None else cells
        ctx.save_for_backward(acts, cells, cell_outs_all, outs, h0, c0, w_hh, peep)
        ctx.config = (act, ract, cifg, has_peep)
        ctx.set_materialize_grads(False)
        return outs, cells

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outs, d_cells):  # type: ignore[override]
        acts, cells, cell_outs, outs, h0, c0, w_hh, peep = ctx.saved_tensors
        act, ract, cifg, has_peep = ctx.config
        steps, batch, width = acts.shape
        hidden = w_hh.shape[1]
        gates = width // hidden
        n_in = 1 if cifg else 2
        a4 = acts.view(steps, batch, gates, hidden)
        c_prev = torch.cat([c0.unsqueeze(0), cells[:-1]])
        i, g, o = a4[:, :, 0], a4[:, :, gates - 2], a4[:, :, gates - 1]
        # Each pre-activation gradient of a step is dc * m (gates i, f, g) or
        # dh * m (gate o); the multipliers m of all steps are computed at once here
        # so the sequential loop below is a handful of ops per step.
        if cifg:
            multipliers = [_times_grad(ract, i, g - c_prev)]
            carry = 1 - i  # dc_prev = dc * carry
        else:
            f = a4[:, :, 1]
            multipliers = [_times_grad(ract, i, g), _times_grad(ract, f, c_prev)]
            carry = f
        multipliers += [_times_grad(act, g, i), _times_grad(ract, o, cell_outs)]
        m = torch.stack(multipliers, dim=2)
        k = _times_grad(act, cell_outs, o)  # dc += dh * k
        if has_peep:
            k = torch.addcmul(k, m[:, :, gates - 1], peep[n_in])
            for gate in range(n_in):
                carry = torch.addcmul(carry, m[:, :, gate], peep[gate])
        d_gates = torch.empty_like(acts)
        dg4 = d_gates.view(steps, batch, gates, hidden)
        dg_c, dg_o = dg4[:, :, : gates - 1].unbind(0), dg4[:, :, gates - 1].unbind(0)
        m_c, m_o = m[:, :, : gates - 1].unbind(0), m[:, :, gates - 1].unbind(0)
        dg_steps, k_steps, carry_steps = d_gates.unbind(0), k.unbind(0), carry.unbind(0)
        dh_steps = torch.zeros_like(outs).unbind(0) if d_outs is None else d_outs.unbind(0)
        dc_ext = None if d_cells is None else d_cells.unbind(0)
        dh, dc_rec = dh_steps[-1], None  # dh: the full gradient of the step's h
        for t in range(steps - 1, -1, -1):
            dc = dh * k_steps[t] if dc_rec is None else torch.addcmul(dc_rec, dh, k_steps[t])
            if dc_ext is not None:
                dc = dc + dc_ext[t]
            torch.mul(m_c[t], dc.unsqueeze(1), out=dg_c[t])
            torch.mul(m_o[t], dh, out=dg_o[t])
            # the previous step's h gradient: its own output's plus the recurrent one
            dh = torch.addmm(dh_steps[t - 1], dg_steps[t], w_hh) if t else dg_steps[0] @ w_hh
            dc_rec = dc * carry_steps[t]
        h_prev = torch.cat([h0.unsqueeze(0), outs[:-1]])
        d_w_hh = d_gates.view(-1, width).t().mm(h_prev.view(-1, hidden))
        d_peep = None
        if has_peep and ctx.needs_input_grad[2]:
            d_in = (dg4[:, :, :n_in] * c_prev.unsqueeze(2)).sum((0, 1))
            d_o = (dg4[:, :, gates - 1] * cells).sum((0, 1))
            d_peep = torch.cat([d_in, d_o.unsqueeze(0)])
        return d_gates, d_w_hh, d_peep, dh, dc_rec, None, None, None


class _GRURecurrence(torch.autograd.Function):
    """One GRU direction (torch's formulation) over time-major projected inputs.

    Inputs: ``xproj (T, B, 3H)`` (``x @ W_ih.T + b_ih``, gates ``r, z, n``),
    ``w_hh (3H, H)``, ``b_hh (3H,)``, ``h0 (B, H)``. Returns every step's ``h``.
    """

    @staticmethod
    def forward(ctx, xproj, w_hh, b_hh, h0, act_name, ract_name):  # type: ignore[override]
        act, ract = ACTIVATIONS[act_name], ACTIVATIONS[ract_name]
        steps, batch, _ = xproj.shape
        hidden = w_hh.shape[1]
        w_t = w_hh.t()
        acts = torch.empty_like(xproj)  # r, z, n after activation
        rec = torch.empty_like(xproj)  # R h + b_hh (its n block is needed by backward)
        outs = xproj.new_empty(steps, batch, hidden)
        two = 2 * hidden
        rec_steps, h_steps = rec.unbind(0), outs.unbind(0)
        x_rz, x_n = xproj[:, :, :two].unbind(0), xproj[:, :, two:].unbind(0)
        rec_rz, rec_n = rec[:, :, :two].unbind(0), rec[:, :, two:].unbind(0)
        a_rz, a_n = acts[:, :, :two].unbind(0), acts[:, :, two:].unbind(0)
        r_steps, z_steps = acts[:, :, :hidden].unbind(0), acts[:, :, hidden:two].unbind(0)
        h = h0
        for t in range(steps):
            torch.addmm(b_hh, h, w_t, out=rec_steps[t])
            ract.inplace(torch.add(x_rz[t], rec_rz[t], out=a_rz[t]))
            n = act.inplace(torch.addcmul(x_n[t], r_steps[t], rec_n[t], out=a_n[t]))
            h = torch.addcmul(n, z_steps[t], h - n, out=h_steps[t])
        ctx.save_for_backward(acts, rec, outs, h0, w_hh)
        ctx.config = (act, ract)
        return outs

    @staticmethod
    @once_differentiable
    def backward(ctx, d_outs):  # type: ignore[override]
        acts, rec, outs, h0, w_hh = ctx.saved_tensors
        act, ract = ctx.config
        steps, batch, width = acts.shape
        hidden = w_hh.shape[1]
        a3 = acts.view(steps, batch, 3, hidden)
        r, z, n = a3[:, :, 0], a3[:, :, 1], a3[:, :, 2]
        h_prev = torch.cat([h0.unsqueeze(0), outs[:-1]])
        # Every pre-activation gradient of a step is dh times a multiplier: precompute them.
        m_n = _times_grad(act, n, 1 - z)  # of d(W_n x + b_in)
        m = torch.empty_like(a3)  # of d(R h + b_hh), gates r, z, n
        m[:, :, 0] = _times_grad(ract, r, m_n * rec.view(steps, batch, 3, hidden)[:, :, 2])
        m[:, :, 1] = _times_grad(ract, z, h_prev - n)
        torch.mul(m_n, r, out=m[:, :, 2])
        d_rec = torch.empty_like(acts)
        d_h = torch.empty_like(outs)
        m_steps, z_steps = m.unbind(0), z.unbind(0)
        dr_steps = d_rec.view(steps, batch, 3, hidden).unbind(0)
        drec_flat, dh_out, dh_ext = d_rec.unbind(0), d_h.unbind(0), d_outs.unbind(0)
        dh = dh_out[-1].copy_(dh_ext[-1])  # the full gradient of the step's h
        for t in range(steps - 1, -1, -1):
            torch.mul(m_steps[t], dh.unsqueeze(1), out=dr_steps[t])
            # the previous step's h gradient: its own output's, through z, through R
            if t:
                base = torch.addcmul(dh_ext[t - 1], dh, z_steps[t])
                dh = torch.addmm(base, drec_flat[t], w_hh, out=dh_out[t - 1])
            else:
                dh = torch.addmm(dh * z_steps[0], drec_flat[0], w_hh)
        d_in = d_rec.clone()
        d_in.view(steps, batch, 3, hidden)[:, :, 2] = d_h * m_n
        d_w_hh = d_rec.view(-1, width).t().mm(h_prev.view(-1, hidden))
        return d_in, d_w_hh, d_rec.sum((0, 1)), dh, None, None


# --- the bodies ------------------------------------------------------------------------


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
        self.activation = check_activation(activation, "activation")
        self.recurrent_activation = check_activation(recurrent_activation, "recurrent_activation")
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
        batch, steps, _ = x.shape
        device = x.device
        rev_index = _reversal_index(lengths, steps, batch, device) if self.bidirectional else None
        last = None if lengths is None or not want_state else lengths.to(device) - 1
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
    def _at_last(per_step: Tensor, last: Tensor | None) -> Tensor:
        if last is None:
            return per_step[-1]
        return per_step[last, torch.arange(per_step.shape[1], device=per_step.device)]

    # --- ONNX ----------------------------------------------------------------------
    def _onnx_activations(self, names: list[str]) -> dict[str, Any]:
        """ONNX ``activations`` for every direction, with packed alpha/beta lists.

        onnxruntime consumes ``activation_alpha``/``_beta`` in order, one value for
        each activation that takes that argument (e.g. HardSigmoid takes both,
        Elu only alpha, Relu none), so the lists hold only those values.
        """
        acts = [ACTIVATIONS[n] for n in names] * self.num_directions
        alpha = [a.onnx_alpha for a in acts if a.onnx_alpha is not None]
        beta = [a.onnx_beta for a in acts if a.onnx_beta is not None]
        return {
            "activations": [a.onnx for a in acts],
            "activation_alpha": alpha or None,
            "activation_beta": beta or None,
        }

    def _onnx_stack(self, name: str, layer: int, order: list[int]):
        """``(num_directions, len(order)*H, ...)`` with torch's gate blocks reordered;
        ``-1`` in ``order`` is a zero block."""
        blocks = []
        for s in self.suffixes:
            weight = self._param(name, layer, s).detach().float().cpu()
            if name == "peephole":  # (n, H) rows -> one (n*H,) vector of gate blocks
                weight = weight.flatten()
            parts = weight.split(self.hidden_size)
            zero = torch.zeros_like(parts[0])
            blocks.append(torch.cat([zero if k < 0 else parts[k] for k in order]))
        return torch.stack(blocks).numpy()


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
        outs, cells = _LSTMRecurrence.apply(
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
        """The layers as ONNX ``LSTM`` nodes (see :mod:`~seqpipe.architectures.native_onnx`).

        ONNX gate order is ``i, o, f, c``; with the coupled gate the forget block is
        zero (onnxruntime ignores it with ``input_forget=1``) and ``P`` is ``i, o, f``.
        """
        # torch blocks: LSTM (i, f, g, o) -> ONNX (i, o, f, c); CIFG (i, g, o) -> (i, o, -, c).
        order = [0, 2, -1, 1] if self.cifg else [0, 3, 1, 2]
        peep_order = [0, 1, -1] if self.cifg else [0, 2, 1]  # ours (i, f, o) / (i, o)
        layers = []
        for layer in range(self.num_layers):
            bias = [self._onnx_stack(b, layer, order) for b in ("bias_ih", "bias_hh")]
            peep = None
            if self.peephole:
                peep = self._onnx_stack("peephole", layer, peep_order)
            layers.append(
                {
                    "op": "LSTM",
                    "hidden_size": self.hidden_size,
                    "direction": "bidirectional" if self.bidirectional else "forward",
                    "W": self._onnx_stack("weight_ih", layer, order),
                    "R": self._onnx_stack("weight_hh", layer, order),
                    "B": torch.cat([torch.from_numpy(b) for b in bias], dim=1).numpy(),
                    "P": peep,
                    **self._onnx_activations(
                        [self.recurrent_activation, self.activation, self.activation]
                    ),
                    "input_forget": int(self.cifg),
                    "linear_before_reset": 0,
                }
            )
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
        outs = _GRURecurrence.apply(
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
        order = [1, 0, 2]  # torch (r, z, n) -> ONNX (z, r, h)
        layers = []
        for layer in range(self.num_layers):
            bias = [self._onnx_stack(b, layer, order) for b in ("bias_ih", "bias_hh")]
            layers.append(
                {
                    "op": "GRU",
                    "hidden_size": self.hidden_size,
                    "direction": "bidirectional" if self.bidirectional else "forward",
                    "W": self._onnx_stack("weight_ih", layer, order),
                    "R": self._onnx_stack("weight_hh", layer, order),
                    "B": torch.cat([torch.from_numpy(b) for b in bias], dim=1).numpy(),
                    "P": None,
                    **self._onnx_activations([self.recurrent_activation, self.activation]),
                    "input_forget": 0,
                    "linear_before_reset": 1,
                }
            )
        return layers


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
