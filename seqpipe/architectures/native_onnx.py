"""The bridge between recurrent bodies and native ONNX ``LSTM``/``GRU``/``RNN`` nodes.

A body that can be written as native ONNX recurrent nodes implements
``onnx_recurrent_layers()``, returning one dict per stacked layer, in ONNX's own
layouts (both directions stacked on the first axis when bidirectional):

* ``op``: ``"LSTM"``, ``"GRU"`` or ``"RNN"``;
* ``hidden_size``: int; ``direction``: ``"forward"`` or ``"bidirectional"``;
* ``W``: ``(num_directions, gates*hidden, input)``; ``R``: ``(num_directions,
  gates*hidden, hidden)``; ``B``: ``(num_directions, 2*gates*hidden)`` (``Wb`` then
  ``Rb``), in ONNX gate order (LSTM ``i, o, f, c``; GRU ``z, r, h``);
* ``P``: ``(num_directions, 3*hidden)`` peephole weights (``i, o, f``) or ``None``;
* ``activations``: list of ONNX activation names per direction (e.g.
  ``["Sigmoid", "Tanh", "Tanh"]`` for an LSTM, repeated for the backward direction);
  ``activation_alpha``/``activation_beta``: lists or ``None``;
* ``input_forget``: 0/1 (coupled input-forget gate); ``linear_before_reset``: 0/1 (GRU).

:func:`lower_native` is the ``onnx_lowering`` every such architecture registers.
"""

from __future__ import annotations

from typing import Any


def lower_native(body: Any, graph: Any, x: str, lengths: str | None) -> tuple[str, str]:
    """ONNX lowering shared by every body that offers ``onnx_recurrent_layers()``.

    Imported lazily so building the registry never imports onnx.
    """
    from seqpipe.onnx.lowering import lower_recurrent_body

    return lower_recurrent_body(body, graph, x, lengths)
