"""One graph for a whole export plan: input steps, network, head, task outputs.

Layout of every file (``X`` is float32 ``(batch, time, n_features)``)::

    X -> per-feature scaling -> NaN padding to 0 -> recurrent body -> head
      -> task outputs (inverse target scaling, labels and probabilities, ...)

Sequence lengths are computed in the graph from the NaN padding, as the Python
API does: a time step is padding when its features are NaN. (The runtime
rejects NaN anywhere else before it reaches the graph.) For native layers the
last scaling step is folded into the first layer's weights, and padding is set
to the value that scaling maps to 0: two nodes over the whole input instead of
four.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import TensorProto
from torch import nn

from seqpipe import _format as fmt
from seqpipe._network import Seq2SeqNetwork, SequenceNetwork
from seqpipe.architectures.native_onnx import lower_native
from seqpipe.classifier import LSTMClassifier
from seqpipe.onnx._fallback import lower_with_torch_export
from seqpipe.onnx._steps import Affine, Clip, ExportPlan, TargetInverse, UnsupportedModelError
from seqpipe.onnx.graph import GraphBuilder
from seqpipe.onnx.lowering import (
    RecurrentLayer,
    fold_input_scaling,
    lower_layers,
    parse_layers,
    torch_rnn_layers,
)
from seqpipe.plugins import get_architecture
from seqpipe.regressor import LSTMRegressor

_HEAD_ACTIVATIONS = {nn.ReLU: "Relu", nn.Tanh: "Tanh", nn.Sigmoid: "Sigmoid"}
#: Fold the input scaling into the first recurrent layer's weights only while
#: max|center / scale| stays below this: folding loses about eps * ratio relative.
_FOLD_LIMIT = 100.0


@dataclass
class AssembledGraph:
    """The graph plus what the exporter writes into the metadata."""

    graph: GraphBuilder
    task: str
    output_kind: str
    outputs: list[dict[str, Any]]
    network: dict[str, Any]
    states: list[dict[str, Any]] = field(default_factory=list)


def assemble(
    plan: ExportPlan, *, opset: int, streaming: bool = False, fill_optional_inputs: bool = False
) -> AssembledGraph:
    """Build the graph for ``plan`` (see the module docstring for its layout)."""
    est = plan.estimator
    n_features = int(est.n_features_in_)
    g = GraphBuilder(opset)
    g.keep_optional_outputs = fill_optional_inputs
    x = g.input(fmt.INPUT, np.float32, ["batch", "time", n_features])
    # (batch, time, 1), True at padded steps: their features are NaN, and so is the sum.
    # Constants below have the rank of the tensor they meet: onnxruntime's broadcasting
    # is several times slower on a small last axis otherwise.
    nan = g.op("IsNaN", [x])
    padding = nan if n_features == 1 else g.op("IsNaN", [g.reduce("ReduceSum", x, [2], 1)])
    lengths = g.reduce(
        "ReduceSum", g.op("Cast", [g.op("Not", [padding])], to=TensorProto.INT32), [1, 2]
    )
    own = Affine(est.x_mean_.astype(float), est.x_scale_.astype(float))
    *explicit, final = fold_steps([*plan.input_steps, own])
    h = _input_steps(g, x, explicit)

    body = est.module_.body
    spec = get_architecture(est.architecture)
    network = {
        "architecture": est.architecture,
        "hidden_size": est.hidden_size,
        "num_layers": est.num_layers,
        "bidirectional": bool(est.bidirectional),
        "activation": est.activation,
        "recurrent_activation": est.recurrent_activation,
        "head": type(est.module_).__name__,
        "head_layers": [int(u) for u in est.head_layers],
        "lowering": "native" if spec.onnx_lowering is not None else "torch.onnx.export",
    }
    layers = None  # native layers, when seqpipe writes the body's nodes itself
    if streaming:
        layers = _streaming_layers(body, est)
    elif spec.onnx_lowering is lower_native:
        layers = parse_layers(_recurrent_layers(body), type(body).__name__)
    if layers is not None and np.max(np.abs(final.center) / final.scale) <= _FOLD_LIMIT:
        layers[0] = fold_input_scaling(layers[0], final.center, final.scale)
        # Padded steps get the value that scales to 0: Python's zero padding.
        pad_value = final.center.astype(np.float32).reshape(1, 1, -1)
        h = g.op("Where", [nan, g.const(pad_value, "x_pad"), h])
    else:
        h = _input_steps(g, h, [final])
        h = g.op("Where", [nan, g.const(np.zeros((1, 1, 1), np.float32)), h])

    states: list[dict[str, Any]] = []
    finals: list[str] = []
    if streaming:
        sequence, summary, states, finals = _streaming_body(g, layers, h, lengths)
        network["lowering"] = "native"
    elif layers is not None:
        # lower_recurrent_body, with the folded scaling and the option skl2onnx needs.
        lowered = lower_layers(layers, g, h, lengths, fill_optional_inputs=fill_optional_inputs)
        sequence, summary = lowered.sequence, lowered.summary
    elif spec.onnx_lowering is None:
        sequence, summary = lower_with_torch_export(body, g, h, lengths, n_features=n_features)
    else:
        sequence, summary = spec.onnx_lowering(body, g, h, lengths)

    if isinstance(est, LSTMRegressor):
        raw = _network_output(g, est.module_, sequence, summary)
        outputs, kind = _regression(g, est, plan.target, raw, padding)
        task = fmt.TASK_REGRESSION
    elif isinstance(est, LSTMClassifier):
        outputs, kind = _classification(g, est, _network_output(g, est.module_, sequence, summary))
        task = fmt.TASK_CLASSIFICATION
    else:
        width = int(body.output_size)
        g.output(summary, np.float32, ["batch", width], name=fmt.OUTPUT_FEATURES)
        outputs = [
            _describe(
                fmt.OUTPUT_FEATURES,
                "float32",
                ["batch", width],
                "each sequence's encoding (the body's summary), as transform returns",
            )
        ]
        kind, task = "features", fmt.TASK_TRANSFORM
    for state, final in zip(states, finals, strict=True):
        g.output(final, np.float32, state["shape"], name=state["output"])
    return AssembledGraph(g, task, kind, outputs, network, states)


def _recurrent_layers(body: Any) -> Any:
    if not callable(getattr(body, "onnx_recurrent_layers", None)):
        raise UnsupportedModelError(
            f"{type(body).__name__} has no onnx_recurrent_layers() method, which its "
            "architecture's onnx_lowering (lower_native) needs"
        )
    return body.onnx_recurrent_layers()


def fold_steps(steps: list[Affine | Clip]) -> list[Affine | Clip]:
    """Consecutive affine steps as one (a clip stays in between)."""
    folded: list[Affine | Clip] = []
    for step in steps:
        if folded and isinstance(step, Affine) and isinstance(folded[-1], Affine):
            folded[-1] = folded[-1].then(step)
        else:
            folded.append(step)
    return folded


def _input_steps(g: GraphBuilder, x: str, steps: list[Affine | Clip]) -> str:
    h = x
    for step in steps:
        if isinstance(step, Clip):
            h = g.op("Max", [h, g.const(step.low.astype(np.float32), "clip_low")])
            h = g.op("Min", [h, g.const(step.high.astype(np.float32), "clip_high")])
            continue
        if np.any(step.center != 0):
            h = g.op("Sub", [h, g.const(step.center.astype(np.float32), "x_center")])
        if np.any(step.scale != 1):
            h = g.op("Div", [h, g.const(step.scale.astype(np.float32), "x_scale")])
    return h


def _streaming_layers(body: Any, est: Any) -> list[RecurrentLayer]:
    if est.bidirectional:
        raise UnsupportedModelError(
            "streaming=True needs a causal model: a bidirectional one reads each sequence "
            "backwards from its end, which a stream does not have yet"
        )
    if not callable(getattr(body, "onnx_recurrent_layers", None)):
        raise UnsupportedModelError(
            f"streaming=True needs native recurrent layers, but {type(body).__name__} "
            f"(architecture {est.architecture!r}) has no onnx_recurrent_layers()"
        )
    return parse_layers(body.onnx_recurrent_layers(), type(body).__name__)


def _streaming_body(
    g: GraphBuilder, layers: list[RecurrentLayer], h: str, lengths: str
) -> tuple[str, str, list[dict[str, Any]], list[str]]:
    """Native layers with a state input per layer and kind (h, and c for LSTM).

    Returns the body's two outputs, the state descriptions for the metadata and, in
    the same order, the final state values to expose as outputs.
    """
    states: list[dict[str, Any]] = []
    initial: list[tuple[str, str | None]] = []
    for k, layer in enumerate(layers):
        shape = [1, "batch", layer.hidden_size]
        pair = []
        for kind in ("h", "c") if layer.has_state_c else ("h",):
            pair.append(g.input(f"state_{k}_{kind}", np.float32, shape))
            states.append(
                {
                    "input": pair[-1],
                    "output": f"state_{k}_{kind}_out",
                    "shape": shape,
                    "layer": k,
                    "kind": kind,
                }
            )
        initial.append((pair[0], pair[1] if len(pair) > 1 else None))
    lowered = lower_layers(layers, g, h, lengths, initial)
    finals = [lowered.states_out[s["layer"]][0 if s["kind"] == "h" else 1] for s in states]
    return lowered.sequence, lowered.summary, states, finals  # type: ignore[return-value]


def _network_output(g: GraphBuilder, module: nn.Module, sequence: str, summary: str) -> str:
    """The network's raw output from the body's outputs: ``(batch, k)``, or
    ``(batch, time, k)`` for a per-step head."""
    if isinstance(module, Seq2SeqNetwork):
        return _seq2seq_decoder(g, module, summary)
    if isinstance(module, SequenceNetwork):
        if module.per_step:
            return _head(g, module.head, sequence, 3)
        return _head(g, module.head, summary, 2)
    raise UnsupportedModelError(f"the network {type(module).__name__} has no ONNX lowering")


def _seq2seq_decoder(g: GraphBuilder, module: Seq2SeqNetwork, summary: str) -> str:
    # Mirrors Seq2SeqNetwork.forward: the decoder starts from (summary, bridge(summary))
    # and reads the summary at each of `horizon` steps; output flattened per sequence.
    h0 = g.unsqueeze(summary, [0])
    c0 = g.unsqueeze(_head(g, nn.Sequential(module.cell_bridge), summary, 2), [0])
    steps = g.op("Expand", [g.unsqueeze(summary, [1]), g.ints([1, module.horizon, 1])])
    layers = parse_layers(torch_rnn_layers(module.decoder), "Seq2SeqNetwork.decoder")
    decoded = lower_layers(layers, g, steps, None, [(h0, c0)]).sequence
    out = _head(g, nn.Sequential(module.head), decoded, 3)
    return g.op("Reshape", [out, g.ints([0, -1])])


def _head(g: GraphBuilder, head: nn.Sequential, h: str, rank: int) -> str:
    for layer in head:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().cpu().numpy().astype(np.float32)
            bias = layer.bias.detach().cpu().numpy().astype(np.float32)
            if rank == 2:
                h = g.op("Gemm", [h, g.const(weight, "head_W"), g.const(bias, "head_b")], transB=1)
            else:
                h = g.op("MatMul", [h, g.const(np.ascontiguousarray(weight.T), "head_W")])
                h = g.op("Add", [h, g.const(bias, "head_b")])
        elif isinstance(layer, nn.Identity):
            continue
        elif type(layer) in _HEAD_ACTIVATIONS:
            h = g.op(_HEAD_ACTIVATIONS[type(layer)], [h])
        else:
            raise UnsupportedModelError(f"head layer {layer!r} has no ONNX lowering")
    return h


def _describe(name: str, dtype: str, shape: list[Any], meaning: str) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": shape, "meaning": meaning}


def _regression(
    g: GraphBuilder, est: LSTMRegressor, target: TargetInverse | None, raw: str, padding: str
) -> tuple[list[dict[str, Any]], str]:
    layout = est.target_layout_
    k = layout.n_outputs
    if layout.kind == "single":
        raw = g.op("Reshape", [raw, g.ints([-1])])  # 1-D first: cheaper arithmetic below
    y = g.op("Cast", [raw], to=TensorProto.DOUBLE)
    # Same order as predict: raw * y_scale_ + y_mean_, in float64.
    rank = {"single": 1, "per_step": 3}.get(layout.kind, 2)
    stat_shape = (1,) * (rank - 1) + (-1,)
    if np.any(est.y_scale_ != 1):
        scale = np.asarray(est.y_scale_, np.float64).reshape(stat_shape)
        y = g.op("Mul", [y, g.const(scale, "y_scale")])
    if np.any(est.y_mean_ != 0):
        mean = np.asarray(est.y_mean_, np.float64).reshape(stat_shape)
        y = g.op("Add", [y, g.const(mean, "y_mean")])
    shape: list[Any] = {
        "single": ["batch"],
        "vector": ["batch", k],
        "per_step": ["batch", "time", k],
        "horizon": ["batch", *getattr(layout, "output_shape", ())],
    }[layout.kind]
    if layout.kind == "horizon":
        y = g.op("Reshape", [y, g.ints([0, *layout.output_shape])])
    if target is not None:
        y = _target_inverse(g, y, target)
        if target.unsqueeze and layout.kind == "single":
            y = g.unsqueeze(y, [1])
            shape = ["batch", 1]
    if layout.per_step:
        y = g.op("Where", [padding, g.const(np.full((1, 1, 1), np.nan)), y])
    g.output(y, np.float64, shape, name=fmt.OUTPUT_REGRESSION)
    meaning = {
        "single": "one prediction per sequence",
        "vector": f"{k} predictions per sequence",
        "per_step": f"{k} prediction(s) per time step; NaN at padded steps",
        "horizon": "the forecast horizon decoded per sequence (steps, then targets)",
    }[layout.kind]
    return [_describe(fmt.OUTPUT_REGRESSION, "float64", shape, meaning)], layout.kind


def _target_inverse(g: GraphBuilder, y: str, target: TargetInverse) -> str:
    one = g.const(np.float64(1.0))
    for kind, op in target.ops:
        if kind == "affine":
            y = g.op("Mul", [y, g.const(op.scale.astype(np.float64), "target_scale")])
            y = g.op("Add", [y, g.const(op.center.astype(np.float64), "target_center")])
        elif op == "expm1":
            y = g.op("Sub", [g.op("Exp", [y]), one])
        elif op == "log1p":
            y = g.op("Log", [g.op("Add", [y, one])])
        elif op == "square":
            y = g.op("Mul", [y, y])
        else:
            y = g.op(
                {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "negative": "Neg", "abs": "Abs"}[op],
                [y],
            )
    return y


def _classification(
    g: GraphBuilder, est: LSTMClassifier, logits: str
) -> tuple[list[dict[str, Any]], str]:
    classes = np.asarray(est.classes_)
    n = len(classes)
    proba = g.op("Softmax", [g.op("Cast", [logits], to=TensorProto.DOUBLE)], axis=1)
    index = g.op("ArgMax", [proba], axis=1, keepdims=0)
    label_values, label_dtype = class_tensor(classes)
    label = g.op("Gather", [g.const(label_values, "classes"), index], axis=0)
    g.output(label, label_values.dtype, ["batch"], name=fmt.OUTPUT_LABEL)
    g.output(proba, np.float64, ["batch", n], name=fmt.OUTPUT_PROBA)
    return [
        _describe(fmt.OUTPUT_LABEL, label_dtype, ["batch"], "predicted class label"),
        _describe(
            fmt.OUTPUT_PROBA,
            "float64",
            ["batch", n],
            "class probabilities, columns in the order of classes",
        ),
    ], "classes"


def class_tensor(classes: np.ndarray) -> tuple[np.ndarray, str]:
    """Labels as an ONNX-storable array (str, int64, float64 or bool) and its ONNX type name."""
    kind = classes.dtype.kind
    if kind in "U" or (kind == "O" and all(isinstance(c, str) for c in classes)):
        return classes.astype(object), "string"
    if kind in "iu":
        return classes.astype(np.int64), "int64"
    if kind == "f":
        return classes.astype(np.float64), "float64"
    if kind == "b":
        return classes.astype(bool), "bool"
    raise UnsupportedModelError(
        f"class labels of dtype {classes.dtype} ({classes[:3]!r}...) cannot be stored in ONNX; "
        "use strings or numbers"
    )
