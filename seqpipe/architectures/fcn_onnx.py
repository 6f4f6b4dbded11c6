"""Native ONNX lowering of the ``lstm_fcn``/``mlstm_fcn`` body (:mod:`.fcn`).

The graph, for a batch-first ``x`` of shape ``(batch, time, F)``::

    x -> Transpose (batch, F, time)
      -> [Conv (BatchNorm folded in) -> Relu -> Mul mask [-> SE]] per block
      -> ReduceSum over time / lengths          (masked global average pooling)
    x -> native LSTM/GRU over time, with sequence_lens       (no shuffle)
    x -> Transpose -> Pad time to max_timesteps -> LSTM/GRU over the F variables
                                                              (dimension shuffle)
    -> Concat [recurrent, conv]

Batch and length stay dynamic: the mask comes from ``Range(0, time) < lengths``
and the shuffle's padding amount from the input's shape. Dropout is the identity
in eval mode, so it has no node. Only the graph object passed in is used: this
module imports neither onnx nor :mod:`seqpipe.onnx`.

:data:`FCN_LOWERING` declares it: written from weights, no folding of the input
scaling (the convolutions and the recurrent branch both read the scaled input), no
streaming (global pooling needs the whole sequence).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqpipe.architectures.layout import parse_layers, torch_rnn_layers
from seqpipe.architectures.native_onnx import lower_layers
from seqpipe.architectures.spec import GraphWriter, LoweredBody, LoweringRequest, OnnxLowering

#: ONNX element types (``onnx.TensorProto``), spelled out so importing this module
#: never imports onnx.
_FLOAT, _INT64 = 1, 7


def lower_fcn(body: Any, request: LoweringRequest) -> LoweredBody:
    """Write an :class:`~seqpipe.architectures.fcn.FCNBody` as ONNX nodes.

    The ``lower`` of :data:`FCN_LOWERING` (see :class:`seqpipe.architectures.OnnxLowering`).

    Parameters
    ----------
    body : FCNBody
        The fitted body, in eval mode (BatchNorm's running statistics are folded).
    request : LoweringRequest
        The graph, the batch-first float32 input ``(batch, time, features)`` with
        padding zeroed, and the int32 ``(batch,)`` lengths (None when nothing is
        padded).

    Returns
    -------
    LoweredBody
        The ``(batch, time, output_size)`` and ``(batch, output_size)`` values.

    Examples
    --------
    >>> import numpy as np, onnxruntime as ort, torch
    >>> from seqpipe import BodyConfig, get_architecture
    >>> from seqpipe.architectures import LoweringRequest
    >>> from seqpipe.architectures.fcn_onnx import lower_fcn
    >>> from seqpipe.onnx.graph import GraphBuilder
    >>> config = BodyConfig(input_size=2, hidden_size=3, max_timesteps=9,
    ...                     options={"filters": (4, 4, 4)})
    >>> body = get_architecture("mlstm_fcn").build(config).eval()
    >>> g = GraphBuilder()
    >>> x = g.input("x", np.float32, ["batch", "time", 2])
    >>> summary = lower_fcn(body, LoweringRequest(g, x, None, input_size=2)).summary
    >>> _ = g.output(summary, np.float32, ["batch", body.output_size], name="summary")
    >>> session = ort.InferenceSession(g.build().SerializeToString())
    >>> data = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    >>> expected = body(torch.from_numpy(data))[1].detach().numpy()
    >>> bool(np.allclose(session.run(None, {"x": data})[0], expected, atol=1e-5))
    True
    """
    g, x, lengths = request.graph, request.x, request.lengths
    shape = g.op("Shape", [x])
    time = g.op("Gather", [shape, g.ints([1])], axis=0)  # (1,) int64
    mask = valid_count = None
    if lengths is not None:
        steps = g.op(
            "Range",
            [g.const(np.array(0, np.int64)), g.squeeze(time, [0]), g.const(np.array(1, np.int64))],
        )
        lengths64 = g.op("Cast", [lengths], to=_INT64)
        valid = g.op("Less", [g.unsqueeze(steps, [0]), g.unsqueeze(lengths64, [1])])
        mask = g.unsqueeze(g.op("Cast", [valid], to=_FLOAT), [1])  # (batch, 1, time)
        valid_count = g.unsqueeze(g.op("Cast", [lengths], to=_FLOAT), [1])  # (batch, 1)

    variables = g.op("Transpose", [x], perm=[0, 2, 1])  # (batch, F, time)
    h = variables
    for block in body.blocks:
        weight, bias = folded_conv(block)
        h = g.op(
            "Conv",
            [h, g.const(weight, "fcn_conv_W"), g.const(bias, "fcn_conv_b")],
            kernel_shape=[weight.shape[-1]],
            pads=list(block.padding),  # "same" length; an even kernel's extra step on the right
        )
        h = g.op("Relu", [h])
        if mask is not None:
            h = g.op("Mul", [h, mask])
        if block.se is not None:
            h = _squeeze_excitation(g, block.se, h, valid_count)
    pooled = _masked_mean(g, h, valid_count)
    conv_steps = g.op("Transpose", [h], perm=[0, 2, 1])  # (batch, time, channels)

    layers = parse_layers(torch_rnn_layers(body.recurrent.rnn), type(body).__name__)
    if body.dimension_shuffle:
        # Zero-pad time up to max_timesteps, as the body does.
        missing = g.op("Sub", [g.ints([body.max_timesteps]), time])
        pads = g.op(
            "Concat", [g.ints([0, 0, 0, 0, 0]), g.op("Max", [missing, g.ints([0])])], axis=0
        )
        # A wider batch is cut back to the bound, as the body does: what lies past it
        # is padding (seqpipe.runtime refuses longer valid sequences before the graph).
        variables = g.op(
            "Slice", [variables, g.ints([0]), g.ints([body.max_timesteps]), g.ints([2])]
        )
        lowered = lower_layers(
            layers,
            g,
            g.op("Pad", [variables, pads]),
            None,
            fill_optional_inputs=request.fill_optional_inputs,
        )
        summary = lowered.summary
        repeat = g.op("Concat", [g.ints([1]), time, g.ints([1])], axis=0)
        recurrent_steps = g.op("Expand", [g.unsqueeze(summary, [1]), repeat])
    else:
        lowered = lower_layers(
            layers, g, x, lengths, fill_optional_inputs=request.fill_optional_inputs
        )
        recurrent_steps, summary = lowered.sequence, lowered.summary
    sequence = g.op("Concat", [recurrent_steps, conv_steps], axis=2)
    return LoweredBody(sequence, g.op("Concat", [summary, pooled], axis=1))


#: The lowering ``lstm_fcn`` and ``mlstm_fcn`` declare.
FCN_LOWERING = OnnxLowering(lower=lower_fcn, name="native conv and recurrent nodes")


def folded_conv(block: Any) -> tuple[np.ndarray, np.ndarray]:
    """A block's convolution with its BatchNorm (running statistics) folded in.

    ``W' = W * s`` and ``b' = (b - mean) * s + beta`` per output channel, with
    ``s = gamma / sqrt(var + eps)``; computed in float64, rounded once.
    """
    conv, norm = block.conv, block.norm

    def array(t: Any) -> np.ndarray:
        return t.detach().cpu().double().numpy()

    scale = array(norm.weight) / np.sqrt(array(norm.running_var) + norm.eps)
    weight = array(conv.weight) * scale[:, None, None]
    conv_bias = 0.0 if conv.bias is None else array(conv.bias)
    bias = (conv_bias - array(norm.running_mean)) * scale + array(norm.bias)
    return weight.astype(np.float32), bias.astype(np.float32)


def _masked_mean(g: GraphWriter, h: str, valid_count: str | None) -> str:
    """Mean over time of ``(batch, channels, time)`` zeroed at padding."""
    if valid_count is None:
        return g.reduce("ReduceMean", h, [2])
    return g.op("Div", [g.reduce("ReduceSum", h, [2]), valid_count])


def _squeeze_excitation(g: GraphWriter, se: Any, h: str, valid_count: str | None) -> str:
    def weight_t(layer: Any) -> str:
        value = layer.weight.detach().cpu().float().numpy().T
        return g.const(np.ascontiguousarray(value), "fcn_se_W")

    squeezed = g.op(
        "Relu", [g.op("MatMul", [_masked_mean(g, h, valid_count), weight_t(se.squeeze)])]
    )
    excited = g.op("Sigmoid", [g.op("MatMul", [squeezed, weight_t(se.excite)])])
    return g.op("Mul", [h, g.unsqueeze(excited, [2])])
