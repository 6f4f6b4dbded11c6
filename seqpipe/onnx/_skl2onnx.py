"""skl2onnx converters, so ``skl2onnx.to_onnx`` handles pipelines with seqpipe steps.

After :func:`register_skl2onnx_converters`, skl2onnx converts ``LSTMRegressor``,
``LSTMClassifier``, ``LSTMTransformer``, ``SequenceScaler`` and
``FeatureWiseTransformer`` (wrapping the scalers :func:`seqpipe.onnx.export`
supports) like its own estimators. Each estimator is written by the same code as
:func:`seqpipe.onnx.export` and spliced into skl2onnx's graph, with every optional
recurrent input given a real name (skl2onnx's node sorter cannot handle ``""``).

Differences from :func:`seqpipe.onnx.export`: skl2onnx names the inputs and
outputs, writes no seqpipe metadata (so :mod:`seqpipe.runtime` does not load the
result) and does not verify. Regression outputs and probabilities are float64,
classifier outputs are ``label`` and ``probabilities`` (no ZipMap). Pass
``initial_types=[("X", FloatTensorType([None, None, n_features]))]`` for a
dynamic sequence length; a sample array fixes the length seen in it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper

from seqpipe import _format as fmt
from seqpipe.classifier import LSTMClassifier
from seqpipe.onnx._assemble import assemble, class_tensor
from seqpipe.onnx._steps import Affine, Clip, ExportPlan, input_step
from seqpipe.regressor import LSTMRegressor
from seqpipe.transformer import LSTMTransformer


def register_skl2onnx_converters() -> None:
    """Register seqpipe's estimators and transformers with skl2onnx (idempotent).

    Examples
    --------
    >>> import numpy as np, onnxruntime as ort
    >>> from skl2onnx import to_onnx
    >>> from skl2onnx.common.data_types import FloatTensorType
    >>> from sklearn.pipeline import make_pipeline
    >>> from seqpipe import LSTMRegressor
    >>> from seqpipe.onnx import register_skl2onnx_converters
    >>> from seqpipe.preprocessing import SequenceScaler
    >>> register_skl2onnx_converters()
    >>> X = np.random.default_rng(0).normal(size=(20, 5, 2)).astype(np.float32)
    >>> pipe = make_pipeline(SequenceScaler(), LSTMRegressor(hidden_size=4, epochs=2))
    >>> pipe.fit(X, X[:, -1, 0])  # doctest: +ELLIPSIS
    Pipeline(...)
    >>> onx = to_onnx(pipe, initial_types=[("X", FloatTensorType([None, None, 2]))])
    >>> session = ort.InferenceSession(onx.SerializeToString())
    >>> got = session.run(None, {"X": X})[0]
    >>> bool(np.allclose(got.ravel(), pipe.predict(X), atol=1e-4))
    True
    """
    from skl2onnx import update_registered_converter

    from seqpipe.preprocessing import FeatureWiseTransformer, SequenceScaler

    update_registered_converter(
        LSTMRegressor, "SeqpipeLSTMRegressor", _shape_estimator, _convert_estimator
    )
    update_registered_converter(
        LSTMTransformer, "SeqpipeLSTMTransformer", _shape_estimator, _convert_estimator
    )
    update_registered_converter(
        LSTMClassifier,
        "SeqpipeLSTMClassifier",
        _shape_estimator,
        _convert_estimator,
        parser=_parse_classifier,
    )
    for cls in (SequenceScaler, FeatureWiseTransformer):
        update_registered_converter(cls, f"Seqpipe{cls.__name__}", _shape_same, _convert_input_step)


def _parse_classifier(scope: Any, model: Any, inputs: list, custom_parsers: Any = None) -> list:
    from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType

    operator = scope.declare_local_operator("SeqpipeLSTMClassifier", model)
    operator.inputs = inputs
    operator.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    operator.outputs.append(scope.declare_local_variable("probabilities", DoubleTensorType()))
    return operator.outputs


def _shape_same(operator: Any) -> None:
    out_type = type(operator.inputs[0].type)
    operator.outputs[0].type = out_type(list(operator.inputs[0].type.shape))


def _shape_estimator(operator: Any) -> None:
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    model = operator.raw_operator
    shape = list(operator.inputs[0].type.shape)
    batch, time = shape[0], shape[1] if len(shape) > 1 else None
    if isinstance(model, LSTMClassifier):
        _, dtype = class_tensor(np.asarray(model.classes_))
        label_type = {
            "string": StringTensorType,
            "int64": Int64TensorType,
            "float64": DoubleTensorType,
            "bool": BooleanTensorType,
        }[dtype]
        operator.outputs[0].type = label_type([batch])
        operator.outputs[1].type = DoubleTensorType([batch, len(model.classes_)])
    elif isinstance(model, LSTMTransformer):
        operator.outputs[0].type = FloatTensorType([batch, int(model.module_.body.output_size)])
    else:
        layout = model.target_layout_
        dims = {
            "single": [batch],
            "vector": [batch, layout.n_outputs],
            "per_step": [batch, time, layout.n_outputs],
            "horizon": [batch, *getattr(layout, "output_shape", ())],
        }[layout.kind]
        operator.outputs[0].type = DoubleTensorType(dims)


def _input_as_float(scope: Any, operator: Any, container: Any, double: bool = False) -> str:
    """The operator's input as float32 (or float64 for ``double``), cast if needed."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    name = operator.inputs[0].full_name
    wanted = DoubleTensorType if double else FloatTensorType
    if type(operator.inputs[0].type) is wanted:
        return name
    cast = scope.get_unique_variable_name(name + ("_double" if double else "_float"))
    container.add_node(
        "Cast",
        [name],
        [cast],
        to=onnx.TensorProto.DOUBLE if double else onnx.TensorProto.FLOAT,
        name=scope.get_unique_operator_name("Cast"),
    )
    return cast


