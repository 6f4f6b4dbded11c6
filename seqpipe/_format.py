"""The contract between exported files and :mod:`seqpipe.runtime`: names and metadata.

Imports nothing heavy: the runtime reads it on machines without torch or onnx.

Every exported file carries ``metadata_props`` under these keys (values are
strings; ``*_JSON`` keys hold JSON):

* ``seqpipe.format``: version of this contract (``FORMAT_VERSION``);
* ``seqpipe.version``: the seqpipe version that wrote the file;
* ``seqpipe.task``: ``"regression"``, ``"classification"`` or ``"transform"``;
* ``seqpipe.model``: what was exported, e.g. ``Pipeline(SequenceScaler, LSTMRegressor)``;
* ``seqpipe.architecture``: the registered architecture name;
* ``seqpipe.n_features``: features per time step the input must have;
* ``seqpipe.output_kind``: ``single`` ``(batch,)``, ``vector`` ``(batch, k)``,
  ``per_step`` ``(batch, time, k)``, ``horizon`` ``(batch, horizon[, k])``,
  ``classes`` or ``features``;
* ``seqpipe.inputs`` / ``seqpipe.outputs``: JSON lists of
  ``{"name", "dtype", "shape", "meaning"}``;
* ``seqpipe.classes`` (classifiers): JSON list of labels, ``seqpipe.classes_dtype``
  the numpy dtype ``predict`` returns them in;
* ``seqpipe.streaming``: JSON list of recurrent state pairs
  ``{"input", "output", "shape"}``; empty for a non-streaming file;
* ``seqpipe.network``: JSON description (hidden size, layers, ...; how it was lowered);
* ``seqpipe.cuda_unsupported``: JSON list of graph features onnxruntime's CUDA
  kernels would silently ignore (the runtime refuses CUDA for such files);
* ``seqpipe.verified``: JSON summary of the parity check run at export;
* ``seqpipe.shortest_fit_sequence`` (optional): the fewest time steps of any
  sequence the model was fitted on, so the runtime can warn, as the estimator
  does, when a one-feature window passed alone is read as many one-step
  sequences;
* ``seqpipe.quantization`` (optional; int8 files only): JSON object
  ``{"dtype": "int8", "method", "onnxruntime", "nodes": {op: count}, "output",
  "error", "tolerance", "max_abs_diff", "max_over_std", "sequences", "data",
  "class_agreement" (classifiers)}``: how the graph was quantized and its error
  against the float32 graph, measured at export (``error``: the worst output
  column's RMS difference over that column's standard deviation, at most
  ``tolerance``; ``data``: ``"drawn"`` or ``"given"`` sequences). A file without
  it is float32.

:mod:`seqpipe._file_contract` checks every value (types, sizes, the graph)
before the runtime serves a file.
"""

from __future__ import annotations

FORMAT_VERSION = "1"

KEY_FORMAT = "seqpipe.format"
KEY_VERSION = "seqpipe.version"
KEY_TASK = "seqpipe.task"
KEY_MODEL = "seqpipe.model"
KEY_ARCHITECTURE = "seqpipe.architecture"
KEY_N_FEATURES = "seqpipe.n_features"
KEY_OUTPUT_KIND = "seqpipe.output_kind"
KEY_INPUTS = "seqpipe.inputs"
KEY_OUTPUTS = "seqpipe.outputs"
KEY_CLASSES = "seqpipe.classes"
KEY_CLASSES_DTYPE = "seqpipe.classes_dtype"
KEY_STREAMING = "seqpipe.streaming"
KEY_NETWORK = "seqpipe.network"
KEY_CUDA_UNSUPPORTED = "seqpipe.cuda_unsupported"
KEY_VERIFIED = "seqpipe.verified"
KEY_SHORTEST_FIT = "seqpipe.shortest_fit_sequence"
KEY_QUANTIZATION = "seqpipe.quantization"

INPUT = "X"
OUTPUT_REGRESSION = "y"
OUTPUT_LABEL = "label"
OUTPUT_PROBA = "probabilities"
OUTPUT_FEATURES = "features"

TASK_REGRESSION = "regression"
TASK_CLASSIFICATION = "classification"
TASK_TRANSFORM = "transform"

PADDING_RULE = (
    "sequences, batch first; in a ragged batch, pad shorter sequences at the end with whole "
    "time steps of NaN"
)
