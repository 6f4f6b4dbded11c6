"""int8 export: onnxruntime's dynamic quantization, measured against the float graph.

``export(..., quantize="int8")`` runs ``onnxruntime.quantization.quantize_dynamic``
on the verified float32 graph, for two node kinds only. It rewrites

* ``LSTM`` nodes as ``com.microsoft.DynamicQuantizeLSTM`` (int8 ``W`` and ``R``;
  the input and the hidden state are quantized to uint8 at every call and step);
* ``MatMul`` and ``Gemm`` with constant weights (the heads, squeeze-excitation) as
  ``MatMulInteger`` behind a ``DynamicQuantizeLinear`` of their input;

and leaves everything else in float32. Measured with onnxruntime 1.32
(``tests/test_quantize.py`` keeps these facts honest):

* ``DynamicQuantizeLSTM`` honours peepholes (``P``), ``input_forget=1``, every
  activation seqpipe writes (with its alpha/beta) and ``clip``: on a single node
  with random weights its RMS difference from the float node stays at 2-3% of the
  float output's standard deviation, while the float node without the feature
  differs from it by 5 to 37 times that (largest differences: 0.7 to 15 standard
  deviations);
* onnxruntime has no quantized ``GRU`` or ``RNN`` kernel (``DynamicQuantizeGRU``
  and ``DynamicQuantizeRNN`` are not registered ops), and ``quantize_dynamic``
  leaves those nodes in float32: graphs holding them are refused, since the
  recurrent body, where the time goes, would not be quantized at all;
* ``Conv`` nodes (the FCN blocks) stay float32: ``quantize_dynamic`` would make
  them ``ConvInteger``, which ran 3 to 5 times slower than onnxruntime's float
  ``Conv`` (``lstm_fcn`` on ArrowHead, one thread: 2.06 s instead of 0.58 s for
  175 series, 12 ms instead of 2.4 ms for one), for a smaller file only;
* weights use 7 bits (``reduce_range=True``): on CPUs without VNNI (AVX2 only)
  onnxruntime's u8 x s8 kernels saturate int16 sums with full 8-bit weights, which
  made a bi-LSTM 2x64's error 0.08 of the output's standard deviation instead of
  0.011, at the same speed. Per-channel scales did not help (they saturate more).

The error is then measured on the int8 file against the float32 one, and the
export refused when it exceeds the user's budget (:class:`QuantizationError`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from seqpipe import _format as fmt
from seqpipe.onnx._steps import ExportPlan, UnsupportedModelError
from seqpipe.onnx._verify import VerificationError, VerifySettings, bounded_lengths, make_inputs

#: What ``export(..., quantize=...)`` accepts besides None.
QUANTIZE_CHOICES = ("int8",)
#: Default error budget: RMS difference over the float output's standard deviation.
DEFAULT_TOLERANCE = 0.05
#: Node kinds handed to ``quantize_dynamic`` (it turns ``Gemm`` into ``MatMul`` first).
_QUANTIZED_OPS = ["LSTM", "MatMul"]
#: Recurrent ops ``quantize_dynamic`` leaves in float32 (no int8 kernel exists).
_FLOAT_ONLY = ("GRU", "RNN")
#: Sequences per call when measuring on the user's data.
_CHUNK = 1024
#: Node kinds that compute in integers, as ``quantize_dynamic`` writes them.
_INTEGER_OPS = ("DynamicQuantizeLSTM", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul")
#: Metadata the quantizer adds that no seqpipe reader declares.
_QUANTIZER_METADATA = ("onnx.infer", "onnx.quant.pre_process")


class QuantizationError(VerificationError):
    """The int8 graph's error against the float32 graph exceeds the budget."""


@dataclass(frozen=True)
class QuantizeRequest:
    """What the caller asked for: the budget and where to measure it.

    ``data`` is None (measure on ``draw``'s inputs) or the user's sequences.
    """

    tolerance: float
    data: Any
    draw: VerifySettings


