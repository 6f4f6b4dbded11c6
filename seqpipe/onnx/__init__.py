"""ONNX deployment: one verified file per fitted model or pipeline.

* :func:`export` writes a fitted estimator, ``Pipeline`` or
  ``TransformedTargetRegressor`` as one ONNX file (scaling, network, head, inverse
  scaling / labels), verified against the Python model and written atomically;
  ``quantize="int8"`` writes it int8-quantized, its error measured and bounded
  (:class:`QuantizationError` when over budget);
* :data:`TORCH_EXPORT` is the traced lowering of architectures that declare none
  (the native one, :data:`seqpipe.architectures.NATIVE_RECURRENT`, lives with the
  bodies); :class:`~seqpipe.onnx.graph.GraphBuilder` is what lowerings write into;
* :func:`register_skl2onnx_converters` lets ``skl2onnx.to_onnx`` convert
  pipelines holding seqpipe steps.

Serve the files with :mod:`seqpipe.runtime` (numpy + onnxruntime only).
"""

from seqpipe.onnx._export import export
from seqpipe.onnx._fallback import TORCH_EXPORT, FallbackExportError
from seqpipe.onnx._gpu import cuda_incompatibilities
from seqpipe.onnx._quantize import QuantizationError
from seqpipe.onnx._skl2onnx import register_skl2onnx_converters
from seqpipe.onnx._steps import UnsupportedModelError
from seqpipe.onnx._verify import VerificationError
from seqpipe.onnx.graph import GraphBuilder

__all__ = [
    "TORCH_EXPORT",
    "FallbackExportError",
    "GraphBuilder",
    "QuantizationError",
    "UnsupportedModelError",
    "VerificationError",
    "cuda_incompatibilities",
    "export",
    "register_skl2onnx_converters",
]
