"""Load Keras ``LSTM``/``GRU`` weights into seqpipe bodies, and read them back.

A Keras recurrent layer holds ``kernel`` ``(input, gates*H)``, ``recurrent_kernel``
``(H, gates*H)`` and ``bias`` (``layer.get_weights()`` returns them in that order).
seqpipe bodies store torch's layout: ``weight_ih`` ``(gates*H, input)``,
``weight_hh`` ``(gates*H, H)``, ``bias_ih`` and ``bias_hh`` ``(gates*H,)``. The mapping:

================  ==========================================  ==========================
seqpipe / torch   LSTM (Keras gates i, f, c, o = torch i, f,  GRU (Keras z, r, h; torch
                  g, o: no reordering)                        r, z, n; ``reset_after=True``)
================  ==========================================  ==========================
``weight_ih``     ``kernel.T``                                ``kernel.T``, blocks ``r, z, h``
``weight_hh``     ``recurrent_kernel.T``                      ``recurrent_kernel.T``, ``r, z, h``
``bias_ih``       ``bias``                                    ``bias[0]``, blocks ``r, z, h``
``bias_hh``       ``0``                                       ``bias[1]``, blocks ``r, z, h``
================  ==========================================  ==========================

Reading back, an LSTM's ``bias`` is ``bias_ih + bias_hh`` (torch has two bias
vectors where Keras has one; only their sum matters). A GRU's two biases stay
apart because torch (like Keras with ``reset_after=True``) multiplies the
recurrent ``h`` bias by the reset gate. Keras GRUs with ``reset_after=False``
(bias of shape ``(3H,)``) compute a different function and are refused.

Layers built with ``use_bias=False`` have no ``bias``: pass two arrays and the
biases are set to zero. Keras' activations are not weights: build the seqpipe
model with the same ``activation``/``recurrent_activation`` (e.g.
``LSTMRegressor(activation="relu")``, ``activation=None`` for Keras' linear).

Variants: a ``cifg_lstm`` body has three gate blocks ``i, c, o`` (no forget gate);
peephole bodies take the diagonal peephole vectors ``(H,)`` as extra arrays after
the bias, in the order of ``tf.keras.experimental.PeepholeLSTMCell``: ``i, f, o``
(CIFG: ``i, o``). Given only the three Keras arrays, peepholes are set to zero,
which makes the body compute exactly the Keras LSTM. For a ``Bidirectional``
Keras layer, call once with ``direction="forward"`` and once with
``direction="backward"``; for stacked layers, once per ``layer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from seqpipe.architectures.layout import KERAS_GRU_TO_TORCH as _GRU_ORDER

_DIRECTIONS = {"forward": "", "backward": "_reverse"}


@dataclass(frozen=True)
class _Target:
    """Where the parameters live and how they are laid out."""

    holder: nn.Module
    kind: str  # "lstm" or "gru"
    gates: int
    hidden_size: int
    input_size: int
    num_layers: int
    bidirectional: bool
    peepholes: int  # number of peephole vectors (0: none)

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.hidden_size * (1 + self.bidirectional)


def _resolve(obj: Any) -> _Target:
    """Find the recurrent parameters in an estimator, network, body or torch RNN."""
    if hasattr(obj, "get_params") and not isinstance(obj, nn.Module):  # an estimator
        if not hasattr(obj, "module_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                f"This {type(obj).__name__} instance is not fitted yet; fit it (e.g. with "
                "epochs=1) to build the network, then set its Keras weights"
            )
        obj = obj.module_
    if isinstance(obj, nn.Module) and hasattr(obj, "body") and isinstance(obj.body, nn.Module):
        obj = obj.body  # SequenceNetwork
    if isinstance(getattr(obj, "rnn", None), nn.RNNBase):
        obj = obj.rnn  # TorchRecurrentBody
    if isinstance(obj, (nn.LSTM, nn.GRU)):
        if getattr(obj, "proj_size", 0):
            raise ValueError("LSTMs with proj_size have no Keras equivalent")
        kind = "lstm" if isinstance(obj, nn.LSTM) else "gru"
        return _Target(
            obj,
            kind,
            4 if kind == "lstm" else 3,
            obj.hidden_size,
            obj.input_size,
            obj.num_layers,
            obj.bidirectional,
            0,
        )
    from seqpipe.architectures.cells import CustomGRU, CustomLSTM

    if isinstance(obj, CustomLSTM):
        peepholes = (obj.gates - 1) if obj.peephole else 0
        return _Target(
            obj,
            "lstm",
            obj.gates,
            obj.hidden_size,
            obj.input_size,
            obj.num_layers,
            obj.bidirectional,
            peepholes,
        )
    if isinstance(obj, CustomGRU):
        return _Target(
            obj, "gru", 3, obj.hidden_size, obj.input_size, obj.num_layers, obj.bidirectional, 0
        )
    raise TypeError(
        f"cannot hold Keras LSTM/GRU weights: {type(obj).__name__}; pass a fitted seqpipe "
        "estimator with an LSTM/GRU-family architecture, its module_, its body, or an "
        "nn.LSTM/nn.GRU"
    )


def _suffix(target: _Target, layer: int, direction: str) -> str:
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if direction == "backward" and not target.bidirectional:
        raise ValueError("direction='backward' needs a bidirectional model")
    if not isinstance(layer, (int, np.integer)) or not 0 <= layer < target.num_layers:
        raise ValueError(f"layer must be in [0, {target.num_layers}), got {layer!r}")
    return f"_l{layer}{_DIRECTIONS[direction]}"


def _param(target: _Target, name: str, suffix: str) -> nn.Parameter:
    return getattr(target.holder, f"{name}{suffix}")


def _gru_blocks(matrix: np.ndarray, hidden: int, order: Sequence[int]) -> np.ndarray:
    """Reorder the gate blocks on the last axis: output block k = input block order[k]."""
    blocks = [matrix[..., j * hidden : (j + 1) * hidden] for j in range(3)]
    return np.concatenate([blocks[j] for j in order], axis=-1)


def _check(name: str, array: Any, shape: tuple[int, ...], meaning: str) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape} = {meaning}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return array.astype(np.float64)


def set_keras_weights(
    target: Any, weights: Sequence[Any], layer: int = 0, direction: str = "forward"
) -> None:
    """Copy a Keras LSTM/GRU layer's weights into a seqpipe model, in place.

    Parameters
    ----------
    target : fitted estimator, ``SequenceNetwork``, body, ``nn.LSTM`` or ``nn.GRU``
        For an estimator the weights go into ``estimator.module_.body``. The
        architecture must match the Keras layer (LSTM family or GRU) in sizes.
    weights : sequence of arrays
        ``[kernel, recurrent_kernel, bias]`` as Keras' ``get_weights()`` returns
        them; without ``bias`` for ``use_bias=False``; peephole bodies may append
        the peephole vectors (see the module docstring for all layouts).
    layer : int, default=0
        Which stacked layer to set.
    direction : {"forward", "backward"}, default="forward"
        For bidirectional models, which direction to set.

    Raises
    ------
    ValueError
        If an array has the wrong shape (the message names the array and the
        expected shape), the count of arrays is wrong, or ``layer``/``direction``
        do not exist.

    Examples
    --------
    >>> import numpy as np
    >>> from seqpipe.architectures.cells import CustomLSTM
    >>> body = CustomLSTM(input_size=2, hidden_size=3, activation="relu")
    >>> rng = np.random.default_rng(0)
    >>> kernel, recurrent, bias = rng.normal(size=(2, 12)), rng.normal(size=(3, 12)), np.zeros(12)
    >>> set_keras_weights(body, [kernel, recurrent, bias])
    >>> np.allclose(get_keras_weights(body)[0], kernel)
    True
    """
    t = _resolve(target)
    suffix = _suffix(t, layer, direction)
    rows, hidden, n_in = t.gates * t.hidden_size, t.hidden_size, t.layer_input_size(layer)
    weights = list(weights)
    allowed = sorted({2, 3, 3 + t.peepholes})
    if len(weights) not in allowed:
        raise ValueError(
            f"expected {' or '.join(map(str, allowed))} arrays for this {t.kind.upper()} layer "
            f"(kernel, recurrent_kernel[, bias]{', peepholes' if t.peepholes else ''}), "
            f"got {len(weights)}"
        )
    gates = f"{t.gates}*hidden_size"
    kernel = _check("kernel", weights[0], (n_in, rows), f"(input_size, {gates})")
    recurrent = _check("recurrent_kernel", weights[1], (hidden, rows), f"(hidden_size, {gates})")
    if t.kind == "gru":
        if len(weights) > 2 and np.ndim(weights[2]) == 1:
            raise ValueError(
                "bias has shape (3*hidden_size,): a Keras GRU with reset_after=False, which "
                "applies the reset gate before the recurrent matmul; seqpipe's GRUs (like "
                "torch's) compute reset_after=True: expected bias of shape "
                f"{(2, rows)} = (2, 3*hidden_size)"
            )
        bias = (
            _check("bias", weights[2], (2, rows), "(2, 3*hidden_size) (input, recurrent)")
            if len(weights) > 2
            else np.zeros((2, rows))
        )
        values = {
            "weight_ih": _gru_blocks(kernel, hidden, _GRU_ORDER).T,
            "weight_hh": _gru_blocks(recurrent, hidden, _GRU_ORDER).T,
            "bias_ih": _gru_blocks(bias[0], hidden, _GRU_ORDER),
            "bias_hh": _gru_blocks(bias[1], hidden, _GRU_ORDER),
        }
    else:
        bias = (
            _check("bias", weights[2], (rows,), f"({gates},)")
            if len(weights) > 2
            else np.zeros(rows)
        )
        values = {
            "weight_ih": kernel.T,
            "weight_hh": recurrent.T,
            "bias_ih": bias,
            "bias_hh": np.zeros(rows),
        }
    if t.peepholes:
        names = ["i", "f", "o"] if t.peepholes == 3 else ["i", "o"]
        given = weights[3:] if len(weights) > 3 else [np.zeros(hidden)] * t.peepholes
        values["peephole"] = np.stack(
            [
                _check(f"peephole {gate}", vector, (hidden,), "(hidden_size,)")
                for gate, vector in zip(names, given, strict=True)
            ]
        )
    with torch.no_grad():
        for name, value in values.items():
            param = _param(t, name, suffix)
            param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=param.dtype))


def get_keras_weights(target: Any, layer: int = 0, direction: str = "forward") -> list[np.ndarray]:
    """A layer's weights in Keras' layout: ``[kernel, recurrent_kernel, bias, *peepholes]``.

    Parameters
    ----------
    target, layer, direction
        As in :func:`set_keras_weights`.

    Returns
    -------
    list of ndarray (float32)
        Ready for a Keras layer's ``set_weights`` (GRU: ``bias`` is ``(2, 3H)``, as
        Keras' ``reset_after=True``; peephole bodies append their vectors).

    Examples
    --------
    >>> from torch import nn
    >>> kernel, recurrent, bias = get_keras_weights(nn.LSTM(4, 8))
    >>> kernel.shape, recurrent.shape, bias.shape
    ((4, 32), (8, 32), (32,))
    """
    t = _resolve(target)
    suffix = _suffix(t, layer, direction)
    hidden = t.hidden_size

    def value(name: str) -> np.ndarray:
        return _param(t, name, suffix).detach().cpu().double().numpy()

    if t.kind == "gru":
        back = np.argsort(_GRU_ORDER)  # torch block order -> Keras block order
        out = [
            _gru_blocks(value("weight_ih").T, hidden, back),
            _gru_blocks(value("weight_hh").T, hidden, back),
            np.stack([_gru_blocks(value(b), hidden, back) for b in ("bias_ih", "bias_hh")]),
        ]
    else:
        out = [value("weight_ih").T, value("weight_hh").T, value("bias_ih") + value("bias_hh")]
        if t.peepholes:
            out.extend(value("peephole"))
    return [np.ascontiguousarray(a, dtype=np.float32) for a in out]