def _convert_input_step(scope: Any, operator: Any, container: Any) -> None:
    x = _input_as_float(scope, operator, container)
    steps = input_step(type(operator.raw_operator).__name__, operator.raw_operator)
    current = x
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(step, Clip):
            ops = [("Max", step.low), ("Min", step.high)]
        else:
            assert isinstance(step, Affine)
            ops = [("Sub", step.center), ("Div", step.scale)]
        for j, (op, values) in enumerate(ops):
            const = scope.get_unique_variable_name(f"{op.lower()}_value")
            container.add_initializer(
                const, onnx.TensorProto.FLOAT, [len(values)], values.astype(np.float32).tolist()
            )
            out = (
                operator.outputs[0].full_name
                if last and j == len(ops) - 1
                else scope.get_unique_variable_name(op.lower())
            )
            container.add_node(op, [current, const], [out], name=scope.get_unique_operator_name(op))
            current = out
    if not steps:
        container.add_node(
            "Identity",
            [x],
            [operator.outputs[0].full_name],
            name=scope.get_unique_operator_name("Identity"),
        )


def _convert_estimator(scope: Any, operator: Any, container: Any) -> None:
    """Build the estimator's graph as ``export`` does, then copy it into ``container``."""
    model = operator.raw_operator
    plan = ExportPlan(model, [], None, type(model).__name__, model)
    assembled = assemble(plan, opset=container.target_opset, fill_optional_inputs=True)
    built = assembled.graph.build()
    outputs = {
        fmt.OUTPUT_REGRESSION: 0,
        fmt.OUTPUT_FEATURES: 0,
        fmt.OUTPUT_LABEL: 0,
        fmt.OUTPUT_PROBA: 1,
    }
    # The graph's X is float64 where its scaling needs it (see seqpipe.onnx.export);
    # a float32 input declared to skl2onnx has lost that precision already.
    double = np.dtype(assembled.input_dtype) == np.float64
    mapping = {fmt.INPUT: _input_as_float(scope, operator, container, double)}
    for out in built.graph.output:
        mapping[out.name] = operator.outputs[outputs[out.name]].full_name

    def rename(name: str) -> str:
        if name not in mapping:
            mapping[name] = scope.get_unique_variable_name(name)
        return mapping[name]

    for tensor in built.graph.initializer:
        if tensor.data_type == onnx.TensorProto.STRING:
            content: Any = list(tensor.string_data)
        else:
            content = tensor  # copied as raw data
        container.add_initializer(rename(tensor.name), tensor.data_type, list(tensor.dims), content)
    for node in built.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        container.add_node(
            node.op_type,
            [rename(i) for i in node.input],
            [rename(o) for o in node.output],
            op_domain=node.domain,
            name=scope.get_unique_operator_name(node.op_type),
            **attrs,
        )
