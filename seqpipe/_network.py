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


class Seq2SeqNetwork(nn.Module):
    """Encoder-decoder: any registered body encodes the input sequence; its final
    state initialises an LSTM decoder that emits ``horizon`` steps of ``n_targets``.

    The decoder's initial hidden state is the encoder's summary (its final hidden
    state; both directions when bidirectional) and its initial cell state a learned
    projection of it, since not every architecture has a cell state. Like Keras'
    ``RepeatVector`` design, the decoder reads the encoder summary at every step,
    which keeps the graph free of output feedback and so exportable as native ONNX
    nodes.
    """

    def __init__(self, body: nn.Module, horizon: int, n_targets: int) -> None:
        super().__init__()
        self.body = body
        self.horizon = horizon
        self.n_targets = n_targets
        width = int(body.output_size)
        self.cell_bridge = nn.Linear(width, width)
        self.decoder = nn.LSTM(width, width, batch_first=True)
        self.head = nn.Linear(width, n_targets)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        summary = self.body(x, lengths)[1]
        h0 = summary.unsqueeze(0).contiguous()
        c0 = self.cell_bridge(summary).unsqueeze(0).contiguous()
        steps = summary.unsqueeze(1).expand(-1, self.horizon, -1)
        decoded, _ = self.decoder(steps, (h0, c0))
        return self.head(decoded).flatten(1)  # (batch, horizon * n_targets)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(x, lengths)[1]
