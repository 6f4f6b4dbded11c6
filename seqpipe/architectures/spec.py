"""What a plugin hands seqpipe: an architecture spec and the body contract.

The *body* is the recurrent part of a model: ``build(config)`` returns an
``nn.Module`` with an ``output_size`` attribute whose ``forward(x, lengths)`` takes

* ``x``: float tensor of shape ``(batch, time, input_size)``, batch first, padded
  positions already set to zero;
* ``lengths``: ``None`` when every sequence fills all ``time`` steps, else an int64
  CPU tensor of shape ``(batch,)`` holding each sequence's true length (>= 1);

and returns ``(sequence_output, summary)``:

* ``sequence_output``: ``(batch, time, output_size)``, the output at every step
  (values at padded steps are ignored by the caller);
* ``summary``: ``(batch, output_size)``, one vector per sequence that sees exactly
  its valid steps: the last valid step's output for a causal body; for a
  bidirectional one the forward direction at the last valid step concatenated with
  the backward direction at step 0; for a body that pools over time (it sets the
  attribute ``pooled_summary = True``, e.g. ``lstm_fcn``) an encoding of exactly its
  valid steps that no single step of ``sequence_output`` holds.

Padding must not change any sequence's result: a sequence predicted inside a
ragged batch gives the same numbers as the sequence predicted alone.
(:func:`~seqpipe.architectures.last_valid`, :func:`~seqpipe.architectures.summarize`
and :func:`~seqpipe.architectures.reverse_padded` do the indexing right, at any batch
size, traced or not.)

The *lowering* turns a fitted body into ONNX nodes for :func:`seqpipe.onnx.export`.
An architecture declares one :class:`OnnxLowering`: a function
``lower(body, request) -> LoweredBody`` plus what it can do (whether it is traced,
folds the input scaling, supports streaming). The exporter reads those declarations
and nothing else: built-in and plugin lowerings take exactly the same path.
``onnx_lowering=None`` means the traced fallback (``torch.onnx.export`` of the
body), which the exporter owns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: the contracts import neither torch nor numpy
    import numpy as np
    import torch
    from torch import nn


class UnsupportedModelError(TypeError):
    """A model, or a part of it, cannot be written as ONNX; the message says why."""


@runtime_checkable
class Body(Protocol):
    """What ``ArchitectureSpec.build`` returns: an ``nn.Module`` with this interface.

    Attributes
    ----------
    output_size : int
        Width of both outputs' last axis.
    """

    output_size: int

    def __call__(
        self, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sequence_output, summary)`` for ``x`` ``(batch, time, input_size)``."""
        ...


class GraphWriter(Protocol):
    """What a lowering may call on the graph it receives.

    :class:`seqpipe.onnx.graph.GraphBuilder` implements it: values are names
    (``str``); ``op`` adds a node and returns its (first) output's name, or the list
    of names when ``outputs`` is given; ``const`` and ``ints`` add initializers.
    """

    opset: int

    def op(self, op_type: str, inputs: Sequence[str | None], **attrs: Any) -> Any: ...

    def const(self, array: Any, name: str = "const") -> str: ...

    def ints(self, values: Sequence[int]) -> str: ...

    def input(self, name: str, dtype: Any, shape: Sequence[int | str | None]) -> str: ...

    def unique(self, base: str) -> str: ...

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: int = 0) -> str: ...

    def squeeze(self, x: str, axes: Sequence[int]) -> str: ...

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class LoweringRequest:
    """What the exporter asks of a lowering.

    Parameters
    ----------
    graph : GraphWriter
        The graph to add nodes to.
    x : str
        Name of the float32 ``(batch, time, input_size)`` input, batch first, padded
        steps already zero (exactly what the body's ``forward`` receives), unless
        ``input_scaling`` is given.
    lengths : str or None
        Name of an int32 ``(batch,)`` value holding each sequence's valid length,
        or ``None`` when every sequence fills the whole time axis.
    input_size : int
        Features per time step of ``x``.
    input_scaling : (center, scale) float64 arrays of shape (input_size,), or None
        Given only to a lowering that declares ``folds_input_scaling``: ``x`` is then
        *raw* (padded steps set to ``center``), and the lowering must compute the body
        on ``(x - center) / scale``, typically by folding it into its first weights.
    streaming : bool
        Given only to a lowering that declares ``streaming``: add a graph input per
        recurrent state and return the matching final states in ``LoweredBody.states``.
    fill_optional_inputs : bool
        Give omitted optional node inputs real (zero) values, for tools that cannot
        handle ``""`` input names (skl2onnx's node sorter).
    """

    graph: GraphWriter
    x: str
    lengths: str | None
    input_size: int
    input_scaling: tuple[np.ndarray, np.ndarray] | None = None
    streaming: bool = False
    fill_optional_inputs: bool = False


