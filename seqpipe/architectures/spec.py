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
  the backward direction at step 0.

Padding must not change any sequence's result: a sequence predicted inside a
ragged batch gives the same numbers as the sequence predicted alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn


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
        ``architecture_options``.
    max_timesteps : int or None
        The longest training sequence (the padded training array's time axis);
        bodies that need a fixed length read it. ``None`` when unknown (a body
        built outside ``fit``).
    """

    input_size: int
    hidden_size: int = 32
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
    onnx_lowering : callable or None
        Writes the body's ONNX graph from its weights (see ``seqpipe.onnx``);
        ``None`` means export falls back to ``torch.onnx.export`` and verification.
    test_params : tuple of dict
        Cheap estimator parameter sets (besides ``architecture``) that the shared
        conformance suite runs; at least one.

    Examples
    --------
    >>> from torch import nn
    >>> from seqpipe import ArchitectureSpec
    >>> spec = ArchitectureSpec(name="my_rnn", build=lambda config: nn.Identity())
    >>> spec.name
    'my_rnn'
    """

    name: str
    build: Callable[[BodyConfig], nn.Module]
    description: str = ""
    onnx_lowering: Callable[..., Any] | None = None
    test_params: tuple[Mapping[str, Any], ...] = ({},)
