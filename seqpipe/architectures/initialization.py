"""Gate-bias initialisation for the gated recurrent bodies (LSTM, CIFG-LSTM, GRU).

PyTorch draws every recurrent bias from ``U(-1/sqrt(H), 1/sqrt(H))``: each gate
starts half open, so a memory decays by about half per step and the gradient from a
sequence's last step back to its first vanishes over a few dozen steps. On long
series (hundreds of steps, like most of the UCR archive) a plain LSTM classifier
initialised that way stays at chance level.

*Chrono initialisation* (Tallec & Ollivier, "Can recurrent neural networks warp
time?", ICLR 2018, Eq. 16) sets the gates so the cell's characteristic memory spans
``1 .. T_max - 1`` steps from the start:

* LSTM: forget-gate bias ``b_f ~ log(U(1, T_max - 1))``, input-gate bias
  ``b_i = -b_f``, every other bias 0;
* coupled input-forget gate (``f = 1 - i``): input-gate bias ``b_i = -log(U(1, T_max - 1))``;
* GRU (torch's convention ``h' = (1 - z) n + z h``): update-gate bias
  ``b_z = log(U(1, T_max - 1))``, every other bias 0.

``T_max`` is the longest training sequence (``BodyConfig.max_timesteps``). Biases
are ordinary weights: the initialisation changes training only, never the graph
or its export.

The parameters follow torch's naming and gate order (``bias_ih_l{k}[_reverse]``,
``bias_hh_l{k}[_reverse]``; LSTM ``i, f, g, o``, CIFG ``i, g, o``, GRU ``r, z, n``),
which both ``torch.nn.LSTM``/``GRU`` and the hand-written cells use.
"""

from __future__ import annotations

import re

import torch
from torch import nn

#: Values of the ``gate_bias_init`` architecture option.
GATE_BIAS_INITS: tuple[str, ...] = ("chrono", "torch")

#: Gate activations chrono initialisation is defined for (a gate in (0, 1)).
SIGMOID_GATES: tuple[str, ...] = ("sigmoid", "hard_sigmoid")

_BIAS = re.compile(r"^bias_(ih|hh)_l\d+(_reverse)?$")
#: (cell -> (gate index, sign)) for the ``b = sign * log(U(1, T_max - 1))`` blocks.
_CHRONO_GATES: dict[str, tuple[tuple[int, float], ...]] = {
    "lstm": ((1, 1.0), (0, -1.0)),  # forget +b, input -b
    "cifg": ((0, -1.0),),  # f = 1 - i: input -b opens the forget gate
    "gru": ((1, 1.0),),  # update gate z keeps the old state
}


def resolve_gate_bias_init(
    architecture: str, value: str | None, recurrent_activation: str | None
) -> str:
    """The gate-bias initialisation to use: ``value``, or the default when None.

    The default is ``"chrono"`` when the gates are sigmoid-like, else ``"torch"``
    (chrono's biases have no meaning for a gate that is not in (0, 1)).

    Raises
    ------
    ValueError
        If ``value`` is not one of :data:`GATE_BIAS_INITS`, or is ``"chrono"`` with a
        gate activation other than sigmoid or hard_sigmoid.

    Examples
    --------
    >>> resolve_gate_bias_init("lstm", None, "sigmoid")
    'chrono'
    >>> resolve_gate_bias_init("lstm", None, "tanh")
    'torch'
    """
    sigmoid_gates = recurrent_activation in SIGMOID_GATES
    if value is None:
        return "chrono" if sigmoid_gates else "torch"
    if value not in GATE_BIAS_INITS:
        raise ValueError(
            f"architecture {architecture!r}: architecture_options['gate_bias_init'] must be "
            f"one of {list(GATE_BIAS_INITS)}, got {value!r}"
        )
    if value == "chrono" and not sigmoid_gates:
        raise ValueError(
            f"architecture {architecture!r}: gate_bias_init='chrono' needs sigmoid-like gates "
            f"(recurrent_activation in {list(SIGMOID_GATES)}), got "
            f"recurrent_activation={recurrent_activation!r}; use gate_bias_init='torch'"
        )
    return value


def chrono_init(module: nn.Module, cell: str, hidden_size: int, max_timesteps: int | None) -> None:
    """Set the gate biases of every layer and direction of ``module`` in place.

    Parameters
    ----------
    module : torch.nn.Module
        A ``torch.nn.LSTM``/``GRU`` or a hand-written cell with torch's parameter
        names, holding ``bias_ih_l{k}`` / ``bias_hh_l{k}`` of shape ``(gates * H,)``.
    cell : {"lstm", "cifg", "gru"}
        The gate layout.
    hidden_size : int
        ``H``.
    max_timesteps : int or None
        ``T_max``, the longest dependency to cover (the longest training
        sequence). Below 2 (or None) the biases are 0 (``log 1``).

    Draws from torch's global generator, so ``fit`` under a ``random_state`` stays
    reproducible.

    Examples
    --------
    >>> import torch
    >>> lstm = torch.nn.LSTM(1, 4)
    >>> chrono_init(lstm, "lstm", 4, max_timesteps=100)
    >>> b = lstm.bias_ih_l0.detach()
    >>> bool((b[4:8] >= 0).all() and torch.equal(b[:4], -b[4:8]) and lstm.bias_hh_l0.eq(0).all())
    True
    """
    t_max = max(int(max_timesteps or 1), 2)
    with torch.no_grad():
        for name, bias in module.named_parameters():
            if not _BIAS.match(name.rsplit(".", 1)[-1]):
                continue
            bias.zero_()
            if "_ih_" not in name:
                continue  # the input-side bias carries the whole value
            span = torch.log(torch.empty(hidden_size).uniform_(1.0, float(t_max - 1)))
            for gate, sign in _CHRONO_GATES[cell]:
                bias[gate * hidden_size : (gate + 1) * hidden_size] = sign * span.to(bias)