@dataclass(frozen=True)
class StreamState:
    """One recurrent state a streaming graph takes in and gives back.

    ``input`` is the graph input's name, ``output`` the graph output's name the
    exporter gives the final state ``value``; ``shape`` is ONNX's ``(num_directions,
    "batch", hidden_size)``; ``layer`` and ``kind`` (``"h"`` or ``"c"``) say which.
    """

    input: str
    output: str
    value: str
    shape: tuple[int | str, ...]
    layer: int
    kind: str


@dataclass(frozen=True)
class LoweredBody:
    """What a lowering returns: the names of the body's outputs in the graph.

    ``sequence`` is ``(batch, time, output_size)`` and ``summary`` ``(batch,
    output_size)``, with the meaning the body contract gives them (values at padded
    steps of ``sequence`` are ignored; nodes no output needs are pruned, so a
    lowering simply produces both). ``states`` is filled for streaming requests.
    """

    sequence: str
    summary: str
    states: tuple[StreamState, ...] = ()


LowerFunction = Callable[["nn.Module", LoweringRequest], LoweredBody]


@dataclass(frozen=True)
class OnnxLowering:
    """How an architecture's fitted body becomes ONNX nodes, and what that can do.

    Declared once per architecture (``ArchitectureSpec.onnx_lowering``), as
    skl2onnx converters declare their options: the exporter reads these fields,
    never the function's identity. Every file is verified in onnxruntime before it
    is written, whatever the lowering.

    Parameters
    ----------
    lower : callable
        ``lower(body, request: LoweringRequest) -> LoweredBody``. Raise
        :class:`UnsupportedModelError` for a fitted body it cannot write.
    name : str
        Shown by ``seqpipe plugins`` and stored in the file's metadata.
    traced : bool, default=False
        True when the graph comes from tracing the body (``torch.onnx.export``)
        rather than being written from its weights. A traced graph may be right
        only at the traced shapes: the exporter then says so in the metadata.
    folds_input_scaling : bool, default=False
        The lowering accepts ``request.input_scaling`` and folds the estimator's
        input standardization into its first weights (saving two nodes over the
        whole input).
    streaming : bool, default=False
        The lowering honours ``request.streaming`` (explicit recurrent state in and
        out, for :class:`seqpipe.runtime.Stream`).

    Examples
    --------
    >>> from seqpipe.architectures import NATIVE_RECURRENT
    >>> NATIVE_RECURRENT.name, NATIVE_RECURRENT.streaming, NATIVE_RECURRENT.traced
    ('native recurrent nodes', True, False)
    """

    lower: LowerFunction
    name: str
    traced: bool = False
    folds_input_scaling: bool = False
    streaming: bool = False

    def capabilities(self) -> list[str]:
        """The declared capabilities, in words (for reports and metadata)."""
        out = ["traced by torch.onnx.export" if self.traced else "written from weights"]
        if self.folds_input_scaling:
            out.append("folds input scaling")
        if self.streaming:
            out.append("streaming")
        return out


BodyBuilder = Callable[["BodyConfig"], "nn.Module"]


#: The width ``hidden_size="auto"`` uses for an architecture that declares none.
DEFAULT_HIDDEN_SIZE: int = 32


