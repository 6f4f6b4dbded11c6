"""Where tensors live: device resolution and CPU copies (torch only, no seqpipe imports).

The estimators and the exporter both need these; keeping them here lets the
exporter use them without importing the estimators' base class.
"""

from __future__ import annotations

import copy

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; an unavailable CUDA is an error.

    Raises
    ------
    ValueError
        If CUDA is requested but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; use 'cpu' or 'auto'"
        )
    return resolved


def copy_to_cpu(module: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``module`` on the CPU (the original stays where it is)."""
    return copy.deepcopy(module).to("cpu")
