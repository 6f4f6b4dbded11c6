"""Helpers that let a body honour the padding rules of the body contract."""

from __future__ import annotations

import torch


def last_valid(outputs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Output at each sequence's last valid step: ``(batch, time, d) -> (batch, d)``."""
    if lengths is None:
        return outputs[:, -1]
    index = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
    return outputs.gather(1, index).squeeze(1)


def summarize(
    outputs: torch.Tensor, lengths: torch.Tensor | None, hidden_size: int, bidirectional: bool
) -> torch.Tensor:
    """The contract's ``summary`` from a layer's per-step outputs.

    Causal: last valid step. Bidirectional (forward half first, as torch lays it
    out): forward half at the last valid step, backward half at step 0.
    """
    if not bidirectional:
        return last_valid(outputs, lengths)
    forward = last_valid(outputs[..., :hidden_size], lengths)
    return torch.cat([forward, outputs[:, 0, hidden_size:]], dim=-1)


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence within its own length, leaving padding where it is.

    Used by hand-written bidirectional layers: run the forward recurrence on the
    reversed batch, then reverse the outputs back the same way.
    """
    if lengths is None:
        return x.flip(1)
    time = x.shape[1]
    steps = torch.arange(time, device=x.device).unsqueeze(0)
    lens = lengths.to(x.device).unsqueeze(1)
    index = torch.where(steps < lens, lens - 1 - steps, steps)
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
