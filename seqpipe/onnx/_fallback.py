"""The traced lowering: ``torch.onnx.export`` of the body, embedded.

:data:`TORCH_EXPORT` is the lowering of every architecture that declares none
(``onnx_lowering=None``): one more :class:`~seqpipe.architectures.OnnxLowering`,
called exactly like the others. The body is exported with dynamic batch and time
axes (the dynamo exporter when onnxscript is installed, else the TorchScript one),
its graph is renamed into the pipeline's namespace and spliced in. Nothing here
proves the result is right at other shapes (a Python loop over time steps is traced
unrolled), which is why :func:`seqpipe.onnx.export` verifies every file before
writing it.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from typing import Any

import onnx
import onnx.inliner
import onnx.version_converter

from seqpipe._devices import copy_to_cpu
from seqpipe.architectures.spec import LoweredBody, LoweringRequest, OnnxLowering
from seqpipe.onnx.graph import GraphBuilder


class FallbackExportError(RuntimeError):
    """``torch.onnx.export`` could not export an architecture's body."""


def lower_traced(body: Any, request: LoweringRequest) -> LoweredBody:
    """Export ``body`` through ``torch.onnx.export`` and splice it into the graph.

    Raises
    ------
    FallbackExportError
        If ``torch.onnx.export`` fails on the body.
    """
    graph = request.graph
    model = _export_body(
        body, request.input_size, with_lengths=request.lengths is not None, opset=graph.opset
    )
    sequence, summary = _splice(model, graph, request.x, request.lengths)  # type: ignore[arg-type]
    return LoweredBody(sequence, summary)


#: The lowering of architectures that declare none: traced, then verified.
TORCH_EXPORT = OnnxLowering(lower=lower_traced, name="torch.onnx.export", traced=True)


def _export_body(body: Any, n_features: int, *, with_lengths: bool, opset: int) -> onnx.ModelProto:
    import torch
    from torch import nn

    class WithLengths(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Any:
            return self.inner(x, lengths)

    class WithoutLengths(WithLengths):
        def forward(self, x: torch.Tensor) -> Any:  # type: ignore[override]
            return self.inner(x, None)

    module = (WithLengths if with_lengths else WithoutLengths)(copy_to_cpu(body).eval())
    # Batch and time > 1 and unequal, so the exporter cannot mistake one for the other
    # or specialise either to a constant.
    x = torch.zeros(3, 5, n_features)
    args: tuple[Any, ...] = (x, torch.tensor([5, 4, 5])) if with_lengths else (x,)
    names = ["x", "lengths"][: len(args)]
    dynamo = importlib.util.find_spec("onnxscript") is not None
    kwargs: dict[str, Any] = {}
    if dynamo:
        from torch.export import Dim

        batch, time = Dim("batch"), Dim("time")
        shapes = {"x": {0: batch, 1: time}, "lengths": {0: batch}}
        kwargs = {
            "dynamic_shapes": {k: shapes[k] for k in names},
            "external_data": False,
            "verbose": False,
        }
    else:
        axes = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
        kwargs = {"dynamic_axes": {k: axes[k] for k in names}}
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False):
            # The legacy exporter's deprecation and tracer warnings are about this
            # very risk, which verification covers.
            warnings.simplefilter("ignore")
            result = torch.onnx.export(
                module,
                args,
                None if dynamo else buffer,
                input_names=names,
                output_names=["sequence", "summary"],
                opset_version=opset,
                dynamo=dynamo,
                **kwargs,
            )
    except Exception as exc:
        raise FallbackExportError(
            f"torch.onnx.export ({'dynamo' if dynamo else 'TorchScript'} exporter) failed on "
            f"{type(body).__name__}, whose architecture has no onnx_lowering: {exc}"
        ) from exc
    model = result.model_proto if dynamo else onnx.load_from_string(buffer.getvalue())
    model = onnx.inliner.inline_local_functions(model)
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if version != opset:
        model = onnx.version_converter.convert_version(model, opset)
    return model


def _splice(
    model: onnx.ModelProto, graph: GraphBuilder, x: str, lengths: str | None
) -> tuple[str, str]:
    body = model.graph
    prefix = graph.unique("torch_body") + "/"
    mapping: dict[str, str] = {"": ""}
    inputs = [i.name for i in body.input if i.name not in {t.name for t in body.initializer}]
    mapping[inputs[0]] = x
    if len(inputs) > 1:
        mapping[inputs[1]] = graph.op("Cast", [lengths], to=onnx.TensorProto.INT64)
    for out in body.output:
        mapping[out.name] = graph.unique(prefix + out.name)

    def rename(name: str) -> str:
        if name not in mapping:
            mapping[name] = prefix + name
        return mapping[name]

    for tensor in body.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = rename(tensor.name)
        graph.reserve([copy.name])
        graph.initializers[copy.name] = copy
    for node in body.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        _rename_node(copy, rename)
        copy.name = graph.unique(prefix + (node.name or node.op_type))
        graph.reserve(copy.output)
        graph.nodes.append(copy)
    for opset in model.opset_import:
        if opset.domain not in ("", "ai.onnx"):
            graph.extra_opsets[opset.domain] = opset.version
    sequence, summary = (mapping[o.name] for o in body.output)
    return sequence, summary


def _rename_node(node: onnx.NodeProto, rename: Any) -> None:
    node.input[:] = [rename(i) for i in node.input]
    node.output[:] = [rename(o) for o in node.output]
    for attr in node.attribute:
        subgraphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for sub in subgraphs:
            for value in list(sub.input) + list(sub.output) + list(sub.value_info):
                value.name = rename(value.name)
            for tensor in sub.initializer:
                tensor.name = rename(tensor.name)
            for inner in sub.node:
                _rename_node(inner, rename)
