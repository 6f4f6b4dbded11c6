"""Which recurrent-node features onnxruntime's CUDA kernels would silently ignore.

onnxruntime's CUDA ``LSTM``/``GRU``/``RNN`` kernels hand the work to cuDNN
(``onnxruntime/core/providers/cuda/rnn/``): they read ``W``, ``R``, ``B``,
``sequence_lens`` and the initial states, and nothing else. Peepholes (``P``),
``input_forget``, non-default ``activations`` (or their alpha/beta), ``clip`` and
GRU's ``linear_before_reset=0`` (cuDNN's GRU resets after the recurrent matmul)
are ignored without an error. The exporter records what a file uses here, and
:func:`seqpipe.runtime.load` refuses CUDA for such a file.
"""

from __future__ import annotations

import onnx
from onnx import helper

_DEFAULT = {
    "LSTM": ("Sigmoid", "Tanh", "Tanh"),
    "GRU": ("Sigmoid", "Tanh"),
}


def cuda_incompatibilities(model: onnx.ModelProto) -> list[str]:
    """Human-readable list of the features in ``model`` that CUDA would get wrong.

    Examples
    --------
    >>> import numpy as np
    >>> from seqpipe.onnx.graph import GraphBuilder
    >>> from seqpipe.architectures.layout import parse_layers
    >>> from seqpipe.architectures.native_onnx import lower_layers
    >>> g = GraphBuilder()
    >>> x = g.input("x", np.float32, ["batch", "time", 1])
    >>> layer = {"op": "LSTM", "hidden_size": 2, "W": np.zeros((1, 8, 1)),
    ...          "R": np.zeros((1, 8, 2)), "input_forget": 1}
    >>> out = lower_layers(parse_layers([layer]), g, x, None)
    >>> _ = g.output(out.summary, np.float32, ["batch", 2], name="s")
    >>> cuda_incompatibilities(g.build())
    ['LSTM input_forget=1 (coupled input-forget gate)']
    """
    found: list[str] = []
    for node in model.graph.node:
        if node.op_type not in ("LSTM", "GRU", "RNN"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op == "LSTM" and len(node.input) > 7 and node.input[7]:
            found.append("LSTM peepholes (P)")
        if op == "LSTM" and attrs.get("input_forget", 0):
            found.append("LSTM input_forget=1 (coupled input-forget gate)")
        if op == "GRU" and not attrs.get("linear_before_reset", 0):
            found.append("GRU linear_before_reset=0")
        activations = tuple(
            a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", ())
        )
        if activations:
            if op == "RNN":
                wrong = (
                    any(a not in ("Tanh", "Relu") for a in activations) or len(set(activations)) > 1
                )
            else:
                per_direction = len(_DEFAULT[op])
                wrong = any(
                    activations[i : i + per_direction] != _DEFAULT[op]
                    for i in range(0, len(activations), per_direction)
                )
            if wrong:
                found.append(f"{op} activations {list(activations)}")
        if attrs.get("activation_alpha") or attrs.get("activation_beta"):
            found.append(f"{op} activation_alpha/beta")
        if "clip" in attrs:
            found.append(f"{op} clip")
    return list(dict.fromkeys(found))