def check_arguments(quantize: Any, tolerance: Any, data: Any) -> None:
    """Raise ValueError naming the bad argument of ``export``'s quantization options."""
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        choices = ", ".join(repr(c) for c in QUANTIZE_CHOICES)
        raise ValueError(f"quantize must be None or one of {choices}; got {quantize!r}")
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float, np.integer, np.floating))
        or not math.isfinite(float(tolerance))
        or float(tolerance) <= 0
    ):
        raise ValueError(
            "quantize_tolerance must be a positive finite number (the largest RMS "
            "difference allowed, as a fraction of the float output's standard deviation, "
            f"e.g. 0.05); got {tolerance!r}"
        )
    if quantize is None and data is not None:
        raise ValueError(
            "quantize_data is only used with quantize='int8' (it is where the int8 error is "
            "measured); pass quantize='int8' or drop quantize_data"
        )


def refuse_unquantizable(model: onnx.ModelProto) -> None:
    """Raise UnsupportedModelError if ``model`` holds recurrent nodes int8 cannot run.

    Checked on the float graph, before verification, so a refusal costs nothing.
    """
    found = Counter(n.op_type for n in model.graph.node if n.op_type in _FLOAT_ONLY)
    if not found:
        return
    kinds = " and ".join(sorted(found))
    raise UnsupportedModelError(
        f"quantize='int8' cannot quantize this model's {kinds} nodes: onnxruntime has no "
        f"int8 {kinds} kernel (its dynamic quantization turns only LSTM nodes into "
        "DynamicQuantizeLSTM), so the recurrent layers, where the time goes, would stay "
        "float32. Export without quantize, or use an LSTM architecture (lstm, "
        "peephole_lstm, cifg_lstm, or lstm_fcn/mlstm_fcn with recurrent='lstm')"
    )


