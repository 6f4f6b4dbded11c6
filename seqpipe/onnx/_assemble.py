"""One graph for a whole export plan: input steps, network, head, task outputs.

Layout of every file (``X`` is ``(batch, time, n_features)``)::

    X -> per-feature scaling -> NaN padding to 0 -> recurrent body -> head
      -> task outputs (inverse target scaling, labels and probabilities, ...)

Sequence lengths are computed in the graph from the NaN padding, as the Python
API does: a time step is padding when its features are NaN. (The runtime
rejects NaN anywhere else before it reaches the graph.) For native layers the
last scaling step is folded into the first layer's weights, and padding is set
to the value that scaling maps to 0: two nodes over the whole input instead of
four.

``X`` is float32 unless float32 would lose precision the model sees: with
``local_scaling`` (each window is scaled in float64, as in Python) and when an
input scaling step's ``|center| / scale`` exceeds :data:`_FOLD_LIMIT` (data far
from zero relative to their spread, such as timestamps or counters). Then ``X``
is float64 and the scaling runs in float64 before the cast to the network's
float32, as the estimators' ``predict`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import TensorProto
from torch import nn

from seqpipe import _format as fmt
from seqpipe._network import Seq2SeqNetwork, SequenceNetwork
from seqpipe.architectures.layout import parse_layers, torch_rnn_layers
from seqpipe.architectures.native_onnx import lower_layers
from seqpipe.architectures.spec import LoweredBody, LoweringRequest, OnnxLowering
from seqpipe.classifier import LSTMClassifier
from seqpipe.onnx._fallback import TORCH_EXPORT
from seqpipe.onnx._steps import Affine, Clip, ExportPlan, TargetInverse, UnsupportedModelError
from seqpipe.onnx.graph import GraphBuilder
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
    #: dtype of the ``X`` input: float32, or float64 where float32 loses precision.
    input_dtype: type = np.float32


def needs_float64_input(plan: ExportPlan) -> bool:
    """Whether ``X`` must enter the graph as float64 (see the module docstring).

    ``|center| / scale`` of a scaling step is how many of its spreads the data sit
    from zero; float32 keeps about 7 digits, so past 100 the scaled values would
    lose more than ~1e-5 of a spread (an offset of 1e7 with unit spread keeps only a
    handful of distinct values).
    """
    est = plan.estimator
    if est._fitted_local_scaling():
        return True
    own = Affine(np.asarray(est.x_mean_, float), np.asarray(est.x_scale_, float))
    steps = fold_steps([*plan.input_steps, own])
    return any(isinstance(step, Affine) and _ratio(step) > _FOLD_LIMIT for step in steps)


def _ratio(step: Affine) -> float:
    return float(np.max(np.abs(step.center) / step.scale))


def assemble(
    plan: ExportPlan, *, opset: int, streaming: bool = False, fill_optional_inputs: bool = False
) -> AssembledGraph:
    """Build the graph for ``plan`` (see the module docstring for its layout)."""
    est = plan.estimator
    n_features = int(est.n_features_in_)
    g = GraphBuilder(opset)
    g.keep_optional_outputs = fill_optional_inputs
    wide = needs_float64_input(plan)
    dtype = np.float64 if wide else np.float32
    x = g.input(fmt.INPUT, dtype, ["batch", "time", n_features])
    # (batch, time, 1), True at padded steps: their features are NaN, and so is the sum.
    # Constants below have the rank of the tensor they meet: onnxruntime's broadcasting
    # is several times slower on a small last axis otherwise.
    nan = g.op("IsNaN", [x])
    padding = nan if n_features == 1 else g.op("IsNaN", [g.reduce("ReduceSum", x, [2], 1)])
    lengths = g.reduce(
        "ReduceSum", g.op("Cast", [g.op("Not", [padding])], to=TensorProto.INT32), [1, 2]
    )
    own = Affine(np.asarray(est.x_mean_, float), np.asarray(est.x_scale_, float))
    local: tuple[str, str] | None = None
    final: Affine | None
    if est._fitted_local_scaling():
        # Each window by its own statistics first, so the pipeline's steps cannot be
        # folded into the estimator's own scaling.
        h = _input_steps(g, x, fold_steps(list(plan.input_steps)), dtype)
        h, local = _local_scaling(g, h, padding, lengths)
        final = own
    elif wide:
        # Every step in float64, then the network's float32, as predict does.
        h = _input_steps(g, x, fold_steps([*plan.input_steps, own]), dtype)
        h = g.op("Cast", [h], to=TensorProto.FLOAT)
        final = None
    else:
        *explicit, final = fold_steps([*plan.input_steps, own])
        h = _input_steps(g, x, explicit, dtype)

    body = est.module_.body
    # What the network was built with, whatever set_params changed since the fit.
    built = est.network_params_
    architecture = built["architecture"]
    lowering = lowering_for(architecture)
    # The architecture first: refitting without local scaling cannot make it stream.
    if streaming and not lowering.streaming:
        raise UnsupportedModelError(
            f"streaming=True needs a lowering that declares streaming, but architecture "
            f"{architecture!r} is lowered by {lowering.name!r}, which does not"
        )
    if streaming and est._fitted_local_scaling():
        raise UnsupportedModelError(
            "streaming=True cannot be combined with local_scaling: each window is scaled by "
            "its own statistics, which a stream fed step by step does not have yet; refit "
            "with local_scaling=None (LSTMClassifier's default is 'standard') to stream, "
            "or export without streaming and predict on whole windows"
        )
    network = {
        "architecture": architecture,
        "hidden_size": built["hidden_size"],  # the width built: "auto" resolved
        "num_layers": built["num_layers"],
        "bidirectional": bool(built["bidirectional"]),
        "activation": built["activation"],
        "recurrent_activation": built["recurrent_activation"],
        "dropout": built["dropout"],
        # Plugin options may hold any Python value: JSON, with repr() for the rest.
        "architecture_options": json.loads(json.dumps(built["architecture_options"], default=repr)),
        "head": type(est.module_).__name__,
        "head_layers": list(built["head_layers"]),
        "head_activation": built["head_activation"],
        "lowering": lowering.name,
        "lowering_traced": lowering.traced,
        "local_scaling": est._fitted_local_scaling(),
        # A body that reads a fixed number of steps (lstm_fcn's dimension shuffle):
        # the runtime refuses longer sequences with the same message as Python.
        "max_timesteps": getattr(body, "max_timesteps", None),
    }
    fold = final is not None and lowering.folds_input_scaling and _ratio(final) <= _FOLD_LIMIT
    if fold:
        # Padded steps get the value that scales to 0: Python's zero padding.
        pad_value = final.center.astype(np.float32).reshape(1, 1, -1)
        h = g.op("Where", [nan, g.const(pad_value, "x_pad"), h])
    else:
        if final is not None:
            h = _input_steps(g, h, [final], np.float32)
        h = g.op("Where", [nan, g.const(np.zeros((1, 1, 1), np.float32)), h])
    request = LoweringRequest(
        graph=g,
        x=h,
        lengths=lengths,
        input_size=n_features,
        input_scaling=(final.center, final.scale) if fold and final is not None else None,
        streaming=streaming,
        fill_optional_inputs=fill_optional_inputs,
    )
    lowered = _lower(lowering, body, request, architecture)
    sequence, summary = lowered.sequence, lowered.summary

    if isinstance(est, LSTMRegressor):
        raw = _network_output(g, est.module_, sequence, summary)
        outputs, kind = _regression(g, est, plan.target, raw, padding, local)
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
    states = []
    for state in lowered.states:
        g.output(state.value, np.float32, list(state.shape), name=state.output)
        states.append(
            {
                "input": state.input,
                "output": state.output,
                "shape": list(state.shape),
                "layer": state.layer,
                "kind": state.kind,
            }
        )
    return AssembledGraph(g, task, kind, outputs, network, states, dtype)


def lowering_for(architecture: str) -> OnnxLowering:
    """The lowering ``architecture`` declares, or the traced fallback when it declares none."""
    return get_architecture(architecture).onnx_lowering or TORCH_EXPORT


def _lower(
    lowering: OnnxLowering, body: Any, request: LoweringRequest, architecture: str
) -> LoweredBody:
    lowered = lowering.lower(body, request)
    if not isinstance(lowered, LoweredBody):
        raise TypeError(
            f"the ONNX lowering {lowering.name!r} of architecture {architecture!r} returned "
            f"{type(lowered).__name__}, expected seqpipe.architectures.LoweredBody"
        )
    if request.streaming and not lowered.states:
        raise UnsupportedModelError(
            f"the ONNX lowering {lowering.name!r} of architecture {architecture!r} declares "
            "streaming but returned no recurrent states"
        )
    return lowered


def fold_steps(steps: list[Affine | Clip]) -> list[Affine | Clip]:
    """Consecutive affine steps as one (a clip stays in between)."""
    folded: list[Affine | Clip] = []
    for step in steps:
        if folded and isinstance(step, Affine) and isinstance(folded[-1], Affine):
            folded[-1] = folded[-1].then(step)
        else:
            folded.append(step)
    return folded


def _input_steps(g: GraphBuilder, x: str, steps: list[Affine | Clip], dtype: type) -> str:
    """``steps`` applied to ``x``, whose dtype is ``dtype`` (and stays so)."""
    h = x
    for step in steps:
        if isinstance(step, Clip):
            h = g.op("Max", [h, g.const(step.low.astype(dtype), "clip_low")])
            h = g.op("Min", [h, g.const(step.high.astype(dtype), "clip_high")])
            continue
        if np.any(step.center != 0):
            h = g.op("Sub", [h, g.const(step.center.astype(dtype), "x_center")])
        if np.any(step.scale != 1):
            h = g.op("Div", [h, g.const(step.scale.astype(dtype), "x_scale")])
    return h


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


def _local_scaling(
    g: GraphBuilder, h: str, padding: str, lengths: str
) -> tuple[str, tuple[str, str]]:
    """Each window standardized by its own statistics, in float64 as
    :func:`seqpipe._local_scaling.window_stats` computes them.

    ``h`` is float64 (the graph input is, with local scaling). Returns the scaled
    float32 input and the ``(center, scale)`` values, each ``(batch, 1, n_features)``
    float64, for mapping targets back.
    """
    zero = g.const(np.zeros((1, 1, 1)), "zero_f64")
    one = g.const(np.ones((1, 1, 1)), "one_f64")
    x = h
    count = g.op("Reshape", [g.op("Cast", [lengths], to=TensorProto.DOUBLE), g.ints([-1, 1, 1])])
    total = g.reduce("ReduceSum", g.op("Where", [padding, zero, x]), [1], 1)
    center = g.op("Div", [total, count])
    deviation = g.op("Where", [padding, zero, g.op("Sub", [x, center])])
    squares = g.reduce("ReduceSum", g.op("Mul", [deviation, deviation]), [1], 1)
    std = g.op("Sqrt", [g.op("Div", [squares, count])])
    size = g.op("Abs", [center])
    fallback = g.op("Where", [g.op("Greater", [size, zero]), size, one])
    scale = g.op("Where", [g.op("Greater", [std, zero]), std, fallback])
    scaled = g.op("Div", [g.op("Sub", [x, center]), scale])
    return g.op("Cast", [scaled], to=TensorProto.FLOAT), (center, scale)


def _to_window_units(
    g: GraphBuilder, y: str, est: LSTMRegressor, local: tuple[str, str], kind: str
) -> str:
    """``y * scale + center`` with each target column's window statistics."""
    columns = np.asarray(est.local_target_features_, dtype=np.int64)
    if kind == "horizon":
        columns = columns[: est.target_layout_.output_shape[-1]]  # per step, tiled
    stats = []
    for value in local:  # (batch, 1, n_features) -> that of each target column
        picked = g.op("Gather", [value, g.const(columns, "local_columns")], axis=2)
        if kind == "single":
            picked = g.op("Reshape", [picked, g.ints([-1])])
        elif kind == "vector" or (kind == "horizon" and len(est.target_layout_.output_shape) == 1):
            picked = g.op("Reshape", [picked, g.ints([0, -1])])  # y is (batch, outputs)
        stats.append(picked)
    center, scale = stats
    return g.op("Add", [g.op("Mul", [y, scale]), center])


def _regression(
    g: GraphBuilder,
    est: LSTMRegressor,
    target: TargetInverse | None,
    raw: str,
    padding: str,
    local: tuple[str, str] | None = None,
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
    if local is not None:
        y = _to_window_units(g, y, est, local, layout.kind)
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
    if local is not None:
        meaning += (
            ", in the units of the input feature it is measured in (each window is scaled "
            "by its own mean and standard deviation, and the prediction mapped back)"
        )
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
