"""Native ONNX ``LSTM``/``GRU``/``RNN`` nodes from a body's ``onnx_recurrent_layers()``.

The lowering contract (what every ``ArchitectureSpec.onnx_lowering`` implements)::

    lowering(body, graph, x, lengths) -> (sequence_output, summary)

* ``body``: the fitted body module (eval mode);
* ``graph``: a :class:`seqpipe.onnx.graph.GraphBuilder` to add nodes to;
* ``x``: name of a float32 ``(batch, time, input_size)`` value, batch first, padded
  steps already zero (exactly what the body's ``forward`` receives);
* ``lengths``: name of an int32 ``(batch,)`` value holding each sequence's valid
  length, or ``None`` when every sequence fills the whole time axis;
* returns the names of ``sequence_output`` ``(batch, time, output_size)`` and
  ``summary`` ``(batch, output_size)``, with the meaning the body contract gives
  them (:mod:`seqpipe.architectures.spec`); values at padded steps of
  ``sequence_output`` are ignored by the caller.

Nodes that no graph output needs are pruned when the graph is built, so a lowering
simply produces both.

Native recurrent nodes are time-major (onnxruntime refuses ``layout=1``), so the
input is transposed once, layers chain in time-major form, and only the outputs
are turned back. ``sequence_lens`` makes each direction see exactly its valid
steps; ``Y_h`` then *is* the contract's summary: the forward direction's state at
the last valid step and the backward direction's state after step 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from seqpipe.onnx.graph import GraphBuilder

#: Gates per op (rows of W are gates * hidden_size) and default activations.
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTIVATIONS = {
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
    "RNN": ["Tanh"],
}
_DIRECTIONS = {"forward": 1, "bidirectional": 2}


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
        return _DIRECTIONS[self.direction]

    @property
    def has_state_c(self) -> bool:
        return self.op == "LSTM"

    @property
    def default_activations(self) -> bool:
        return (
            self.activations == _DEFAULT_ACTIVATIONS[self.op] * self.num_directions
            and not self.activation_alpha
            and not self.activation_beta
        )


def parse_layers(raw: Sequence[Mapping[str, Any]], owner: str = "body") -> list[RecurrentLayer]:
    """Validate what ``onnx_recurrent_layers()`` returned; errors name the layer and key."""
    if not raw:
        raise ValueError(f"{owner}.onnx_recurrent_layers() returned no layers")
    layers = []
    width = None
    for index, spec in enumerate(raw):
        where = f"{owner}.onnx_recurrent_layers()[{index}]"
        op = spec.get("op")
        if op not in _GATES:
            raise ValueError(f"{where}: op must be one of {sorted(_GATES)}, got {op!r}")
        direction = spec.get("direction", "forward")
        if direction not in _DIRECTIONS:
            raise ValueError(
                f"{where}: direction must be one of {sorted(_DIRECTIONS)}, got {direction!r}"
            )
        hidden = int(spec["hidden_size"])
        dirs, rows = _DIRECTIONS[direction], _GATES[op] * hidden
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
        activations = list(spec.get("activations") or _DEFAULT_ACTIVATIONS[op] * dirs)
        if len(activations) != len(_DEFAULT_ACTIVATIONS[op]) * dirs:
            raise ValueError(
                f"{where}: {op} needs {len(_DEFAULT_ACTIVATIONS[op])} activations per "
                f"direction ({len(_DEFAULT_ACTIVATIONS[op]) * dirs} in all), got {activations}"
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


def _array(value: Any, where: str, key: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"{where}: {key!r} is required")
    return np.ascontiguousarray(np.asarray(value, dtype=np.float32))


def _expect(array: np.ndarray, shape: tuple[int, ...], where: str, key: str) -> None:
    if array.shape != shape:
        raise ValueError(f"{where}: {key} has shape {array.shape}, expected {shape}")


def _floats(values: Any) -> list[float] | None:
    return None if values is None or len(values) == 0 else [float(v) for v in values]


#: Where each ONNX gate block sits in torch's weight rows, by ``nn.RNNBase.mode``
#: (torch LSTM i,f,g,o -> ONNX i,o,f,c; torch GRU r,z,n -> ONNX z,r,h).
_TORCH_GATE_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN_TANH": (0,), "RNN_RELU": (0,)}


def torch_rnn_layers(rnn: Any) -> list[dict[str, Any]]:
    """``onnx_recurrent_layers()`` of a ``torch.nn.LSTM``/``GRU``/``RNN`` (any layers,
    directions, ``batch_first``); ``bias=False`` and LSTM ``proj_size`` are refused."""
    mode = rnn.mode
    if mode not in _TORCH_GATE_ORDER or not rnn.bias or getattr(rnn, "proj_size", 0):
        raise ValueError(
            f"cannot lower {rnn!r} to ONNX: needs an LSTM, GRU or RNN with bias and no proj_size"
        )
    order, hidden = _TORCH_GATE_ORDER[mode], rnn.hidden_size
    op = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
    activations = {
        "LSTM": ["Sigmoid", "Tanh", "Tanh"],
        "GRU": ["Sigmoid", "Tanh"],
        "RNN_TANH": ["Tanh"],
        "RNN_RELU": ["Relu"],
    }[mode]
    suffixes = ("", "_reverse") if rnn.bidirectional else ("",)

    def param(name: str, layer: int, suffix: str) -> np.ndarray:
        value = getattr(rnn, f"{name}_l{layer}{suffix}").detach().float().cpu().numpy()
        blocks = np.split(value, len(order))
        return np.concatenate([blocks[i] for i in order])

    layers = []
    for k in range(rnn.num_layers):
        w, r, b_ih, b_hh = (
            np.stack([param(name, k, s) for s in suffixes])
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        layers.append(
            {
                "op": op,
                "hidden_size": hidden,
                "direction": "bidirectional" if rnn.bidirectional else "forward",
                "W": w,
                "R": r,
                "B": np.concatenate([b_ih, b_hh], axis=1),
                "P": None,
                "activations": activations * len(suffixes),
                "activation_alpha": None,
                "activation_beta": None,
                "input_forget": 0,
                # torch applies the reset gate after the recurrent matmul.
                "linear_before_reset": int(op == "GRU"),
            }
        )
    return layers


@dataclass
class LoweredRecurrence:
    """Names produced by :func:`lower_layers`.

    ``states_out`` holds, per layer, the final ``(h, c)`` (``c`` is None for GRU and
    RNN), each ``(num_directions, batch, hidden)``: what streaming feeds back in.
    """

    sequence: str
    summary: str
    states_out: list[tuple[str, str | None]]


def lower_recurrent_body(
    body: Any, graph: GraphBuilder, x: str, lengths: str | None
) -> tuple[str, str]:
    """Write ``body`` as native recurrent nodes; returns ``(sequence_output, summary)``.

    The ``onnx_lowering`` of every architecture whose body implements
    ``onnx_recurrent_layers()`` (see :mod:`seqpipe.architectures.native_onnx`).

    Parameters
    ----------
    body : torch.nn.Module
        A fitted body with an ``onnx_recurrent_layers()`` method.
    graph : GraphBuilder
        The graph to extend.
    x : str
        Batch-first float32 input ``(batch, time, features)``, padding zeroed.
    lengths : str or None
        int32 ``(batch,)`` valid lengths, or None when nothing is padded.

    Returns
    -------
    sequence_output, summary : str
        Names of the ``(batch, time, output_size)`` and ``(batch, output_size)`` values.

    Examples
    --------
    >>> import numpy as np, onnxruntime as ort, torch
    >>> from seqpipe import BodyConfig, get_architecture
    >>> from seqpipe.onnx.graph import GraphBuilder
    >>> from seqpipe.onnx.lowering import lower_recurrent_body
    >>> body = get_architecture("gru").build(BodyConfig(input_size=2, hidden_size=3)).eval()
    >>> g = GraphBuilder()
    >>> x = g.input("x", np.float32, ["batch", "time", 2])
    >>> _, summary = lower_recurrent_body(body, g, x, None)
    >>> _ = g.output(summary, np.float32, ["batch", 3], name="summary")
    >>> session = ort.InferenceSession(g.build().SerializeToString())
    >>> data = np.random.default_rng(0).normal(size=(4, 7, 2)).astype(np.float32)
    >>> expected = body(torch.from_numpy(data))[1].detach().numpy()
    >>> bool(np.allclose(session.run(None, {"x": data})[0], expected, atol=1e-6))
    True
    """
    owner = type(body).__name__
    if not callable(getattr(body, "onnx_recurrent_layers", None)):
        raise TypeError(
            f"{owner} has no onnx_recurrent_layers() method, which lower_native needs; give "
            "the architecture another onnx_lowering, or None to export it via torch.onnx"
        )
    layers = parse_layers(body.onnx_recurrent_layers(), owner)
    lowered = lower_layers(layers, graph, x, lengths)
    return lowered.sequence, lowered.summary


def lower_layers(
    layers: Sequence[RecurrentLayer],
    graph: GraphBuilder,
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


def _merge_directions_time_major(graph: GraphBuilder, y: str, dirs: int) -> str:
    # (time, dirs, batch, hidden) -> (time, batch, dirs * hidden), forward half first.
    if dirs == 1:
        return graph.squeeze(y, [1])
    return graph.op(
        "Reshape", [graph.op("Transpose", [y], perm=[0, 2, 1, 3]), graph.ints([0, 0, -1])]
    )


def _recurrent_node(
    layer: RecurrentLayer,
    graph: GraphBuilder,
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
    graph: GraphBuilder, layer: RecurrentLayer, x: str, inputs: list[str | None]
) -> list[str]:
    """Zero bias/state and full lengths in place of omitted optional inputs."""
    out = list(inputs)
    shape = graph.op("Shape", [x])
    time = graph.op("Gather", [shape, graph.ints([0])], axis=0)
    batch = graph.op("Gather", [shape, graph.ints([1])], axis=0)
    if out[3] is None:
        rows = 2 * _GATES[layer.op] * layer.hidden_size
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