@dataclass(frozen=True)
class BodyConfig:
    """Hyperparameters the estimators pass to an architecture's ``build``.

    Parameters
    ----------
    input_size : int
        Number of features per time step.
    hidden_size : int
        Units per layer and direction.
    num_layers : int
        Number of stacked recurrent layers.
    bidirectional : bool
        Whether each layer also reads the sequence backwards.
    dropout : float
        Dropout between stacked layers (ignored with one layer).
    activation : str or None
        Candidate/output activation in Keras' naming ("tanh", "relu", "linear", ...).
    recurrent_activation : str or None
        Gate activation in Keras' naming ("sigmoid", "hard_sigmoid", ...).
    options : Mapping
        Architecture-specific options, passed through from the estimator's
        ``architecture_options``; check them with
        :func:`seqpipe.architectures.check_options`.
    max_timesteps : int or None
        The longest training sequence (the padded training array's time axis);
        bodies that need a fixed length read it. ``None`` when unknown (a body
        built outside ``fit``).
    """

    input_size: int
    hidden_size: int = DEFAULT_HIDDEN_SIZE
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    activation: str | None = "tanh"
    recurrent_activation: str | None = "sigmoid"
    options: Mapping[str, Any] = field(default_factory=dict)
    max_timesteps: int | None = None

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], input_size: int, max_timesteps: int | None = None
    ) -> BodyConfig:
        """The config an estimator with ``params`` (its ``get_params()``) builds.

        ``params["hidden_size"]`` must be the width built: an estimator resolves
        ``"auto"`` at fit (``hidden_size_``), and
        :meth:`ArchitectureSpec.resolved_hidden_size` does it for any params. An
        unresolved ``"auto"`` is a ``ValueError``.

        Examples
        --------
        >>> from seqpipe import BodyConfig, LSTMRegressor
        >>> BodyConfig.from_params(LSTMRegressor(hidden_size=8).get_params(), 3).hidden_size
        8
        """
        hidden_size = params["hidden_size"]
        if isinstance(hidden_size, str):
            raise ValueError(
                f"hidden_size={hidden_size!r} is resolved by the estimator at fit (its "
                "`hidden_size_`); pass params with it resolved, e.g. with "
                "ArchitectureSpec.resolved_hidden_size"
            )
        return cls(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=params["num_layers"],
            bidirectional=params["bidirectional"],
            dropout=params["dropout"],
            activation=params["activation"],
            recurrent_activation=params["recurrent_activation"],
            options=dict(params.get("architecture_options") or {}),
            max_timesteps=max_timesteps,
        )


#: The learning rate ``lr="auto"`` uses for an architecture that declares none.
DEFAULT_LR: float = 1e-3


@dataclass(frozen=True)
class ArchitectureSpec:
    """A named recurrent architecture, as returned by ``seqpipe_architectures``.

    Parameters
    ----------
    name : str
        The value users pass as ``architecture=``; unique across all plugins.
    build : callable
        ``build(config: BodyConfig) -> nn.Module`` following the body contract.
        Raise ``ValueError`` for a configuration the architecture cannot honour.
    description : str
        One line shown by ``seqpipe.list_architectures(details=True)``.
    onnx_lowering : OnnxLowering or None
        How the fitted body becomes ONNX (:class:`OnnxLowering`);
        :data:`seqpipe.architectures.NATIVE_RECURRENT` for bodies that offer
        ``onnx_recurrent_layers()``; ``None`` means the exporter's traced fallback
        (``torch.onnx.export`` of the body, then verification).
    test_params : tuple of dict
        Cheap estimator parameter sets (besides ``architecture``) that the shared
        conformance suite runs; at least one.
    default_lr : float or None
        The learning rate an estimator with ``lr="auto"`` (``LSTMClassifier``'s
        default) trains this architecture with; None means
        :data:`DEFAULT_LR` (1e-3, Adam's default, Kingma & Ba 2015). Declare the rate
        your architecture's paper or your measurements recommend.
    default_hidden_size : int or None
        The ``hidden_size`` an estimator with ``hidden_size="auto"``
        (``LSTMClassifier``'s default) builds this architecture with; None means
        :data:`DEFAULT_HIDDEN_SIZE` (32).

    Examples
    --------
    >>> from torch import nn
    >>> from seqpipe import ArchitectureSpec
    >>> spec = ArchitectureSpec(name="my_rnn", build=lambda config: nn.Identity())
    >>> spec.name
    'my_rnn'
    """

    name: str
    build: BodyBuilder
    description: str = ""
    onnx_lowering: OnnxLowering | None = None
    test_params: tuple[Mapping[str, Any], ...] = ({},)
    default_lr: float | None = None
    default_hidden_size: int | None = None

    def resolved_lr(self) -> float:
        """``default_lr``, or :data:`DEFAULT_LR` when the architecture declares none."""
        return DEFAULT_LR if self.default_lr is None else float(self.default_lr)

    def resolved_hidden_size(self, hidden_size: int | str = "auto") -> int:
        """An estimator's ``hidden_size``, with ``"auto"`` resolved for this architecture.

        Examples
        --------
        >>> from torch import nn
        >>> from seqpipe import ArchitectureSpec
        >>> spec = ArchitectureSpec("my_rnn", lambda config: nn.Identity(), default_hidden_size=8)
        >>> spec.resolved_hidden_size("auto"), spec.resolved_hidden_size(64)
        (8, 64)
        """
        if not isinstance(hidden_size, str):
            return int(hidden_size)
        if self.default_hidden_size is None:
            return DEFAULT_HIDDEN_SIZE
        return int(self.default_hidden_size)
