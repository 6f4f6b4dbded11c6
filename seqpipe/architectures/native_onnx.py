"""Native ONNX ``LSTM``/``GRU``/``RNN`` nodes from a body's ``onnx_recurrent_layers()``.

:data:`NATIVE_RECURRENT` is the :class:`~seqpipe.architectures.OnnxLowering` of every
architecture whose body implements ``onnx_recurrent_layers()`` (one dict per stacked
layer in ONNX's layouts: see :mod:`seqpipe.architectures.layout`). It writes the
layers from their weights, folds the input scaling into the first layer, and
supports streaming (explicit state in and out).

Native recurrent nodes are time-major (onnxruntime refuses ``layout=1``), so the
input is transposed once, layers chain in time-major form, and only the outputs
are turned back. ``sequence_lens`` makes each direction see exactly its valid
steps; ``Y_h`` then *is* the contract's summary: the forward direction's state at
the last valid step and the backward direction's state after step 0.

Only the graph object passed in is used (:class:`~seqpipe.architectures.GraphWriter`),
so this module imports neither onnx nor :mod:`seqpipe.onnx`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqpipe.architectures.layout import (
    GATES,
    RecurrentLayer,
    fold_input_scaling,
    parse_layers,
)
from seqpipe.architectures.spec import (
    GraphWriter,
    LoweredBody,
    LoweringRequest,
    OnnxLowering,
    StreamState,
    UnsupportedModelError,
)


def recurrent_layers(body: Any) -> list[RecurrentLayer]:
    """The body's ``onnx_recurrent_layers()``, validated.

    Raises
    ------
    UnsupportedModelError
        If the body has no ``onnx_recurrent_layers()`` method.
    ValueError
        If what it returns is malformed (see :func:`~seqpipe.architectures.layout.parse_layers`).
    """
    owner = type(body).__name__
    if not callable(getattr(body, "onnx_recurrent_layers", None)):
        raise UnsupportedModelError(
            f"{owner} has no onnx_recurrent_layers() method, which the native recurrent "
            "lowering needs; declare another onnx_lowering for the architecture, or None to "
            "export it through torch.onnx"
        )
    return parse_layers(body.onnx_recurrent_layers(), owner)


def lower_recurrent(body: Any, request: LoweringRequest) -> LoweredBody:
    """The native lowering: ``body``'s layers as ``LSTM``/``GRU``/``RNN`` nodes.

    Parameters
    ----------
    body : torch.nn.Module
        A fitted body with an ``onnx_recurrent_layers()`` method.
    request : LoweringRequest
        Where to write; ``input_scaling`` is folded into the first layer's weights,
        ``streaming`` adds one state input per layer and kind (``state_{k}_h``, and
        ``state_{k}_c`` for an LSTM).

    Returns
    -------
    LoweredBody

    Raises
    ------
    UnsupportedModelError
        If the body has no ``onnx_recurrent_layers()``, or streaming is requested for
        a bidirectional body (its backward direction starts from each sequence's end,
        which a stream does not have yet).

    Examples
    --------
    >>> import numpy as np, onnxruntime as ort, torch
    >>> from seqpipe import BodyConfig, get_architecture
    >>> from seqpipe.architectures import LoweringRequest, lower_recurrent
    >>> from seqpipe.onnx.graph import GraphBuilder
    >>> body = get_architecture("gru").build(BodyConfig(input_size=2, hidden_size=3)).eval()
    >>> g = GraphBuilder()
    >>> x = g.input("x", np.float32, ["batch", "time", 2])
    >>> lowered = lower_recurrent(body, LoweringRequest(g, x, None, input_size=2))
    >>> _ = g.output(lowered.summary, np.float32, ["batch", 3], name="summary")
    >>> session = ort.InferenceSession(g.build().SerializeToString())
    >>> data = np.random.default_rng(0).normal(size=(4, 7, 2)).astype(np.float32)
    >>> expected = body(torch.from_numpy(data))[1].detach().numpy()
    >>> bool(np.allclose(session.run(None, {"x": data})[0], expected, atol=1e-6))
    True
    """
    layers = recurrent_layers(body)
    if request.input_scaling is not None:
        center, scale = request.input_scaling
        layers[0] = fold_input_scaling(layers[0], center, scale)
    graph = request.graph
    if not request.streaming:
        lowered = lower_layers(
            layers,
            graph,
            request.x,
            request.lengths,
            fill_optional_inputs=request.fill_optional_inputs,
        )
        return LoweredBody(lowered.sequence, lowered.summary)
    if any(layer.num_directions > 1 for layer in layers):
        raise UnsupportedModelError(
            "streaming=True needs a causal model: a bidirectional one reads each sequence "
            "backwards from its end, which a stream does not have yet"
        )
    initial: list[tuple[str, str | None]] = []
    wanted: list[tuple[str, tuple[int | str, ...], int, str]] = []
    for k, layer in enumerate(layers):
        shape: tuple[int | str, ...] = (1, "batch", layer.hidden_size)
        pair = []
        for kind in ("h", "c") if layer.has_state_c else ("h",):
            pair.append(graph.input(f"state_{k}_{kind}", np.float32, list(shape)))
            wanted.append((pair[-1], shape, k, kind))
        initial.append((pair[0], pair[1] if len(pair) > 1 else None))
    lowered = lower_layers(layers, graph, request.x, request.lengths, initial)
    states = tuple(
        StreamState(
            input=name,
            output=f"{name}_out",
            value=lowered.states_out[k][0 if kind == "h" else 1],  # type: ignore[arg-type]
            shape=shape,
            layer=k,
            kind=kind,
        )
        for name, shape, k, kind in wanted
    )
    return LoweredBody(lowered.sequence, lowered.summary, states)


#: The lowering of every architecture whose body offers ``onnx_recurrent_layers()``.
NATIVE_RECURRENT = OnnxLowering(
    lower=lower_recurrent,
    name="native recurrent nodes",
    traced=False,
    folds_input_scaling=True,
    streaming=True,
)


@dataclass
class LoweredRecurrence:
    """Names produced by :func:`lower_layers`.

    ``states_out`` holds, per layer, the final ``(h, c)`` (``c`` is None for GRU and
    RNN), each ``(num_directions, batch, hidden)``: what streaming feeds back in.
    """

    sequence: str
    summary: str
    states_out: list[tuple[str, str | None]]


def lower_layers(
    layers: Sequence[RecurrentLayer],
    graph: GraphWriter,
    x: str,
    lengths: str | None,
    initial_states: Sequence[tuple[str, str | None]] | None = None,
    *,
    fill_optional_inputs: bool = False,
) -> LoweredRecurrence:
    """Chain ``layers`` as native nodes; optionally start from given states.

    ``fill_optional_inputs`` gives every omitted optional input before the last one
    used a real (zero) value, for tools that cannot handle ``""`` input names.
    """
    h = graph.op("Transpose", [x], perm=[1, 0, 2])  # time-major, as onnxruntime needs
    states_out: list[tuple[str, str | None]] = []
    y = h
    for index, layer in enumerate(layers):
        state = initial_states[index] if initial_states is not None else (None, None)
        y, y_h, y_c = _recurrent_node(layer, graph, h, lengths, state, index, fill_optional_inputs)
        states_out.append((y_h, y_c))
        if index < len(layers) - 1:
            h = _merge_directions_time_major(graph, y, layer.num_directions)
    last = layers[-1]
    # Y: (time, dirs, batch, hidden) -> (batch, time, dirs * hidden)
    sequence = graph.op(
        "Reshape", [graph.op("Transpose", [y], perm=[2, 0, 1, 3]), graph.ints([0, 0, -1])]
    )
    y_h = states_out[-1][0]
    if last.num_directions == 1:
        summary = graph.squeeze(y_h, [0])
    else:
        summary = graph.op(
            "Reshape", [graph.op("Transpose", [y_h], perm=[1, 0, 2]), graph.ints([0, -1])]
        )
    return LoweredRecurrence(sequence, summary, states_out)


def _merge_directions_time_major(graph: GraphWriter, y: str, dirs: int) -> str:
    # (time, dirs, batch, hidden) -> (time, batch, dirs * hidden), forward half first.
    if dirs == 1:
        return graph.squeeze(y, [1])
    return graph.op(
        "Reshape", [graph.op("Transpose", [y], perm=[0, 2, 1, 3]), graph.ints([0, 0, -1])]
    )


def _recurrent_node(
    layer: RecurrentLayer,
    graph: GraphWriter,
    x: str,
    lengths: str | None,
    state: tuple[str | None, str | None],
    index: int,
    fill: bool,
) -> tuple[str, str, str | None]:
    prefix = f"{layer.op.lower()}{index}"
    inputs: list[str | None] = [
        x,
        graph.const(layer.W, f"{prefix}_W"),
        graph.const(layer.R, f"{prefix}_R"),
        None if layer.B is None else graph.const(layer.B, f"{prefix}_B"),
        lengths,
        state[0],
    ]
    if layer.op == "LSTM":
        inputs.append(state[1])
        if layer.P is not None:
            inputs.append(graph.const(layer.P, f"{prefix}_P"))
    while inputs and inputs[-1] is None:
        inputs.pop()
    if fill and None in inputs:
        inputs = _fill_optional(graph, layer, x, inputs)
    outputs = [graph.unique(f"{prefix}_{n}") for n in ("Y", "Y_h", "Y_c")]
    if layer.op != "LSTM":
        outputs.pop()
    attrs: dict[str, Any] = {
        "hidden_size": layer.hidden_size,
        "direction": layer.direction,
        "activations": layer.activations,
        "activation_alpha": layer.activation_alpha,
        "activation_beta": layer.activation_beta,
        "clip": layer.clip,
    }
    if layer.op == "LSTM":
        attrs["input_forget"] = layer.input_forget
    if layer.op == "GRU":
        attrs["linear_before_reset"] = layer.linear_before_reset
    graph.op(layer.op, inputs, outputs=outputs, **attrs)
    return outputs[0], outputs[1], outputs[2] if layer.op == "LSTM" else None


def _fill_optional(
    graph: GraphWriter, layer: RecurrentLayer, x: str, inputs: list[str | None]
) -> list[str]:
    """Zero bias/state and full lengths in place of omitted optional inputs."""
    out = list(inputs)
    shape = graph.op("Shape", [x])
    time = graph.op("Gather", [shape, graph.ints([0])], axis=0)
    batch = graph.op("Gather", [shape, graph.ints([1])], axis=0)
    if out[3] is None:
        rows = 2 * GATES[layer.op] * layer.hidden_size
        out[3] = graph.const(np.zeros((layer.num_directions, rows), np.float32), "zero_B")
    if out[4] is None:
        out[4] = graph.op("Cast", [graph.op("Expand", [time, batch])], to=6)  # int32
    state_shape = graph.op(
        "Concat",
        [graph.ints([layer.num_directions]), batch, graph.ints([layer.hidden_size])],
        axis=0,
    )
    for i in range(5, len(out)):
        if out[i] is None:
            out[i] = graph.op("ConstantOfShape", [state_shape])
    return out  # type: ignore[return-value]
