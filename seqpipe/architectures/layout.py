"""Torch, Keras and ONNX layouts of recurrent layers: the one place that knows them.

numpy only. Bodies (:mod:`seqpipe.architectures`), the exporter
(:mod:`seqpipe.onnx`) and the Keras weight mapping (:mod:`seqpipe.keras_weights`)
all read these facts from here, so each is stated once and every import points
down to this module.

Gate orders, as blocks of ``hidden_size`` rows of the weight matrices:

========  ==================  =================  ================
op        torch (nn.LSTM/GRU)  Keras              ONNX
========  ==================  =================  ================
LSTM      i, f, g, o          i, f, c, o         i, o, f, c
GRU       r, z, n             z, r, h            z, r, h
RNN       (one block)         (one block)        (one block)
========  ==================  =================  ================

A layer in ONNX's own layout is a :class:`RecurrentLayer` (what a body's
``onnx_recurrent_layers()`` returns, one dict per stacked layer, validated by
:func:`parse_layers`):

* ``op``: ``"LSTM"``, ``"GRU"`` or ``"RNN"``;
* ``hidden_size``: int; ``direction``: ``"forward"`` or ``"bidirectional"``;
* ``W``: ``(num_directions, gates*hidden, input)``; ``R``: ``(num_directions,
  gates*hidden, hidden)``; ``B``: ``(num_directions, 2*gates*hidden)`` (``Wb`` then
  ``Rb``), in ONNX gate order;
* ``P``: ``(num_directions, 3*hidden)`` peephole weights (``i, o, f``) or ``None``;
* ``activations``: ONNX activation names per direction (e.g. ``["Sigmoid", "Tanh",
  "Tanh"]`` for an LSTM, repeated for the backward direction);
  ``activation_alpha``/``activation_beta``: lists or ``None``;
* ``input_forget``: 0/1 (coupled input-forget gate); ``linear_before_reset``: 0/1
  (GRU); ``clip``: float or ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: Gate blocks per op: the rows of ``W``/``R`` are ``GATES[op] * hidden_size``.
GATES: dict[str, int] = {"LSTM": 4, "GRU": 3, "RNN": 1}

#: ONNX's default activations per direction (the ONNX operator specification).
DEFAULT_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "LSTM": ("Sigmoid", "Tanh", "Tanh"),
    "GRU": ("Sigmoid", "Tanh"),
    "RNN": ("Tanh",),
}

#: ONNX ``direction`` attribute -> number of directions.
DIRECTIONS: dict[str, int] = {"forward": 1, "bidirectional": 2}

#: ONNX gate block k sits at torch block ``TORCH_TO_ONNX[op][k]``, by ``nn.RNNBase.mode``
#: (torch LSTM i,f,g,o -> ONNX i,o,f,c; torch GRU r,z,n -> ONNX z,r,h).
TORCH_TO_ONNX: dict[str, tuple[int, ...]] = {
    "LSTM": (0, 3, 1, 2),
    "GRU": (1, 0, 2),
    "RNN_TANH": (0,),
    "RNN_RELU": (0,),
}

#: seqpipe's coupled-gate LSTM stores blocks i, g, o (no forget gate); ONNX lays out
#: i, o, f, c with ``input_forget=1`` ignoring f, so its block is zeros (-1).
CIFG_TO_ONNX: tuple[int, ...] = (0, 2, -1, 1)
#: Peephole rows: seqpipe stores i, f, o (coupled gate: i, o); ONNX's ``P`` is i, o, f.
PEEPHOLES_TO_ONNX: tuple[int, ...] = (0, 2, 1)
CIFG_PEEPHOLES_TO_ONNX: tuple[int, ...] = (0, 1, -1)

#: Keras GRU block k (z, r, h) sits at torch block ``KERAS_GRU_TO_TORCH[k]`` (r, z, n).
#: Keras' LSTM order (i, f, c, o) *is* torch's (i, f, g, o): no reordering.
KERAS_GRU_TO_TORCH: tuple[int, ...] = (1, 0, 2)

#: Keras activation name -> ONNX recurrent-op activation, with the ``alpha``/``beta``
#: it consumes (``None``: it takes none). Keras 3's hard_sigmoid is
#: ``clip(x / 6 + 0.5, 0, 1)`` = HardSigmoid(1/6, 0.5); ONNX has no identity
#: activation for recurrent ops, ``Affine(1, 0)`` is one.
ONNX_ACTIVATIONS: dict[str, tuple[str, float | None, float | None]] = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
    "elu": ("Elu", 1.0, None),
}

#: torch.nn's RNN nonlinearity -> ONNX activation (the ``RNN`` op has no gates).
_TORCH_RNN_ACTIVATIONS = {
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
    "RNN_TANH": ["Tanh"],
    "RNN_RELU": ["Relu"],
}


def activation_name(value: str | None, what: str = "activation") -> str:
    """Canonical Keras name of an activation: lower case, ``None`` -> ``"linear"``.

    Parameters
    ----------
    value : str or None
        A Keras activation name in any case, or ``None`` (Keras' linear).
    what : str
        The parameter's name, for the error message.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.

    Examples
    --------
    >>> from seqpipe.architectures import activation_name
    >>> activation_name("ReLU"), activation_name(None)
    ('relu', 'linear')
    """
    key = "linear" if value is None else str(value).lower()
    if key not in ONNX_ACTIVATIONS:
        raise ValueError(
            f"unknown {what} {value!r}; valid names are {sorted(ONNX_ACTIVATIONS)} "
            "(or None for linear)"
        )
    return key


def onnx_activations(names: Sequence[str], num_directions: int) -> dict[str, Any]:
    """ONNX ``activations``/``activation_alpha``/``activation_beta`` for Keras ``names``.

    ``names`` are one direction's activations in the op's order (LSTM: gate, cell,
    output; GRU: gate, candidate). onnxruntime consumes ``activation_alpha``/``_beta``
    in order, one value for each activation that takes that argument (HardSigmoid
    takes both, Elu only alpha, Relu none), so the lists hold only those values.
    """
    acts = [ONNX_ACTIVATIONS[activation_name(n)] for n in names] * num_directions
    alpha = [a for _, a, _ in acts if a is not None]
    beta = [b for _, _, b in acts if b is not None]
    return {
        "activations": [onnx for onnx, _, _ in acts],
        "activation_alpha": alpha or None,
        "activation_beta": beta or None,
    }


@dataclass
class RecurrentLayer:
    """One validated entry of ``onnx_recurrent_layers()``, in ONNX layouts."""

    op: str
    hidden_size: int
    direction: str
    W: np.ndarray
    R: np.ndarray
    B: np.ndarray | None
    P: np.ndarray | None = None
    activations: list[str] = field(default_factory=list)
    activation_alpha: list[float] | None = None
    activation_beta: list[float] | None = None
    input_forget: int = 0
    linear_before_reset: int = 0
    clip: float | None = None

    @property
    def num_directions(self) -> int:
        return DIRECTIONS[self.direction]

    @property
    def has_state_c(self) -> bool:
        return self.op == "LSTM"


def parse_layers(raw: Sequence[Mapping[str, Any]], owner: str = "body") -> list[RecurrentLayer]:
    """Validate what ``onnx_recurrent_layers()`` returned; errors name the layer and key.

    Raises
    ------
    ValueError
        If a layer has an unknown op or direction, an array of the wrong shape,
        peepholes on a non-LSTM op, the wrong number of activations, or an input
        width that does not match the previous layer's output.
    """
    if not raw:
        raise ValueError(f"{owner}.onnx_recurrent_layers() returned no layers")
    layers = []
    width = None
    for index, spec in enumerate(raw):
        where = f"{owner}.onnx_recurrent_layers()[{index}]"
        op = spec.get("op")
        if op not in GATES:
            raise ValueError(f"{where}: op must be one of {sorted(GATES)}, got {op!r}")
        direction = spec.get("direction", "forward")
        if direction not in DIRECTIONS:
            raise ValueError(
                f"{where}: direction must be one of {sorted(DIRECTIONS)}, got {direction!r}"
            )
        hidden = int(spec["hidden_size"])
        dirs, rows = DIRECTIONS[direction], GATES[op] * hidden
        W = _array(spec.get("W"), where, "W")
        R = _array(spec.get("R"), where, "R")
        in_size = W.shape[-1] if W.ndim == 3 else -1
        _expect(W, (dirs, rows, in_size), where, "W")
        _expect(R, (dirs, rows, hidden), where, "R")
        if width is not None and in_size != width:
            raise ValueError(
                f"{where}: W expects {in_size} input features but the previous layer "
                f"produces {width}"
            )
        width = hidden * dirs
        B = spec.get("B")
        if B is not None:
            B = _array(B, where, "B")
            _expect(B, (dirs, 2 * rows), where, "B")
        P = spec.get("P")
        if P is not None:
            if op != "LSTM":
                raise ValueError(f"{where}: peepholes (P) exist only for op 'LSTM'")
            P = _array(P, where, "P")
            _expect(P, (dirs, 3 * hidden), where, "P")
        per_direction = len(DEFAULT_ACTIVATIONS[op])
        activations = list(spec.get("activations") or DEFAULT_ACTIVATIONS[op] * dirs)
        if len(activations) != per_direction * dirs:
            raise ValueError(
                f"{where}: {op} needs {per_direction} activations per direction "
                f"({per_direction * dirs} in all), got {activations}"
            )
        layers.append(
            RecurrentLayer(
                op=op,
                hidden_size=hidden,
                direction=direction,
                W=W,
                R=R,
                B=B,
                P=P,
                activations=activations,
                activation_alpha=_floats(spec.get("activation_alpha")),
                activation_beta=_floats(spec.get("activation_beta")),
                input_forget=int(spec.get("input_forget") or 0),
                linear_before_reset=int(spec.get("linear_before_reset") or 0),
                clip=None if spec.get("clip") is None else float(spec["clip"]),
            )
        )
    return layers


def fold_input_scaling(
    layer: RecurrentLayer, center: np.ndarray, scale: np.ndarray
) -> RecurrentLayer:
    """The same layer reading raw ``x`` instead of ``(x - center) / scale``.

    ``W' = W / scale`` and ``Wb' = Wb - W' @ center`` (in float64, rounded once), which
    saves the graph a subtraction and a division over the whole input. Exact in real
    numbers; in float32 it loses about ``eps * max|center / scale|`` relative, so
    callers fold only when that ratio is small.
    """
    W = layer.W.astype(np.float64) / np.asarray(scale, np.float64)
    rows = W.shape[1]
    B = np.zeros((W.shape[0], 2 * rows)) if layer.B is None else layer.B.astype(np.float64)
    B[:, :rows] -= W @ np.asarray(center, np.float64)
    return replace(layer, W=W.astype(np.float32), B=B.astype(np.float32))


def torch_rnn_layers(rnn: Any) -> list[dict[str, Any]]:
    """``onnx_recurrent_layers()`` of a ``torch.nn.LSTM``/``GRU``/``RNN``.

    Any number of layers and directions, ``batch_first`` or not. Reads the module's
    parameters by name, so it needs no torch import of its own.

    Raises
    ------
    ValueError
        For ``bias=False`` or an LSTM with ``proj_size``, which have no ONNX node.
    """
    mode = rnn.mode
    if mode not in TORCH_TO_ONNX or not rnn.bias or getattr(rnn, "proj_size", 0):
        raise ValueError(
            f"cannot lower {rnn!r} to ONNX: needs an LSTM, GRU or RNN with bias and no proj_size"
        )
    order = TORCH_TO_ONNX[mode]
    op = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
    suffixes = ("", "_reverse") if rnn.bidirectional else ("",)

    def param(name: str, layer: int, suffix: str) -> np.ndarray:
        value = getattr(rnn, f"{name}_l{layer}{suffix}").detach().float().cpu().numpy()
        return reorder_blocks(value, order)

    layers = []
    for k in range(rnn.num_layers):
        w, r, b_ih, b_hh = (
            np.stack([param(name, k, s) for s in suffixes])
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        layers.append(
            {
                "op": op,
                "hidden_size": rnn.hidden_size,
                "direction": "bidirectional" if rnn.bidirectional else "forward",
                "W": w,
                "R": r,
                "B": np.concatenate([b_ih, b_hh], axis=1),
                "P": None,
                "activations": _TORCH_RNN_ACTIVATIONS[mode] * len(suffixes),
                "activation_alpha": None,
                "activation_beta": None,
                "input_forget": 0,
                # torch applies the reset gate after the recurrent matmul.
                "linear_before_reset": int(op == "GRU"),
            }
        )
    return layers


def reorder_blocks(value: np.ndarray, order: Sequence[int], axis: int = 0) -> np.ndarray:
    """Gate blocks of ``value`` along ``axis`` in a new order: block k = old block ``order[k]``.

    ``-1`` in ``order`` is a block of zeros (e.g. the forget gate a coupled-gate
    LSTM does not have, which ONNX still lays out).

    Examples
    --------
    >>> import numpy as np
    >>> reorder_blocks(np.arange(3), CIFG_TO_ONNX).tolist()  # i, g, o -> i, o, f, c
    [0, 2, 0, 1]
    """
    blocks = np.split(value, max(order) + 1, axis=axis)
    zero = np.zeros_like(blocks[0])
    return np.concatenate([zero if k < 0 else blocks[k] for k in order], axis=axis)


def _array(value: Any, where: str, key: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"{where}: {key!r} is required")
    return np.ascontiguousarray(np.asarray(value, dtype=np.float32))


def _expect(array: np.ndarray, shape: tuple[int, ...], where: str, key: str) -> None:
    if array.shape != shape:
        raise ValueError(f"{where}: {key} has shape {array.shape}, expected {shape}")


def _floats(values: Any) -> list[float] | None:
    return None if values is None or len(values) == 0 else [float(v) for v in values]
