"""The temporal convolutional network body (Bai, Kolter & Koltun, 2018).

A stack of residual blocks, each two dilated *causal* ``Conv1d`` layers with ReLU
and dropout, the dilation doubling from one block to the next (1, 2, 4, ...).
Causal means step ``t`` only sees steps ``<= t``: the input is padded on the left
only. That is what makes the body honour seqpipe's body contract for free: zeros
after a sequence's end can never reach its earlier steps, so a sequence gives the
same numbers inside a ragged batch as alone, and its summary is simply the output
at its last valid step.
"""

from __future__ import annotations

from typing import Any

import torch
from seqpipe import BodyConfig
from seqpipe.architectures import activation_name, check_options, last_valid
from torch import nn
from torch.nn import functional as F

#: Options accepted through ``architecture_options`` and their defaults.
DEFAULT_OPTIONS: dict[str, Any] = {"kernel_size": 3}

#: The estimators' defaults, which mean "the architecture's own choice" here: a TCN
#: has no gates and always uses ReLU, as in the paper.
_DEFAULT_ACTIVATION = "tanh"
_DEFAULT_RECURRENT_ACTIVATION = "sigmoid"


class TemporalBlock(nn.Module):
    """One residual block: two dilated causal convolutions, ReLU, dropout, skip.

    Works on channels-first tensors ``(batch, channels, time)`` like ``Conv1d``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out; a 1x1 convolution matches the skip path when they differ.
    kernel_size : int
        Taps of each convolution.
    dilation : int
        Spacing between taps.
    dropout : float
        Dropout after each convolution's ReLU.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float
    ) -> None:
        super().__init__()
        # Left padding of (k - 1) * d keeps the length and makes the convolution causal.
        self.left_padding = (kernel_size - 1) * dilation
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size, dilation=dilation)
        self.dropout = nn.Dropout(dropout)
        self.skip = (
            nn.Conv1d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(F.relu(self.conv1(F.pad(x, (self.left_padding, 0)))))
        out = self.dropout(F.relu(self.conv2(F.pad(out, (self.left_padding, 0)))))
        return F.relu(out + self.skip(x))


class TCNBody(nn.Module):
    """A TCN behind seqpipe's body contract.

    ``hidden_size`` is the number of channels of every block, ``num_layers`` the
    number of residual blocks (block ``i`` has dilation ``2**i``), ``dropout`` the
    dropout inside every block (the paper's placement), and
    ``options["kernel_size"]`` the taps per convolution (default 3).

    Parameters
    ----------
    config : seqpipe.BodyConfig
        Must be unidirectional with default activations (see :func:`check_config`).

    Attributes
    ----------
    output_size : int
        Features per step of both outputs: ``hidden_size``.
    receptive_field : int
        How many steps back the last output can see:
        ``1 + 2 * (kernel_size - 1) * (2**num_layers - 1)``.

    Examples
    --------
    >>> import torch
    >>> from seqpipe import BodyConfig
    >>> from seqpipe_tcn.body import TCNBody
    >>> body = TCNBody(BodyConfig(input_size=2, hidden_size=4, num_layers=2))
    >>> sequence, summary = body(torch.zeros(3, 10, 2), torch.tensor([10, 4, 1]))
    >>> tuple(sequence.shape), tuple(summary.shape), body.receptive_field
    ((3, 10, 4), (3, 4), 13)
    """

    def __init__(self, config: BodyConfig) -> None:
        super().__init__()
        options = check_config(config)
        kernel_size = options["kernel_size"]
        blocks = []
        for index in range(config.num_layers):
            in_channels = config.input_size if index == 0 else config.hidden_size
            blocks.append(
                TemporalBlock(
                    in_channels, config.hidden_size, kernel_size, 2**index, config.dropout
                )
            )
        self.blocks = nn.Sequential(*blocks)
        self.output_size = config.hidden_size
        self.kernel_size = kernel_size
        self.receptive_field = 1 + 2 * (kernel_size - 1) * (2**config.num_layers - 1)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sequence = self.blocks(x.transpose(1, 2)).transpose(1, 2)
        return sequence, last_valid(sequence, lengths)


def check_config(config: BodyConfig) -> dict[str, Any]:
    """Refuse what a causal TCN cannot honour; return the options with defaults filled in.

    Raises
    ------
    ValueError
        For ``bidirectional=True``, a non-default activation, an unknown option or a
        bad ``kernel_size``; the message says what is supported.
    """
    if config.bidirectional:
        raise ValueError(
            "architecture 'tcn' is causal and supports bidirectional=False only; "
            "use 'lstm' or 'gru' for a bidirectional model"
        )
    activation = activation_name(config.activation)
    if activation not in (_DEFAULT_ACTIVATION, "relu"):
        raise ValueError(
            "architecture 'tcn' always uses ReLU (Bai et al., 2018): activation must be "
            f"'relu' or the default {_DEFAULT_ACTIVATION!r}, got {config.activation!r}"
        )
    if activation_name(config.recurrent_activation) != _DEFAULT_RECURRENT_ACTIVATION:
        raise ValueError(
            "architecture 'tcn' has no gates: recurrent_activation must stay at its default "
            f"{_DEFAULT_RECURRENT_ACTIVATION!r}, got {config.recurrent_activation!r}"
        )
    # seqpipe's helper: unknown keys and wrong types get the message every
    # architecture gives.
    options = check_options("tcn", config.options, DEFAULT_OPTIONS)
    if options["kernel_size"] < 1:
        raise ValueError(
            f"architecture 'tcn': option kernel_size must be an integer >= 1, "
            f"got {options['kernel_size']!r}"
        )
    return options
