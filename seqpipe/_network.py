"""The trainable network: a registry-built recurrent body plus a generic head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

HEAD_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": nn.Identity}


class SequenceNetwork(nn.Module):
    """Body -> head. The head reads the body's summary (one output per sequence)
    or, with ``per_step=True``, its output at every step (many-to-many).

    ``head_layers`` adds Keras-style hidden ``Dense`` layers before the output layer.
    """

    def __init__(
        self,
        body: nn.Module,
        n_outputs: int,
        *,
        per_step: bool = False,
        head_layers: Sequence[int] = (),
        head_activation: str = "relu",
    ) -> None:
        super().__init__()
        self.body = body
        self.per_step = per_step
        layers: list[nn.Module] = []
        width = int(body.output_size)
        for units in head_layers:
            layers += [nn.Linear(width, int(units)), HEAD_ACTIVATIONS[head_activation]()]
            width = int(units)
        layers.append(nn.Linear(width, n_outputs))
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        sequence, summary = self.body(x, lengths)
        return self.head(sequence if self.per_step else summary)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The body's per-sequence summary: the features ``LSTMTransformer`` returns."""
        return self.body(x, lengths)[1]
