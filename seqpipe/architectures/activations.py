"""Keras activations for the hand-written cells: forward, in-place and backward forms.

Every name here has an ONNX spelling in
:data:`seqpipe.architectures.layout.ONNX_ACTIVATIONS` (a test keeps the two tables
equal); names are checked by :func:`seqpipe.architectures.activation_name`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

Tensor = torch.Tensor


@dataclass(frozen=True)
class Activation:
    """A Keras activation: how to apply it, its derivative, its ONNX spelling.

    ``backward(grad, y)`` is ``grad * act'(x)`` computed *from the output*
    ``y = act(x)`` (all supported activations allow it, so backward needs no
    pre-activations); ``None`` means the identity. Where ATen has a fused kernel
    for it (the ``*_backward`` ops autograd itself uses), that kernel is used.
    The ONNX spelling lives in :data:`seqpipe.architectures.layout.ONNX_ACTIVATIONS`.
    """

    name: str
    apply: Callable[[Tensor], Tensor]
    inplace: Callable[[Tensor], Tensor]
    backward: Callable[[Tensor, Tensor], Tensor] | None


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
        Activation("tanh", torch.tanh, torch.tanh_, _aten.tanh_backward),
        Activation("sigmoid", torch.sigmoid, torch.sigmoid_, _aten.sigmoid_backward),
        # Keras 3: hard_sigmoid(x) = relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1), which is
        # torch's hardsigmoid and ONNX HardSigmoid(alpha=1/6, beta=0.5). (Keras 2 used 0.2.)
        Activation(
            "hard_sigmoid",
            F.hardsigmoid,
            lambda x: F.hardsigmoid(x, inplace=True),
            _hard_sigmoid_backward,
        ),
        Activation("relu", torch.relu, torch.relu_, lambda g, y: _aten.threshold_backward(g, y, 0)),
        Activation("linear", _identity, _identity, None),
        Activation(
            "softsign",
            F.softsign,
            _softsign_,
            lambda g, y: g * (1 - y.abs()).square(),
        ),
        Activation("softplus", F.softplus, _softplus_, lambda g, y: g * -torch.expm1(-y)),
        Activation(
            "elu",
            F.elu,
            F.elu_,
            lambda g, y: _aten.elu_backward(g, 1.0, 1.0, 1.0, True, y),
        ),
    )
}


def times_grad(act: Activation, y: Tensor, x: Tensor) -> Tensor:
    """``x * act'(.)`` evaluated from the activation's output ``y``."""
    return x if act.backward is None else act.backward(x, y)
