"""What a file must be before :mod:`seqpipe.runtime` serves it: the metadata schema
and its agreement with the graph.

:func:`read_contract` takes the metadata and the graph's inputs and outputs as
onnxruntime reports them and returns a :class:`FileContract`, or raises one
``ValueError`` that names the file, the metadata key (or graph part) and what
was expected. It never trusts a value before checking it, and checks every
size before acting on it, so a crafted or damaged file costs bounded time and
memory:

* every value is bounded in length (:data:`MAX_TEXT`, :data:`MAX_JSON`,
  :data:`MAX_CLASSES_JSON`), JSON is parsed strictly (no ``NaN``/``Infinity``)
  and its nesting, container sizes and numbers are bounded;
* text is printable (no control or formatting characters that would drive a
  terminal), except class labels, which are the user's data;
* ``seqpipe.classes_dtype`` is one of an allow-list of plain dtypes (numbers,
  bools, unicode strings, ``object``), never a sub-array or record dtype, and
  the labels fit it;
* the graph agrees: input ``X`` is float32 (float64 where the input scaling needs
  it) of rank 3 with ``n_features`` as its last dimension, the other inputs are
  exactly the recurrent states, the task's outputs exist with the right element
  type and rank, and a classifier's probabilities have one column per class.

numpy and the standard library only (the runtime runs without onnx); the graph
is read through onnxruntime's ``NodeArg`` objects (``name``, ``type``,
``shape``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seqpipe import _format as fmt

__all__ = ["FileContract", "read_contract"]

#: Longest plain-text metadata value, in characters.
MAX_TEXT = 4096
#: Longest JSON metadata value but the classes, in characters.
MAX_JSON = 64 * 1024
#: Longest ``seqpipe.classes`` value, in characters.
MAX_CLASSES_JSON = 1024 * 1024
#: Deepest JSON nesting (the exporter writes at most 3 levels).
MAX_DEPTH = 4
#: Most entries of any JSON list or object but the classes.
MAX_ITEMS = 1000
#: Most class labels, and the most memory their array may take.
MAX_CLASSES = 100_000
MAX_CLASSES_BYTES = 16 * 1024 * 1024
#: Largest integer accepted for a size (features, hidden units, steps).
MAX_SIZE = 2**31 - 1

_FORMAT = int(fmt.FORMAT_VERSION)
_REQUIRED = (
    fmt.KEY_VERSION,
    fmt.KEY_TASK,
    fmt.KEY_MODEL,
    fmt.KEY_ARCHITECTURE,
    fmt.KEY_N_FEATURES,
    fmt.KEY_OUTPUT_KIND,
    fmt.KEY_INPUTS,
    fmt.KEY_OUTPUTS,
    fmt.KEY_STREAMING,
    fmt.KEY_NETWORK,
    fmt.KEY_CUDA_UNSUPPORTED,
)
_OUTPUT_KINDS = {
    fmt.TASK_REGRESSION: {"single": (1,), "vector": (2,), "per_step": (3,), "horizon": (2, 3)},
    fmt.TASK_CLASSIFICATION: {"classes": (1,)},
    fmt.TASK_TRANSFORM: {"features": (2,)},
}
_MAIN_OUTPUT = {
    fmt.TASK_REGRESSION: (fmt.OUTPUT_REGRESSION, "tensor(double)"),
    fmt.TASK_CLASSIFICATION: (fmt.OUTPUT_LABEL, None),  # element type from the classes
    fmt.TASK_TRANSFORM: (fmt.OUTPUT_FEATURES, "tensor(float)"),
}
#: Allowed ``seqpipe.classes_dtype`` values (numpy's ``dtype.str``) and the ONNX
#: element type of the label output for each kind, as the exporter writes it.
_CLASSES_DTYPE = re.compile(r"^[<>|=]?(b1|[iu][1248]|f(2|4|8|16)|U[1-9][0-9]{0,6}|O)$")
_LABEL_TYPES = {
    "b": "tensor(bool)",
    "i": "tensor(int64)",
    "u": "tensor(int64)",
    "f": "tensor(double)",
    "U": "tensor(string)",
    "O": "tensor(string)",
}
_POSITIVE = re.compile(r"^[1-9][0-9]{0,9}$")


@dataclass(frozen=True)
class FileContract:
    """A file's metadata, checked against the schema and the graph.

    Attributes
    ----------
    task : str
        ``regression``, ``classification`` or ``transform``.
    output_kind : str
        Layout of the main output (see :mod:`seqpipe._format`).
    architecture : str
        The registered architecture name.
    n_features : int
        Features per time step of input ``X``.
    max_timesteps : int or None
        Longest sequence the network reads, when it has such a bound.
    states : list of dict
        Recurrent state pairs ``{"input", "output", "shape", ...}``, checked
        against the graph; empty for a non-streaming file.
    classes : ndarray or None
        Class labels (classifiers), in the dtype ``predict`` returns.
    cuda_unsupported : list of str
        Graph features onnxruntime's CUDA kernels would compute wrongly.
    shortest_fit : int or None
        Fewest time steps of any sequence the model was fitted on, where the
        file records it.
    quantization : dict or None
        How the graph was quantized and its error measured at export
        (``seqpipe.quantization``); None for a float32 file.
    """

    task: str
    output_kind: str
    architecture: str
    n_features: int
    max_timesteps: int | None
    states: list[dict[str, Any]] = field(default_factory=list)
    classes: np.ndarray | None = None
    cuda_unsupported: list[str] = field(default_factory=list)
    shortest_fit: int | None = None
    quantization: dict[str, Any] | None = None


def read_contract(
    metadata: Mapping[str, str], inputs: Sequence[Any], outputs: Sequence[Any], where: str
) -> FileContract:
    """Check a file's metadata and graph; the parsed contract or one ValueError.

    Parameters
    ----------
    metadata : mapping of str to str
        The file's ``metadata_props``.
    inputs, outputs : sequences of onnxruntime.NodeArg
        The graph's inputs and outputs (``session.get_inputs()``, ...).
    where : str
        How to name the file in messages (its path, repr'd).

    Returns
    -------
    FileContract

    Raises
    ------
    ValueError
        Not written by seqpipe, a newer format, or any breach of the contract;
        the message names the key or graph part and what was expected.
    """
    return _Reader(metadata, where).read(inputs, outputs)


class _Reader:
    """Reads one file's metadata, key by key, raising on the first breach."""

    def __init__(self, metadata: Mapping[str, str], where: str) -> None:
        self.metadata = metadata
        self.where = where

    # --- errors --------------------------------------------------------------------
    def fail(self, key: str, expected: str, got: Any = None) -> ValueError:
        shown = "" if got is None else f", got {_show(got)}"
        return ValueError(
            f"{self.where} is not a valid seqpipe model file: metadata {key!r} must be "
            f"{expected}{shown}"
        )

    def mismatch(self, what: str) -> ValueError:
        return ValueError(
            f"{self.where} is not a valid seqpipe model file: its metadata and graph "
            f"disagree: {what}"
        )

    # --- the whole file ------------------------------------------------------------
    def read(self, inputs: Sequence[Any], outputs: Sequence[Any]) -> FileContract:
        self.check_format()
        missing = [key for key in _REQUIRED if key not in self.metadata]
        if missing:
            raise self.fail(missing[0], "present (every seqpipe file has it); the file is damaged")
        self.text(fmt.KEY_VERSION, 64)
        self.text(fmt.KEY_MODEL, MAX_TEXT)
        task = self.choice(fmt.KEY_TASK, sorted(_OUTPUT_KINDS))
        kind = self.choice(fmt.KEY_OUTPUT_KIND, sorted(_OUTPUT_KINDS[task]))
        architecture = self.text(fmt.KEY_ARCHITECTURE, 256)
        n_features = self.positive(fmt.KEY_N_FEATURES)
        described_inputs = self.described(fmt.KEY_INPUTS)
        described_outputs = self.described(fmt.KEY_OUTPUTS)
        states = self.states()
        network = self.json(fmt.KEY_NETWORK)
        if not isinstance(network, dict):
            raise self.fail(fmt.KEY_NETWORK, "a JSON object", network)
        max_timesteps = network.get("max_timesteps")
        if max_timesteps is not None and not _is_size(max_timesteps):
            raise self.fail(
                fmt.KEY_NETWORK,
                f"an object whose 'max_timesteps' is null or an integer in 1..{MAX_SIZE}",
                max_timesteps,
            )
        cuda = self.json(fmt.KEY_CUDA_UNSUPPORTED)
        if not isinstance(cuda, list) or not all(isinstance(c, str) for c in cuda):
            raise self.fail(fmt.KEY_CUDA_UNSUPPORTED, "a JSON list of strings", cuda)
        self.verified()
        shortest = None
        if fmt.KEY_SHORTEST_FIT in self.metadata:
            shortest = self.positive(fmt.KEY_SHORTEST_FIT)
        quantization = self.quantization() if fmt.KEY_QUANTIZATION in self.metadata else None
        classes = self.classes(task)
        graph = _Graph(self, inputs, outputs)
        graph.check_input(n_features)
        graph.check_states(states)
        graph.check_described(fmt.KEY_INPUTS, described_inputs, inputs)
        graph.check_described(fmt.KEY_OUTPUTS, described_outputs, outputs, states)
        graph.check_main(task, kind, classes)
        return FileContract(
            task=task,
            output_kind=kind,
            architecture=architecture,
            n_features=n_features,
            max_timesteps=max_timesteps,
            states=states,
            classes=classes,
            cuda_unsupported=cuda,
            shortest_fit=shortest,
            quantization=quantization,
        )

    def check_format(self) -> None:
        version = self.metadata.get(fmt.KEY_FORMAT)
        if version is None:
            raise ValueError(
                f"{self.where} is an ONNX model but was not written by seqpipe.onnx.export "
                f"(it has no {fmt.KEY_FORMAT!r} metadata); use onnxruntime.InferenceSession "
                "directly"
            )
        if not _POSITIVE.match(version):
            raise self.fail(fmt.KEY_FORMAT, "a format version number", version)
        if int(version) > _FORMAT:
            raise ValueError(
                f"{self.where} uses seqpipe file format {version} (metadata "
                f"{fmt.KEY_FORMAT!r}), newer than this runtime reads ({_FORMAT}); upgrade seqpipe"
            )

    # --- plain values --------------------------------------------------------------
    def raw(self, key: str, limit: int) -> str:
        value = self.metadata[key]
        if len(value) > limit:
            raise self.fail(key, f"at most {limit} characters long", f"{len(value)} characters")
        return value

    def text(self, key: str, limit: int) -> str:
        value = self.raw(key, limit)
        if not value or not value.isprintable():
            raise self.fail(key, "non-empty printable text", value)
        return value

    def choice(self, key: str, allowed: list[str]) -> str:
        value = self.metadata[key]
        if value not in allowed:
            raise self.fail(key, "one of " + ", ".join(map(repr, allowed)), value)
        return value

    def positive(self, key: str) -> int:
        value = self.metadata[key]
        if not _POSITIVE.match(value) or int(value) > MAX_SIZE:
            raise self.fail(key, f"a positive integer (1..{MAX_SIZE}) in decimal", value)
        return int(value)

    # --- JSON values ---------------------------------------------------------------
    def json(self, key: str, limit: int = MAX_JSON, labels: bool = False) -> Any:
        raw = self.raw(key, limit)
        try:
            value = json.loads(raw, parse_constant=_no_constant)
        except RecursionError:
            raise self.fail(key, f"JSON nested at most {MAX_DEPTH} deep", raw) from None
        except ValueError as exc:  # JSONDecodeError, NaN, a huge integer
            raise self.fail(key, f"valid JSON ({exc})", raw) from None
        problem = _check_tree(value, labels)
        if problem:
            raise self.fail(key, f"JSON {problem}", raw)
        return value

    def described(self, key: str) -> list[dict[str, Any]]:
        """``seqpipe.inputs`` / ``seqpipe.outputs``: a list of described tensors."""
        value = self.json(key)
        expected = (
            'a non-empty JSON list of {"name": str, "dtype": str, "shape": [int or str, ...], '
            '"meaning": str}'
        )
        if not isinstance(value, list) or not value:
            raise self.fail(key, expected, value)
        for item in value:
            if (
                not isinstance(item, dict)
                or not {"name", "dtype", "shape", "meaning"} <= item.keys()
                or not all(isinstance(item[k], str) for k in ("name", "dtype", "meaning"))
                or not isinstance(item["shape"], list)
                or not all(isinstance(d, str) or _is_dim(d) for d in item["shape"])
            ):
                raise self.fail(key, expected, item)
        return value

    def states(self) -> list[dict[str, Any]]:
        value = self.json(fmt.KEY_STREAMING)
        expected = (
            'a JSON list of {"input": str, "output": str, "shape": [1, "batch", hidden size], '
            '"layer": int, "kind": str}'
        )
        if not isinstance(value, list):
            raise self.fail(fmt.KEY_STREAMING, expected, value)
        for item in value:
            if (
                not isinstance(item, dict)
                or not {"input", "output", "shape", "layer", "kind"} <= item.keys()
                or not all(isinstance(item[k], str) for k in ("input", "output", "kind"))
                or not _is_int(item["layer"])
                or not isinstance(item["shape"], list)
                or len(item["shape"]) != 3
                or item["shape"][0] != 1
                or not _is_size(item["shape"][2])
            ):
                raise self.fail(fmt.KEY_STREAMING, expected, item)
        return value

    def verified(self) -> None:
        if fmt.KEY_VERIFIED not in self.metadata:
            return  # exported with verify=False
        value = self.json(fmt.KEY_VERIFIED)
        expected = (
            'a JSON object with "max_abs_diff" (a number >= 0), "rtol" (a number > 0), '
            '"batch_sizes" and "lengths" (lists of positive integers)'
        )
        if (
            not isinstance(value, dict)
            or not _is_number(value.get("max_abs_diff"))
            or value["max_abs_diff"] < 0
            or not _is_number(value.get("rtol"))
            or value["rtol"] <= 0
            or not all(
                isinstance(value.get(k), list) and all(_is_size(n) for n in value[k])
                for k in ("batch_sizes", "lengths")
            )
        ):
            raise self.fail(fmt.KEY_VERIFIED, expected, value)

    def quantization(self) -> dict[str, Any]:
        """``seqpipe.quantization`` (optional): what the quantized graph measured."""
        value = self.json(fmt.KEY_QUANTIZATION)
        expected = (
            'a JSON object with "dtype" (text), "error" and "max_abs_diff" (numbers >= 0), '
            '"tolerance" (a number > 0), "sequences" (a positive integer) and optionally '
            '"class_agreement" (a number from 0 to 1)'
        )
        if not isinstance(value, dict):
            raise self.fail(fmt.KEY_QUANTIZATION, expected, value)
        agreement = value.get("class_agreement")
        if (
            not isinstance(value.get("dtype"), str)
            or not value["dtype"]
            or not all(
                _is_number(value.get(k)) and value[k] >= 0 for k in ("error", "max_abs_diff")
            )
            or not _is_number(value.get("tolerance"))
            or value["tolerance"] <= 0
            or not _is_size(value.get("sequences"))
            or (agreement is not None and not (_is_number(agreement) and 0 <= agreement <= 1))
        ):
            raise self.fail(fmt.KEY_QUANTIZATION, expected, value)
        return value

    def classes(self, task: str) -> np.ndarray | None:
        present = [k for k in (fmt.KEY_CLASSES, fmt.KEY_CLASSES_DTYPE) if k in self.metadata]
        if task != fmt.TASK_CLASSIFICATION:
            if present:
                raise self.fail(present[0], f"absent for task {task!r} (only classifiers have it)")
            return None
        for key in (fmt.KEY_CLASSES, fmt.KEY_CLASSES_DTYPE):
            if key not in self.metadata:
                raise self.fail(key, "present for task 'classification'")
        key = fmt.KEY_CLASSES_DTYPE
        spelled = self.metadata[key]
        if not _CLASSES_DTYPE.match(spelled):
            raise self.fail(
                key,
                "a plain numpy dtype of booleans, integers, floats, unicode strings or objects "
                "(such as '<i8', '<f8', '|b1', '<U5', '|O')",
                spelled,
            )
        dtype = np.dtype(spelled)  # safe: the pattern admits no shape, fields or sizes > 7 digits
        labels = self.json(fmt.KEY_CLASSES, MAX_CLASSES_JSON, labels=True)
        if not isinstance(labels, list) or not 1 <= len(labels) <= MAX_CLASSES:
            raise self.fail(
                fmt.KEY_CLASSES, f"a JSON list of 1 to {MAX_CLASSES} class labels", labels
            )
        if len(labels) * max(dtype.itemsize, 1) > MAX_CLASSES_BYTES:
            raise self.fail(
                key,
                f"a dtype whose {len(labels)} labels take at most {MAX_CLASSES_BYTES} bytes",
                spelled,
            )
        kind = dtype.kind
        fits = {
            "b": lambda v: isinstance(v, bool),
            "i": lambda v: _is_int(v) and _in_range(v, dtype),
            "u": lambda v: _is_int(v) and _in_range(v, dtype),
            "f": lambda v: _is_number(v),
            "U": lambda v: isinstance(v, str) and len(v) <= dtype.itemsize // 4,
            "O": lambda v: isinstance(v, str),
        }[kind]
        bad = next((v for v in labels if not fits(v)), _NONE)
        if bad is not _NONE:
            raise self.fail(
                fmt.KEY_CLASSES, f"a JSON list of labels that fit dtype {spelled!r}", bad
            )
        with np.errstate(over="ignore"):
            classes = np.asarray(labels, dtype=dtype)
        # Distinct after the cast too (a narrow float dtype may round two labels into
        # one, or a large one to infinity).
        if len(set(labels)) != len(labels) or len(np.unique(classes)) != len(labels):
            raise self.fail(fmt.KEY_CLASSES, f"a list of labels distinct as {spelled!r}", labels)
        if kind == "f" and not np.isfinite(classes).all():
            raise self.fail(fmt.KEY_CLASSES, f"a list of labels finite as {spelled!r}", labels)
        return classes


class _Graph:
    """The graph's side of the contract."""

    def __init__(self, reader: _Reader, inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
        self.reader = reader
        self.inputs = {arg.name: arg for arg in inputs}
        self.outputs = {arg.name: arg for arg in outputs}

    def check_input(self, n_features: int) -> None:
        x = self.inputs.get(fmt.INPUT)
        if x is None:
            raise self.reader.mismatch(
                f"the graph has no input {fmt.INPUT!r} (it has {sorted(self.inputs)})"
            )
        shape = list(x.shape or [])
        # float64 where the exported input scaling needs it (large offsets).
        if x.type not in ("tensor(float)", "tensor(double)") or len(shape) != 3:
            raise self.reader.mismatch(
                f"input {fmt.INPUT!r} must be a float32 or float64 tensor (batch, time, "
                f"features), the "
                f"graph declares {x.type} of shape {shape}"
            )
        if shape[2] != n_features:
            raise self.reader.mismatch(
                f"{fmt.KEY_N_FEATURES!r} is {n_features} but the graph's input {fmt.INPUT!r} "
                f"has {shape[2]!r} features per time step"
            )

    def check_states(self, states: list[dict[str, Any]]) -> None:
        expected = {state["input"] for state in states}
        others = set(self.inputs) - {fmt.INPUT}
        if len({state["output"] for state in states}) != len(states):
            raise self.reader.fail(
                fmt.KEY_STREAMING, "a list of states with distinct outputs", states
            )
        if others != expected or len(expected) != len(states):
            raise self.reader.mismatch(
                f"{fmt.KEY_STREAMING!r} lists state inputs {sorted(expected)} but the graph's "
                f"inputs besides {fmt.INPUT!r} are {sorted(others)}"
            )
        for state in states:
            graph_in = self.inputs[state["input"]]
            graph_out = self.outputs.get(state["output"])
            hidden = state["shape"][2]
            for role, arg in (("input", graph_in), ("output", graph_out)):
                if arg is None:
                    raise self.reader.mismatch(
                        f"{fmt.KEY_STREAMING!r} names state output {state['output']!r}, which "
                        "the graph does not have"
                    )
                shape = list(arg.shape or [])
                if arg.type != "tensor(float)" or len(shape) != 3 or shape[2] != hidden:
                    raise self.reader.mismatch(
                        f"state {role} {arg.name!r} must be float32 of shape (1, batch, "
                        f"{hidden}) as {fmt.KEY_STREAMING!r} says, the graph declares "
                        f"{arg.type} of shape {shape}"
                    )

    def check_described(
        self,
        key: str,
        described: list[dict[str, Any]],
        args: Sequence[Any],
        states: Sequence[dict[str, Any]] = (),
    ) -> None:
        names = [item["name"] for item in described]
        graph = [arg.name for arg in args if arg.name not in {s["output"] for s in states}]
        if sorted(names) != sorted(graph):
            raise self.reader.mismatch(f"{key!r} describes {names} but the graph has {graph}")
        ranks = {arg.name: len(arg.shape or []) for arg in args}
        for item in described:
            if len(item["shape"]) != ranks[item["name"]]:
                raise self.reader.mismatch(
                    f"{key!r} gives {item['name']!r} the shape {item['shape']} but the graph "
                    f"gives it rank {ranks[item['name']]}"
                )

    def check_main(self, task: str, kind: str, classes: np.ndarray | None) -> None:
        name, element = _MAIN_OUTPUT[task]
        if classes is not None:
            element = _LABEL_TYPES[classes.dtype.kind]
        self.check_output(name, element, _OUTPUT_KINDS[task][kind], f"task {task!r} ({kind})")
        if classes is None:
            return
        self.check_output(fmt.OUTPUT_PROBA, "tensor(double)", (2,), "a classifier")
        width = list(self.outputs[fmt.OUTPUT_PROBA].shape)[1]
        if width != len(classes):
            raise self.reader.mismatch(
                f"{fmt.KEY_CLASSES!r} lists {len(classes)} classes but the graph's output "
                f"{fmt.OUTPUT_PROBA!r} has {width} columns"
            )

    def check_output(self, name: str, element: str, ranks: tuple[int, ...], who: str) -> None:
        arg = self.outputs.get(name)
        if arg is None:
            raise self.reader.mismatch(
                f"{who} needs an output {name!r}; the graph has {sorted(self.outputs)}"
            )
        rank = len(arg.shape or [])
        if arg.type != element or rank not in ranks:
            wanted = " or ".join(map(str, ranks))
            raise self.reader.mismatch(
                f"{who} needs output {name!r} of type {element} and rank {wanted}, the graph "
                f"declares {arg.type} of rank {rank}"
            )


# --- helpers -------------------------------------------------------------------------
_NONE = object()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _check_tree(value: Any, labels: bool) -> str | None:
    """What is wrong with a parsed JSON value (sizes, depth, text, numbers), or None.

    Iterative, so its cost is one pass over the value whatever its shape.
    """
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth >= MAX_DEPTH:
                return f"nested at most {MAX_DEPTH} deep"
            if len(item) > MAX_ITEMS and not (labels and depth == 0):
                return f"lists and objects of at most {MAX_ITEMS} entries"
            children = list(item.values()) if isinstance(item, dict) else item
            if isinstance(item, dict):
                bad = next((k for k in item if not k.isprintable() or len(k) > 256), None)
                if bad is not None:
                    return f"object keys of printable text (got {_show(bad)})"
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            if len(item) > MAX_TEXT:
                return f"text values of at most {MAX_TEXT} characters"
            # Class labels are the user's data, shown escaped; everything else is ours.
            if not (labels and depth == 1) and not item.isprintable():
                return f"printable text (got {_show(item)})"
        elif isinstance(item, float) and not math.isfinite(item):
            return "finite numbers"
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**63:
            return "integers within 64 bits"
    return None


def _show(value: Any) -> str:
    """``value`` for a message: repr'd (so control characters are escaped), cut short."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    shown = repr(text[:80])
    return shown + (f" ... ({len(text)} characters)" if len(text) > 80 else "")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_size(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= MAX_SIZE


def _is_dim(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= MAX_SIZE


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _in_range(value: int, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= value <= info.max
