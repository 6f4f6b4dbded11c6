"""Architecture specs, the contracts plugins implement, and seqpipe's built-in plugins.

What a plugin author needs is public here:

* the contracts: :class:`ArchitectureSpec`, :class:`BodyConfig`, the :class:`Body`
  protocol, and for ONNX export :class:`OnnxLowering`, :class:`LoweringRequest`,
  :class:`LoweredBody`, :class:`StreamState`, :class:`GraphWriter`,
  :class:`UnsupportedModelError`;
* :data:`NATIVE_RECURRENT`, the lowering for bodies that offer
  ``onnx_recurrent_layers()`` (:func:`lower_recurrent`);
* helpers that honour the padding rules at any batch size, traced or not
  (:func:`last_valid`, :func:`summarize`, :func:`reverse_padded`), that check
  ``architecture_options`` (:func:`check_options`) and activation names
  (:func:`activation_name`).
"""

from seqpipe.architectures.layout import activation_name
from seqpipe.architectures.native_onnx import NATIVE_RECURRENT, lower_recurrent
from seqpipe.architectures.options import check_options
from seqpipe.architectures.padding import last_valid, reverse_padded, summarize
from seqpipe.architectures.spec import (
    ArchitectureSpec,
    Body,
    BodyConfig,
    GraphWriter,
    LoweredBody,
    LoweringRequest,
    OnnxLowering,
    StreamState,
    UnsupportedModelError,
)

__all__ = [
    "NATIVE_RECURRENT",
    "ArchitectureSpec",
    "Body",
    "BodyConfig",
    "GraphWriter",
    "LoweredBody",
    "LoweringRequest",
    "OnnxLowering",
    "StreamState",
    "UnsupportedModelError",
    "activation_name",
    "check_options",
    "last_valid",
    "lower_recurrent",
    "reverse_padded",
    "summarize",
]
