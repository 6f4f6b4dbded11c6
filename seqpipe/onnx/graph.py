"""A small ONNX graph builder: unique names, cached constants, dead-node pruning.

Lowerings (``ArchitectureSpec.onnx_lowering``) receive a :class:`GraphBuilder` and
add nodes to it by name; they never touch ``onnx.helper`` directly, so every part
of an exported pipeline shares one namespace and one set of initializers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Default opset of exported files. 18 is the first with ``axes`` as an input for
#: every Reduce op; onnxruntime 1.17 (our minimum) runs it.
DEFAULT_OPSET = 18
MIN_OPSET = 14
#: onnx writes its newest IR version, which onnxruntime may not read yet; 10 is read
#: by every onnxruntime we support and carries everything we use.
IR_VERSION = 10

#: Optional trailing outputs the recurrent ops compute only when they are named.
_OPTIONAL_OUTPUT_OPS = frozenset({"LSTM", "GRU", "RNN"})

Dims = Sequence[int | str | None]


def tensor_type(dtype: Any) -> int:
    """ONNX element type of a numpy dtype (``str``/``object`` map to STRING)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return TensorProto.STRING
    return helper.np_dtype_to_tensor_dtype(dtype)


class GraphBuilder:
    """Accumulates nodes, initializers, inputs and outputs of one ONNX graph.

    Parameters
    ----------
    opset : int
        Opset of the default domain the graph targets.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from seqpipe.onnx.graph import GraphBuilder
    >>> g = GraphBuilder(opset=18)
    >>> x = g.input("x", np.float32, ["batch", 2])
    >>> y = g.op("Add", [x, g.const(np.array([1, 2], dtype=np.float32))])
    >>> g.output(y, np.float32, ["batch", 2], name="y")
    'y'
    >>> session = ort.InferenceSession(g.build().SerializeToString())
    >>> session.run(None, {"x": np.zeros((1, 2), np.float32)})[0]
    array([[1., 2.]], dtype=float32)
    """

    def __init__(self, opset: int = DEFAULT_OPSET) -> None:
        if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
            raise ValueError(
                f"opset={opset} is not supported: seqpipe writes opsets {MIN_OPSET} to "
                f"{onnx.defs.onnx_opset_version()} (the newest this onnx knows)"
            )
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.extra_opsets: dict[str, int] = {}
        self._names: set[str] = set()
        self._const_cache: dict[tuple[Any, ...], str] = {}
        #: Leave unused optional outputs of recurrent ops named (for tools such as
        #: skl2onnx's node sorter, which cannot handle ``""`` names).
        self.keep_optional_outputs = False

    # --- names -------------------------------------------------------------------
    def unique(self, base: str) -> str:
        """A fresh value/node name starting with ``base``."""
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def reserve(self, names: Iterable[str]) -> None:
        """Mark names (e.g. of an embedded graph) as taken."""
        self._names.update(names)

    # --- values ------------------------------------------------------------------
    def input(self, name: str, dtype: Any, shape: Dims) -> str:
        """Declare a graph input; returns its name (which must be free)."""
        if name in self._names:
            raise ValueError(f"graph input name {name!r} is already used")
        self._names.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, tensor_type(dtype), list(shape)))
        return name

    def output(self, value: str, dtype: Any, shape: Dims, name: str | None = None) -> str:
        """Expose ``value`` as a graph output, renamed to ``name`` via Identity if given."""
        if name is not None and name != value:
            value = self.op("Identity", [value], outputs=[name])[0]
        self.outputs.append(helper.make_tensor_value_info(value, tensor_type(dtype), list(shape)))
        return value

    def const(self, array: Any, name: str = "const") -> str:
        """An initializer holding ``array``; identical small constants are shared."""
        array = np.asarray(array)
        key = None
        if array.size <= 16 and array.dtype.kind in "biuf":
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._const_cache:
                return self._const_cache[key]
        value = self.unique(name)
        if array.dtype.kind in "OU":
            tensor = helper.make_tensor(
                value, TensorProto.STRING, array.shape, [str(v).encode() for v in array.ravel()]
            )
        else:
            tensor = numpy_helper.from_array(np.ascontiguousarray(array), value)
        self.initializers[value] = tensor
        if key is not None:
            self._const_cache[key] = value
        return value

    def ints(self, values: Sequence[int]) -> str:
        """An int64 1-D constant (shapes, axes, perms)."""
        return self.const(np.asarray(values, dtype=np.int64), "ints")

    # --- nodes -------------------------------------------------------------------
    def op(
        self,
        op_type: str,
        inputs: Sequence[str | None],
        *,
        outputs: int | Sequence[str] = 1,
        domain: str = "",
        **attrs: Any,
    ) -> Any:
        """Add a node; returns its output name, or a list when ``outputs`` is a list
        or a count above 1. ``None`` inputs become ``""`` (omitted optional input)."""
        if isinstance(outputs, int):
            out_names = [self.unique(op_type.lower()) for _ in range(outputs)]
            single = outputs == 1
        else:
            out_names = list(outputs)
            self.reserve(out_names)
            single = False
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = helper.make_node(
            op_type,
            ["" if i is None else i for i in inputs],
            out_names,
            name=self.unique(f"{op_type}_node"),
            domain=domain,
            **attrs,
        )
        self.nodes.append(node)
        return out_names[0] if single else out_names

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: int = 0) -> str:
        """A Reduce* node with ``axes`` as an attribute or input, as the opset wants."""
        since_input = 13 if op_type == "ReduceSum" else 18
        if self.opset >= since_input:
            return self.op(op_type, [x, self.ints(axes)], keepdims=keepdims)
        return self.op(op_type, [x], axes=list(axes), keepdims=keepdims)

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Squeeze", [x, self.ints(axes)])

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self.op("Unsqueeze", [x, self.ints(axes)])

    # --- assembling ----------------------------------------------------------------
    def build(
        self,
        name: str = "seqpipe",
        doc: str = "",
        metadata: Mapping[str, str] | None = None,
        producer_version: str = "",
    ) -> onnx.ModelProto:
        """The finished, checked model (unused nodes and initializers dropped)."""
        nodes = _collapse_output_identities(self._live_nodes(), {o.name for o in self.outputs})
        used = {i for node in nodes for i in node.input}
        used.update(o.name for o in self.outputs)
        initializers = [t for n, t in self.initializers.items() if n in used]
        graph = helper.make_graph(
            nodes, name, self.inputs, self.outputs, initializer=initializers, doc_string=doc
        )
        opsets = [helper.make_opsetid("", self.opset)]
        opsets += [helper.make_opsetid(d, v) for d, v in self.extra_opsets.items()]
        model = helper.make_model(
            graph,
            opset_imports=opsets,
            producer_name="seqpipe",
            producer_version=producer_version,
        )
        model.ir_version = IR_VERSION
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        return model

    def _live_nodes(self) -> list[onnx.NodeProto]:
        """Nodes that some graph output depends on, with unused optional outputs of
        recurrent ops left unnamed (so onnxruntime does not materialise them)."""
        needed = {o.name for o in self.outputs}
        live: list[onnx.NodeProto] = []
        for node in reversed(self.nodes):
            if not any(o in needed for o in node.output if o):
                continue
            if node.op_type in _OPTIONAL_OUTPUT_OPS and not self.keep_optional_outputs:
                names = [o if o in needed else "" for o in node.output]
                while names and not names[-1]:
                    names.pop()
                del node.output[:]
                node.output.extend(names)
            live.append(node)
            needed.update(_consumed(node))
        live.reverse()
        return live


def _collapse_output_identities(
    nodes: list[onnx.NodeProto], outputs: set[str]
) -> list[onnx.NodeProto]:
    """Drop ``Identity`` nodes that only rename a value to an output name: the producer
    writes the output directly (one node less per call)."""
    uses: dict[str, int] = {}
    for node in nodes:
        for name in _consumed(node):
            uses[name] = uses.get(name, 0) + 1
    producers = {o: node for node in nodes for o in node.output if o}
    kept = []
    for node in nodes:
        source = node.input[0] if node.op_type == "Identity" else None
        producer = producers.get(source) if source is not None else None
        if (
            producer is not None
            and node.output[0] in outputs
            and source not in outputs
            and uses.get(source) == 1
        ):
            producer.output[list(producer.output).index(source)] = node.output[0]
            continue
        kept.append(node)
    return kept


def _consumed(node: onnx.NodeProto) -> set[str]:
    """Every value a node reads, including outer-scope names its subgraphs use."""
    names = {i for i in node.input if i}
    for attr in node.attribute:
        graphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for sub in graphs:
            for inner in sub.node:
                names |= _consumed(inner)
    return names
