"""``export``: one verified ONNX file for a fitted seqpipe model, written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from seqpipe import _format as fmt
from seqpipe._atomic import write_atomic as write_bytes_atomic
from seqpipe._version import __version__
from seqpipe.onnx import _quantize, _verify
from seqpipe.onnx._assemble import AssembledGraph, assemble, class_tensor
from seqpipe.onnx._gpu import cuda_incompatibilities
from seqpipe.onnx._quantize import DEFAULT_TOLERANCE, QuantizationError
from seqpipe.onnx._steps import ExportPlan, plan_export
from seqpipe.onnx._verify import VerificationError, VerifySettings
from seqpipe.onnx.graph import DEFAULT_OPSET


def export(
    model: Any,
    path: str | os.PathLike,
    *,
    opset: int | None = None,
    verify: bool = True,
    streaming: bool = False,
    rtol: float = 1e-4,
    verify_batch_sizes: Sequence[int] = (1, 4, 16),
    verify_lengths: Sequence[int] = (1, 9, 120),
    quantize: str | None = None,
    quantize_tolerance: float = DEFAULT_TOLERANCE,
    quantize_data: Any = None,
) -> Path:
    """Write a fitted seqpipe model, pipeline included, as one ONNX file.

    The file holds everything ``predict`` does: input scaling (the pipeline's
    scalers and the estimator's own), the recurrent network as native ONNX
    ``LSTM``/``GRU``/``RNN`` nodes (or, for architectures without an ONNX lowering,
    ``torch.onnx.export`` of the body), the head, and the inverse target scaling,
    or for classifiers the labels and probabilities. Batch size and sequence
    length are dynamic; NaN padding at the end of sequences marks ragged batches,
    as in the Python API. Serve it with :func:`seqpipe.runtime.load` or any
    onnxruntime.

    Parameters
    ----------
    model : estimator
        A fitted ``LSTMRegressor``, ``LSTMClassifier`` or ``LSTMTransformer``; a
        ``Pipeline`` of ``SequenceScaler`` / ``FeatureWiseTransformer`` (wrapping
        ``StandardScaler``, ``MinMaxScaler``, ``RobustScaler`` or ``MaxAbsScaler``)
        steps ending in one; or a ``TransformedTargetRegressor`` around either.
    path : path-like
        Where to write. Written atomically: a temporary file in the same folder is
        written, verified and then renamed over ``path``; on any failure nothing is
        left behind and an existing file at ``path`` is untouched. The file gets
        the permissions ``open(path, "w")`` gives a new file (``0o666 & ~umask``),
        and temporary files left in the folder by killed exports are removed.
    opset : int, optional
        ONNX opset (default 18).
    verify : bool, default=True
        Compare onnxruntime with the Python model before writing (see below).
    streaming : bool, default=False
        Add recurrent state inputs and outputs per layer (``state_{k}_h``,
        ``state_{k}_c`` -> ``state_{k}_h_out``, ...) so that a stream can be fed
        step by step (:class:`seqpipe.runtime.Stream`). Causal models only.
    rtol : float, default=1e-4
        Verification tolerance, relative to magnitude: ``|a - b| <= rtol * max(1, |b|)``.
    verify_batch_sizes, verify_lengths : sequences of int
        Batch sizes and sequence lengths checked (every combination, plus a ragged
        batch). Inputs are drawn around the training data's per-feature mean and
        spread.
    quantize : None or "int8", default=None
        ``"int8"``: write the graph quantized by onnxruntime's dynamic quantization
        (``onnxruntime.quantization.quantize_dynamic``): LSTM nodes become
        ``DynamicQuantizeLSTM`` and the heads' ``Gemm``/``MatMul``
        ``MatMulInteger``, with int8 weights (in a 7-bit range, which cannot
        overflow onnxruntime's sums on CPUs without VNNI) and activations quantized
        at every call; convolutions stay float32 (onnxruntime's ``ConvInteger`` is
        slower than its float ``Conv``). The float32 graph is verified first (as
        above), then the int8 one is measured against it (also with
        ``verify=False``) and held to ``quantize_tolerance``; the measured error is
        stored in the metadata (``seqpipe.quantization``, shown by ``seqpipe info``
        and ``runtime.load(...).quantization``). Peepholes, the coupled gate, Keras
        activations and streaming are supported; GRU and RNN layers are refused
        (onnxruntime has no int8 kernel for them). Needs no extra package.
    quantize_tolerance : float, default=0.05
        The int8 error budget: the largest RMS difference allowed between the int8
        and the float32 file's outputs, as a fraction of the float32 output's
        standard deviation, per output column (a target, a class probability, a
        feature), worst column. 0.05 means the quantization noise is at most 5% of
        the spread of the predictions.
    quantize_data : array-like, optional
        Sequences to measure the int8 error on, as ``predict`` takes them (e.g.
        held-out data; at most 1024 are run at a time). Default: the verification
        inputs drawn around the training data. Classifiers also report the share
        of these sequences whose predicted class is unchanged.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    TypeError
        The model (or one of its steps) cannot be exported; the message lists what can.
    ValueError
        The network or its scaling holds NaN or infinity (a diverged training run,
        which ``fit`` no longer leaves behind): refit it.
    seqpipe.onnx.VerificationError
        onnxruntime's outputs differ from the Python model's; the message gives the
        largest difference and the failing case.
    seqpipe.onnx.QuantizationError
        A ``VerificationError``: the int8 graph's error exceeds
        ``quantize_tolerance``; the message gives the measured error (and, for
        classifiers, the class agreement). Nothing is written.
    ValueError
        An invalid ``quantize``, ``quantize_tolerance`` or ``quantize_data``.

    Notes
    -----
    Verification calls the Python model with one torch thread (restored afterwards):
    its batches are tiny, and more threads only spin against each other, which on a
    busy machine turned a 0.1 s export into 15 s.

    The file's input is float32 ``X``, or float64 where float32 would lose precision
    the model sees (with ``local_scaling``, or data far from zero relative to their
    spread: an input scaling step's ``|mean| / std`` above 100, e.g. timestamps);
    the scaling then runs in float64 in the graph, as in ``predict``.
    :mod:`seqpipe.runtime` casts to the file's input dtype. Sequence lengths come
    from the NaN padding, in the graph. Regression outputs are float64 like
    ``predict``'s, computed in float64 from the network's float32 output;
    ``features`` are float32.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from sklearn.pipeline import make_pipeline
    >>> from seqpipe import LSTMClassifier, runtime
    >>> from seqpipe.onnx import export
    >>> from seqpipe.preprocessing import SequenceScaler
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 5, 2))
    >>> y = np.where(X[:, -1, 0] > X[:, 0, 0], "up", "down")
    >>> pipe = make_pipeline(SequenceScaler(), LSTMClassifier(hidden_size=4, epochs=2))
    >>> path = export(pipe.fit(X, y), os.path.join(tempfile.mkdtemp(), "clf.onnx"))
    >>> model = runtime.load(path)
    >>> bool((model.predict(X) == pipe.predict(X)).all())
    True
    """
    _quantize.check_arguments(quantize, quantize_tolerance, quantize_data)
    plan = plan_export(model)
    assembled = assemble(plan, opset=opset or DEFAULT_OPSET, streaming=streaming)
    metadata = build_metadata(plan, assembled)
    onnx_model = assembled.graph.build(
        name="seqpipe_" + type(plan.estimator).__name__,
        doc=f"{plan.description} exported by seqpipe {__version__}",
        metadata=metadata,
        producer_version=__version__,
    )
    _set_metadata(
        onnx_model, fmt.KEY_CUDA_UNSUPPORTED, json.dumps(cuda_incompatibilities(onnx_model))
    )
    settings = VerifySettings(tuple(verify_batch_sizes), tuple(verify_lengths), rtol)
    request = None
    if quantize is not None:
        _quantize.refuse_unquantizable(onnx_model)  # before the checks: refusing is free
        request = _quantize.QuantizeRequest(float(quantize_tolerance), quantize_data, settings)
    return write_atomic(onnx_model, Path(path), plan, settings if verify else None, request)


def build_metadata(plan: ExportPlan, assembled: AssembledGraph) -> dict[str, str]:
    """The ``metadata_props`` every seqpipe file carries (see :mod:`seqpipe._format`)."""
    est = plan.estimator
    n_features = int(est.n_features_in_)
    inputs = [
        {
            "name": fmt.INPUT,
            "dtype": np.dtype(assembled.input_dtype).name,
            "shape": ["batch", "time", n_features],
            "meaning": fmt.PADDING_RULE,
        }
    ]
    for state in assembled.states:
        inputs.append(
            {
                "name": state["input"],
                "dtype": "float32",
                "shape": state["shape"],
                "meaning": f"recurrent state {state['kind']} of layer {state['layer']} "
                f"(zeros to start; feed back {state['output']!r})",
            }
        )
    metadata = {
        fmt.KEY_FORMAT: fmt.FORMAT_VERSION,
        fmt.KEY_VERSION: __version__,
        fmt.KEY_TASK: assembled.task,
        fmt.KEY_MODEL: plan.description,
        fmt.KEY_ARCHITECTURE: str(est.network_params_["architecture"]),
        fmt.KEY_N_FEATURES: str(n_features),
        fmt.KEY_OUTPUT_KIND: assembled.output_kind,
        fmt.KEY_INPUTS: json.dumps(inputs),
        fmt.KEY_OUTPUTS: json.dumps(assembled.outputs),
        fmt.KEY_STREAMING: json.dumps(assembled.states),
        fmt.KEY_NETWORK: json.dumps(assembled.network),
    }
    shortest_fit = getattr(est, "_shortest_fit", None)  # absent in models fitted before it
    if shortest_fit is not None:
        metadata[fmt.KEY_SHORTEST_FIT] = str(int(shortest_fit))
    if assembled.task == fmt.TASK_CLASSIFICATION:
        classes = np.asarray(est.classes_)
        values, _ = class_tensor(classes)
        metadata[fmt.KEY_CLASSES] = json.dumps(values.tolist())
        metadata[fmt.KEY_CLASSES_DTYPE] = classes.dtype.str
    return metadata


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for entry in model.metadata_props:
        if entry.key == key:
            entry.value = value
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value


def write_atomic(
    model: onnx.ModelProto,
    path: Path,
    plan: ExportPlan | None,
    settings: VerifySettings | None,
    quantize: _quantize.QuantizeRequest | None = None,
) -> Path:
    """Verify ``model`` (when ``settings``), quantize it (when ``quantize``), write it
    next to ``path``, rename it over.

    The verification summary (of the float32 graph) and the int8 graph's measured
    error are stored in the file's metadata. Any failure removes the temporary file
    and leaves ``path`` as it was. The file gets the permissions ``open(path, "w")``
    would give it, and temporary files that killed exports left in the folder are
    removed (see ``seqpipe._atomic``).
    """
    from seqpipe import runtime

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give the path of the .onnx file to write")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    if settings is not None and plan is not None:
        try:
            loaded = _quiet_load(runtime, model.SerializeToString())
            summary = _verify.verify(plan, loaded, settings)
        except VerificationError as exc:
            raise VerificationError(
                f"export of {plan.description} to {path} failed verification, so nothing was "
                f"written: {exc}"
            ) from None
        _set_metadata(model, fmt.KEY_VERIFIED, json.dumps(summary))
    if quantize is not None and plan is not None:
        try:
            model, report = _quantize.quantize_checked(
                model, plan, quantize, lambda data: _quiet_load(runtime, data), str(path)
            )
        except QuantizationError:
            raise  # its message names the export and the measured error already
        except VerificationError as exc:
            raise VerificationError(
                f"int8 export of {plan.description} to {path} failed verification, so "
                f"nothing was written: {exc}"
            ) from None
        _set_metadata(model, fmt.KEY_QUANTIZATION, json.dumps(report.metadata(quantize.tolerance)))
    # What is on disk must read back as a seqpipe model before it replaces path.
    return write_bytes_atomic(path, model.SerializeToString(), check=runtime.load)


def _quiet_load(runtime: Any, data: bytes) -> Any:
    """``runtime.load`` with fatal-only logging: a graph that fails at some shape is
    reported in the exporter's error, not also as onnxruntime's log lines."""
    options = ort.SessionOptions()
    options.log_severity_level = 4
    return runtime.load(data, session_options=options)
