"""ONNX deployment: one verified file per fitted model or pipeline.

* :func:`export` writes a fitted estimator, ``Pipeline`` or
  ``TransformedTargetRegressor`` as one ONNX file (scaling, network, head, inverse
  scaling / labels), verified against the Python model and written atomically;
* :func:`lower_recurrent_body` is the native lowering (``LSTM``/``GRU``/``RNN``
  nodes) of any body offering ``onnx_recurrent_layers()``;
  :class:`~seqpipe.onnx.graph.GraphBuilder` is what lowerings write into;
* :func:`register_skl2onnx_converters` lets ``skl2onnx.to_onnx`` convert
  pipelines holding seqpipe steps.

Serve the files with :mod:`seqpipe.runtime` (numpy + onnxruntime only).
"""

from seqpipe.onnx._export import export
from seqpipe.onnx._fallback import FallbackExportError
from seqpipe.onnx._gpu import cuda_incompatibilities
from seqpipe.onnx._skl2onnx import register_skl2onnx_converters
from seqpipe.onnx._steps import UnsupportedModelError
from seqpipe.onnx._verify import VerificationError
from seqpipe.onnx.graph import GraphBuilder
from seqpipe.onnx.lowering import lower_recurrent_body

__all__ = [
    "FallbackExportError",
    "GraphBuilder",
    "UnsupportedModelError",
    "VerificationError",
    "cuda_incompatibilities",
    "export",
    "lower_recurrent_body",
    "register_skl2onnx_converters",
]