def quantize_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` through ``quantize_dynamic`` (7-bit int8 weights, uint8 activations).

    The metadata, producer and doc string are kept; the quantizer's own markers are
    dropped (the file records its quantization under ``seqpipe.quantization``).

    Raises
    ------
    UnsupportedModelError
        A recurrent node was left in float32 (e.g. a traced graph whose weights are
        not constants).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="seqpipe-int8-") as folder, _quiet_quantizer():
        source, target = os.path.join(folder, "float.onnx"), os.path.join(folder, "int8.onnx")
        onnx.save(model, source)
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=False,
            reduce_range=True,
            op_types_to_quantize=list(_QUANTIZED_OPS),
        )
        quantized = onnx.load(target)
    left = [
        n.name or n.op_type for n in quantized.graph.node if n.op_type in ("LSTM", *_FLOAT_ONLY)
    ]
    if left:
        raise UnsupportedModelError(
            f"quantize='int8': onnxruntime's quantizer left the recurrent node(s) {left} in "
            "float32 (their weights are not constants of the graph, as in some traced "
            "exports); export without quantize"
        )
    kept = [e for e in quantized.metadata_props if e.key not in _QUANTIZER_METADATA]
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(kept)
    quantized.producer_name = model.producer_name
    quantized.producer_version = model.producer_version
    quantized.doc_string = model.doc_string
    return quantized


def quantize_checked(
    model: onnx.ModelProto,
    plan: ExportPlan,
    request: QuantizeRequest,
    load: Callable[[bytes], Any],
    target: str,
) -> tuple[onnx.ModelProto, QuantizationReport]:
    """Quantize ``model`` and hold the result to the budget.

    Parameters
    ----------
    model : onnx.ModelProto
        The float32 graph, metadata included.
    plan : ExportPlan
        What was exported (its scaling says where to draw inputs).
    request : QuantizeRequest
        The budget and the data to measure on.
    load : callable
        ``bytes -> seqpipe.runtime`` model (the exporter's quiet ``runtime.load``).
    target : str
        The file being written, for the message.

    Returns
    -------
    (onnx.ModelProto, QuantizationReport)
        The int8 graph and its measured error.

    Raises
    ------
    QuantizationError
        The error exceeds ``request.tolerance``; the message gives the measured figure.
    UnsupportedModelError, ValueError, VerificationError
        See :func:`quantize_int8` and :func:`measure`.
    """
    quantized = quantize_int8(model)
    float_model = load(model.SerializeToString())
    int8_model = load(quantized.SerializeToString())
    report = measure(plan, float_model, int8_model, request, integer_nodes(quantized))
    if not report.error <= request.tolerance:  # NaN fails too
        raise QuantizationError(
            f"int8 export of {plan.description} to {target} exceeds the error budget "
            f"quantize_tolerance={request.tolerance:g}, so nothing was written: measured "
            f"{report.describe()}. Export in float32 (quantize=None), measure on "
            "representative sequences (quantize_data=...), or raise quantize_tolerance if "
            "that error is acceptable"
        )
    return quantized, report


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop ``quantize_dynamic``'s advice to pre-process, logged on the root logger.

    Pre-processing (shape inference, graph optimization) serves static quantization
    and convolution-heavy models; it changes nothing in what dynamic quantization
    does to our graphs, and a warning at every export would only alarm.
    """

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith("Please consider to run pre-processing")

    root = logging.getLogger()
    drop = _Drop()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


@dataclass(frozen=True)
class QuantizationReport:
    """The int8 file's error against the float32 file, on one set of sequences.

    ``error`` is the figure the budget bounds: per output column, the RMS of
    ``int8 - float32`` divided by the float32 column's standard deviation; the
    worst column.
    """

    error: float
    max_abs_diff: float
    max_over_std: float
    output: str
    column: int
    sequences: int
    data: str
    agreement: float | None
    nodes: dict[str, int]

    def metadata(self, tolerance: float) -> dict[str, Any]:
        """The ``seqpipe.quantization`` value (see :mod:`seqpipe._format`)."""
        value: dict[str, Any] = {
            "dtype": "int8",
            "method": "onnxruntime dynamic quantization (int8 weights in 7 bits, uint8 "
            "activations quantized at every call)",
            "onnxruntime": ort.__version__,
            "nodes": self.nodes,
            "output": self.output,
            "error": self.error,
            "tolerance": float(tolerance),
            "max_abs_diff": self.max_abs_diff,
            "max_over_std": self.max_over_std,
            "sequences": self.sequences,
            "data": self.data,
        }
        if self.agreement is not None:
            value["class_agreement"] = self.agreement
        return value

    def describe(self) -> str:
        """One sentence for messages: the error, where, and the class agreement."""
        text = (
            f"error {self.error:.3g} (RMS difference over the float32 output's standard "
            f"deviation; worst column: {self.column} of output {self.output!r}), largest "
            f"difference {self.max_abs_diff:.3g} ({self.max_over_std:.3g} std), on "
            f"{self.sequences} {self.data} sequences"
        )
        if self.agreement is not None:
            text += f"; predicted classes agree on {self.agreement:.1%} of them"
        return text


def measure(
    plan: ExportPlan,
    float_model: Any,
    int8_model: Any,
    request: QuantizeRequest,
    nodes: dict[str, int],
) -> QuantizationReport:
    """Compare the int8 file with the float32 one (both ``seqpipe.runtime`` models).

    The drawn verification inputs (every batch size x length and a ragged batch, as
    :mod:`seqpipe.onnx._verify` draws them, plus for a streaming file one batch fed
    step by step) always run through both files; the error is measured on them, or
    on ``request.data`` alone when the user gives it.

    Raises
    ------
    ValueError
        ``request.data`` is not valid input for the model (the runtime's message).
    VerificationError
        onnxruntime failed to run the int8 graph, or it pads with NaN elsewhere than
        the float32 graph.
    """
    draw = VerifySettings(
        batch_sizes=request.draw.batch_sizes,
        lengths=bounded_lengths(plan, request.draw.lengths),
        seed=request.draw.seed,
    )
    drawn = [X for _, X in make_inputs(plan, draw)]
    pairs, agree = _compare_runs(float_model, int8_model, drawn)
    if int8_model.streaming:
        pairs.append(_streamed(plan, float_model, int8_model, draw.seed))
    where, sequences = "drawn", sum(len(X) for X in drawn)
    if request.data is not None:
        chunks = _chunks(request.data)
        pairs, agree = _compare_runs(float_model, int8_model, chunks, given=True)
        where, sequences = "given", sum(len(X) for X in chunks)
    error, max_abs, max_over_std, column = _errors(pairs)
    return QuantizationReport(
        error=error,
        max_abs_diff=max_abs,
        max_over_std=max_over_std,
        output=_numeric_output(float_model.task),
        column=column,
        sequences=int(sequences),
        data=where,
        agreement=None if agree is None else float(np.mean(agree)),
        nodes=nodes,
    )


def integer_nodes(model: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each quantized kind ``model`` holds, e.g. ``{"MatMulInteger": 1}``."""
    kinds = Counter(n.op_type for n in model.graph.node)
    return {op: n for op, n in sorted(kinds.items()) if op in _INTEGER_OPS}


def _numeric_output(task: str) -> str:
    """The output the error is measured on: the numbers ``predict`` derives from."""
    return {
        fmt.TASK_REGRESSION: fmt.OUTPUT_REGRESSION,
        fmt.TASK_CLASSIFICATION: fmt.OUTPUT_PROBA,
        fmt.TASK_TRANSFORM: fmt.OUTPUT_FEATURES,
    }[task]


def _chunks(data: Any) -> list[Any]:
    """The user's sequences in pieces of at most :data:`_CHUNK` (arrays), or whole (lists)."""
    if isinstance(data, np.ndarray):
        pieces = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)]
    else:
        pieces = [data]
    if not pieces or not len(pieces[0]):
        raise ValueError("quantize_data holds no sequences; give at least one")
    return pieces


def _compare_runs(
    float_model: Any, int8_model: Any, batches: list[Any], *, given: bool = False
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[np.ndarray] | None]:
    """``(float32, int8)`` numeric outputs per batch, and per-sequence label agreement."""
    name = _numeric_output(float_model.task)
    classifier = float_model.task == fmt.TASK_CLASSIFICATION
    pairs, agree = [], [] if classifier else None
    for X in batches:
        if given:
            try:
                expected = float_model.run(X)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"quantize_data is not valid input for this model: {exc}"
                ) from None
        else:
            expected = _run(float_model.run, X)
        got = _run(int8_model.run, X)
        pairs.append((expected[name], got[name]))
        if agree is not None:
            agree.append(expected[fmt.OUTPUT_LABEL] == got[fmt.OUTPUT_LABEL])
    return pairs, None if agree is None else list(np.concatenate(agree))


def _streamed(
    plan: ExportPlan, float_model: Any, int8_model: Any, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A batch fed to the int8 stream one step at a time, and the float32 whole-window
    output it should give (the quantization ranges differ per call, so it may differ)."""
    [(_, X)] = make_inputs(plan, VerifySettings(batch_sizes=(3,), lengths=(7,), seed=seed))[:1]
    name = _numeric_output(float_model.task)
    stream = int8_model.stream(batch_size=len(X))
    steps = []
    for t in range(X.shape[1]):
        _run(stream.feed, X[:, t : t + 1])
        steps.append(stream.outputs[name])
    got = np.concatenate(steps, axis=1) if int8_model.output_kind == "per_step" else steps[-1]
    return _run(float_model.run, X)[name], got


def _run(method: Any, X: Any) -> Any:
    try:
        return method(X)
    except Exception as exc:  # onnxruntime's own exception types
        raise VerificationError(f"onnxruntime failed to run the int8 graph: {exc}") from None


def _columns(values: np.ndarray) -> np.ndarray:
    """An output as ``(rows, columns)`` float64: the last axis is the column (a target,
    a class, a feature or a horizon step), every other axis a row."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(-1, 1) if values.ndim == 1 else values.reshape(-1, values.shape[-1])


def _errors(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, float, int]:
    """``(error, max |diff|, max |diff| / std, worst column)`` over all pairs.

    Per column: RMS of the difference over the float column's standard deviation (a
    constant column is measured against the whole output's standard deviation, or 1
    when that is 0 too). NaN (padded steps) must sit at the same places in both.
    """
    expected = np.concatenate([_columns(f) for f, _ in pairs])
    got = np.concatenate([_columns(q) for _, q in pairs])
    padded = np.isnan(expected)
    if not np.array_equal(padded, np.isnan(got)):
        raise VerificationError(
            f"the int8 graph gives NaN at {int(np.isnan(got).sum())} places, the float32 graph "
            f"at {int(padded.sum())}"
        )
    valid = ~padded
    count = np.maximum(valid.sum(axis=0), 1)
    mean = np.where(valid, expected, 0.0).sum(axis=0) / count
    std = np.sqrt(np.where(valid, (expected - mean) ** 2, 0.0).sum(axis=0) / count)
    overall = float(np.std(expected[valid])) if valid.any() else 0.0
    scale = np.where(std > 0, std, overall if overall > 0 else 1.0)
    diff = np.where(valid, got - expected, 0.0)
    rms = np.sqrt((diff**2).sum(axis=0) / count) / scale
    column = int(np.argmax(rms))
    return (
        float(rms[column]),
        float(np.abs(diff).max(initial=0.0)),
        float((np.abs(diff) / scale).max(initial=0.0)),
        column,
    )
