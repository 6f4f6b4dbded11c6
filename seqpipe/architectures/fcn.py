"""Built-in plugin: ``lstm_fcn`` and ``mlstm_fcn``, recurrent + fully convolutional bodies.

LSTM-FCN (Karim et al. 2017, "LSTM Fully Convolutional Networks for Time Series
Classification") and MLSTM-FCN (Karim et al. 2019, "Multivariate LSTM-FCNs for
Time Series Classification") run two branches side by side on the same input:

* an FCN branch: blocks of ``Conv1d`` ("same" length) -> BatchNorm -> ReLU, with
  filters 128/256/128 and kernels 8/5/3, then global average pooling over time.
  MLSTM-FCN adds a squeeze-and-excitation block (reduction 16) after every block
  but the last;
* a recurrent branch: an LSTM (``hidden_size`` cells, 8 with ``hidden_size="auto"``
  as in the authors' code; ``num_layers`` stacked)
  followed by dropout (0.8 in the papers). With the papers' *dimension shuffle*
  it reads the transposed input: each of the ``F`` variables is one step whose
  features are the whole series, so its input size is the longest sequence the
  model accepts (``max_timesteps``).

The body's ``summary`` is ``[recurrent summary, pooled conv features]`` and its
``output_size`` is ``hidden_size * num_directions + filters[-1]``. Its
``sequence_output`` (what per-step heads read) is, at every step,
``[recurrent output at that step, conv features at that step]``; with the
dimension shuffle the recurrent branch has no time axis, so its summary is
repeated at every step. Because the summary pools every valid step, it is not
the last step's output: the body says so with ``pooled_summary = True``.

Padding never changes a result: conv features are zeroed at padded steps after
every block (so the next "same" convolution sees zeros there, as for a sequence
alone), BatchNorm's training statistics and every average (pooling, SE) count
valid steps only, and the shuffled input is zero-padded to ``max_timesteps``
inside the body. A sequence longer than ``max_timesteps`` is a ``ValueError``.

Options (the estimator's ``architecture_options``; papers' defaults):

=====================  ====================  ==============================================
option                 default               what it does
=====================  ====================  ==============================================
``filters``            ``(128, 256, 128)``   output channels of each conv block (one block
                                             per entry)
``kernel_sizes``       ``(8, 5, 3)``         kernel of each block's convolution; "same"
                                             length, even kernels pad one step more on the
                                             right (as torch does)
``dimension_shuffle``  ``True``              the recurrent branch reads variables as steps
                                             and the series as features (``False``: it
                                             reads time steps, any length)
``max_timesteps``      ``None``              with the shuffle, the longest sequence
                                             accepted (the LSTM's input size); ``None``:
                                             the longest training sequence
``lstm_dropout``       ``0.8``               dropout on the recurrent branch's output
                                             (training only; one mask per sequence)
``recurrent``          ``"lstm"``            ``"lstm"`` or ``"gru"`` (GRU-FCN)
``squeeze_excitation`` ``False`` / ``True``  SE block after every conv block but the last
                                             (default on for ``mlstm_fcn`` only)
``se_reduction``       ``16``                SE bottleneck width: ``channels //
                                             se_reduction`` (at least 1)
=====================  ====================  ==============================================

``bidirectional=True`` is honoured without the shuffle (a bidirectional recurrent
branch over time) and refused with it. Only the default ``activation="tanh"``
and ``recurrent_activation="sigmoid"`` are supported. Both architectures export
as native ONNX (:data:`seqpipe.architectures.fcn_onnx.FCN_LOWERING`): BatchNorm folded
into the convolutions, a native ``LSTM``/``GRU`` node for the recurrent branch.

Registered through the same ``seqpipe_architectures`` hook as any external plugin.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqpipe.architectures.fcn_onnx import FCN_LOWERING
from seqpipe.architectures.spec import ArchitectureSpec, BodyConfig
from seqpipe.architectures.torch_rnn import TorchRecurrentBody
from seqpipe.hookspecs import hookimpl

__all__ = ["FCNBody", "FCNOptions", "MaskedBatchNorm1d", "SqueezeExcitation"]

#: Every option, with what it accepts: the text of "unknown option" errors.
OPTION_HELP: dict[str, str] = {
    "filters": "tuple of positive ints, channels per conv block (default (128, 256, 128))",
    "kernel_sizes": "tuple of positive ints, one kernel per block (default (8, 5, 3))",
    "dimension_shuffle": "bool, the LSTM reads variables as steps (default True)",
    "max_timesteps": "positive int or None, longest sequence with the shuffle (default: "
    "the longest training sequence)",
    "lstm_dropout": "float in [0, 1), dropout after the recurrent branch (default 0.8)",
    "recurrent": "'lstm' or 'gru' (default 'lstm')",
    "squeeze_excitation": "bool, SE blocks after all conv blocks but the last",
    "se_reduction": "positive int, SE bottleneck ratio (default 16)",
}
_RECURRENT = ("lstm", "gru")

#: The recurrent branch's width with ``hidden_size="auto"``: the default of the
#: authors' code, ``LSTM(8)`` (github.com/titu1994/LSTM-FCN, e.g.
#: ``OSU_Leaf_model.py``; their experiments also tried 64 and 128). Measured with
#: ``bench/ucr.py``: OSULeaf 0.919 with 32 cells, 0.971 with 8 (3 seeds); ArrowHead
#: 0.827 and 0.805 (6 seeds); PickupGestureWiimoteZ 0.833 and 0.813 (3 seeds, without
#: per-series scaling; see the README).
PAPER_LSTM_CELLS = 8


@dataclass(frozen=True)
class FCNOptions:
    """Validated ``architecture_options`` of ``lstm_fcn``/``mlstm_fcn`` (see module docs)."""

    filters: tuple[int, ...] = (128, 256, 128)
    kernel_sizes: tuple[int, ...] = (8, 5, 3)
    dimension_shuffle: bool = True
    max_timesteps: int | None = None
    lstm_dropout: float = 0.8
    recurrent: str = "lstm"
    squeeze_excitation: bool = False
    se_reduction: int = 16

    @classmethod
    def parse(cls, name: str, options: Any, *, squeeze_excitation: bool) -> FCNOptions:
        """Check ``options`` and fill in defaults; ``ValueError`` naming the valid options.

        Examples
        --------
        >>> from seqpipe.architectures.fcn import FCNOptions
        >>> FCNOptions.parse("lstm_fcn", {"filters": [8, 8, 8]}, squeeze_excitation=False).filters
        (8, 8, 8)
        """
        options = dict(options or {})
        unknown = sorted(set(options) - set(OPTION_HELP))
        valid = "; ".join(f"{key}: {text}" for key, text in OPTION_HELP.items())
        if unknown:
            raise ValueError(
                f"architecture {name!r} got unknown architecture_options {unknown}; "
                f"valid options are {valid}"
            )

        def bad(key: str) -> ValueError:
            return ValueError(
                f"architecture {name!r}: architecture_options[{key!r}] must be "
                f"{OPTION_HELP[key]}, got {options[key]!r}"
            )

        values: dict[str, Any] = {"squeeze_excitation": squeeze_excitation}
        for key in ("filters", "kernel_sizes"):
            if key in options:
                value = options[key]
                if (
                    not isinstance(value, (tuple, list))
                    or not value
                    or not all(_is_int(v) and v > 0 for v in value)
                ):
                    raise bad(key)
                values[key] = tuple(int(v) for v in value)
        for key in ("dimension_shuffle", "squeeze_excitation"):
            if key in options:
                if not isinstance(options[key], bool):
                    raise bad(key)
                values[key] = options[key]
        for key in ("se_reduction", "max_timesteps"):
            value = options.get(key)
            if value is None and key == "max_timesteps":
                continue  # None: the longest training sequence
            if key in options:
                if not (_is_int(value) and value > 0):
                    raise bad(key)
                values[key] = int(value)
        if "lstm_dropout" in options:
            value = options["lstm_dropout"]
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value < 1:
                raise bad("lstm_dropout")
            values["lstm_dropout"] = float(value)
        if "recurrent" in options:
            if options["recurrent"] not in _RECURRENT:
                raise bad("recurrent")
            values["recurrent"] = options["recurrent"]
        parsed = cls(**values)
        if len(parsed.filters) != len(parsed.kernel_sizes):
            raise ValueError(
                f"architecture {name!r}: filters {parsed.filters} and kernel_sizes "
                f"{parsed.kernel_sizes} need one entry per conv block each"
            )
        # An option that would be silently ignored is a mistake worth reporting.
        if "se_reduction" in options and not parsed.squeeze_excitation:
            raise ValueError(
                f"architecture {name!r}: se_reduction applies only with squeeze_excitation=True"
            )
        if options.get("max_timesteps") is not None and not parsed.dimension_shuffle:
            raise ValueError(
                f"architecture {name!r}: max_timesteps applies only with dimension_shuffle=True"
            )
        return parsed


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class MaskedBatchNorm1d(nn.Module):
    """``nn.BatchNorm1d`` over ``(batch, channels, time)`` that ignores padded steps.

    In training, mean and variance come from valid steps only (``mask`` is 1 there,
    0 at padding) and the running statistics are updated as ``nn.BatchNorm1d`` does
    (momentum 0.1, unbiased running variance); in eval mode the running statistics
    are used. Without a mask it *is* ``nn.BatchNorm1d``'s computation.

    Examples
    --------
    >>> import torch
    >>> from seqpipe.architectures.fcn import MaskedBatchNorm1d
    >>> norm = MaskedBatchNorm1d(2)
    >>> x = torch.randn(3, 2, 5)
    >>> padded = torch.cat([x, torch.full((3, 2, 4), 99.0)], dim=2)  # junk at padding
    >>> mask = (torch.arange(9) < 5).float().expand(3, 1, 9)
    >>> torch.allclose(norm(padded, mask)[..., :5], MaskedBatchNorm1d(2)(x))
    True
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or mask is None:
            if self.training:
                self.num_batches_tracked += 1
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias,
                self.training, self.momentum, self.eps,
            )  # fmt: skip
        count = mask.sum() * 1.0  # valid steps over the whole batch
        mean = (x * mask).sum(dim=(0, 2)) / count
        centered = (x - mean[:, None]) * mask
        var = (centered * centered).sum(dim=(0, 2)) / count
        with torch.no_grad():
            unbiased = var * (count / (count - 1).clamp(min=1))
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
            self.num_batches_tracked += 1
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (x - mean[:, None]) * scale[:, None] + self.bias[:, None]


def masked_mean(h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Average over time of ``(batch, channels, time)`` zeroed at padding: valid steps only."""
    if lengths is None:
        return h.mean(dim=2)
    return h.sum(dim=2) / lengths.to(h.dtype).unsqueeze(1)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation over time (Hu et al. 2018; as MLSTM-FCN uses it).

    Each channel is rescaled by ``sigmoid(W2 relu(W1 mean_t h))`` (no biases, as in
    the paper's code), the mean taken over valid steps only.
    """

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)  # tiny test models would get 0 units
        self.squeeze = nn.Linear(channels, hidden, bias=False)
        self.excite = nn.Linear(hidden, channels, bias=False)
        for layer in (self.squeeze, self.excite):
            nn.init.kaiming_normal_(layer.weight)  # the paper's he_normal

    def forward(self, h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        weights = torch.sigmoid(self.excite(torch.relu(self.squeeze(masked_mean(h, lengths)))))
        return h * weights.unsqueeze(2)


class ConvBlock(nn.Module):
    """Conv1d ("same" length) -> masked BatchNorm -> ReLU -> zero padding [-> SE]."""

    def __init__(self, channels_in: int, channels: int, kernel: int, se: int | None) -> None:
        super().__init__()
        # torch's "same" padding, written out: the odd step of an even kernel goes on
        # the right (as the ONNX Conv's pads); spelled out, torch does not warn about
        # the padded copy it makes either way.
        self.padding = ((kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2)
        # No bias: BatchNorm subtracts it again. With it, its true gradient is 0 and Adam
        # turns rounding noise into full-size steps that move the running mean.
        self.conv = nn.Conv1d(channels_in, channels, kernel, bias=False)
        nn.init.kaiming_uniform_(self.conv.weight, nonlinearity="relu")  # the paper's he_uniform
        self.norm = MaskedBatchNorm1d(channels)
        self.se = None if se is None else SqueezeExcitation(channels, se)

    def forward(
        self, h: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor | None
    ) -> torch.Tensor:
        h = torch.relu(self.norm(self.conv(F.pad(h, self.padding)), mask))
        if mask is not None:
            # Zero at padding, so the next "same" convolution sees what a sequence
            # alone sees past its end.
            h = h * mask
        return h if self.se is None else self.se(h, lengths)


class FCNBody(nn.Module):
    """The LSTM-FCN body (see the module docstring for its shape and options).

    Parameters
    ----------
    config : BodyConfig
        The estimator's hyperparameters; ``max_timesteps`` sizes the shuffle.
    options : FCNOptions
        Validated architecture options.
    name : str, default="lstm_fcn"
        Architecture name, for error messages.

    Attributes
    ----------
    output_size : int
        ``hidden_size * num_directions + filters[-1]``.
    max_timesteps : int or None
        Longest sequence accepted (the shuffled LSTM's input size); ``None`` without
        the shuffle (any length).
    pooled_summary : bool
        Always True: the summary pools every valid step, so it is not the last
        step's output (the conformance kit checks the rest of the contract).

    Examples
    --------
    >>> import torch
    >>> from seqpipe import BodyConfig
    >>> from seqpipe.architectures.fcn import FCNBody, FCNOptions
    >>> config = BodyConfig(input_size=2, hidden_size=4, max_timesteps=10)
    >>> body = FCNBody(config, FCNOptions(filters=(8, 8, 8))).eval()
    >>> sequence, summary = body(torch.randn(3, 10, 2), torch.tensor([10, 4, 7]))
    >>> tuple(sequence.shape), tuple(summary.shape), body.max_timesteps
    ((3, 10, 12), (3, 12), 10)
    """

    pooled_summary = True

    def __init__(self, config: BodyConfig, options: FCNOptions, name: str = "lstm_fcn") -> None:
        super().__init__()
        self.name = name
        self.dimension_shuffle = options.dimension_shuffle
        self.max_timesteps = _max_timesteps(name, config, options)
        se = options.se_reduction if options.squeeze_excitation else None
        channels = (config.input_size, *options.filters)
        last = len(options.filters) - 1
        self.blocks = nn.ModuleList(
            ConvBlock(channels[i], channels[i + 1], kernel, None if i == last else se)
            for i, kernel in enumerate(options.kernel_sizes)
        )
        recurrent_config = replace(
            config,
            input_size=self.max_timesteps if self.dimension_shuffle else config.input_size,
            options={},
        )
        self.recurrent = TorchRecurrentBody(options.recurrent, recurrent_config)
        self.lstm_dropout = options.lstm_dropout
        self.output_size = int(self.recurrent.output_size + options.filters[-1])

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        time = x.shape[1]
        mask = None
        if lengths is not None:
            lengths = lengths.to(x.device)
            mask = (torch.arange(time, device=x.device) < lengths.unsqueeze(1)).unsqueeze(1)
            mask = mask.to(x.dtype)  # (batch, 1, time)
        h = x.transpose(1, 2)
        for block in self.blocks:
            h = block(h, mask, lengths)
        pooled = masked_mean(h, lengths)
        if self.dimension_shuffle:
            summary = self._shuffled_summary(x, lengths)
            steps = summary.unsqueeze(1).expand(-1, time, -1)
        else:
            steps, summary = self.recurrent(x, lengths)
        if self.training and self.lstm_dropout > 0:
            # One mask per sequence, shared by every step and the summary: the summary
            # drops the units its steps drop, and the random draw does not depend on
            # the padded length (so padding cannot change training).
            keep = torch.full_like(summary, 1.0 - self.lstm_dropout).bernoulli_()
            keep = keep / (1.0 - self.lstm_dropout)
            steps, summary = steps * keep.unsqueeze(1), summary * keep
        return torch.cat([steps, h.transpose(1, 2)], dim=2), torch.cat([summary, pooled], dim=1)

    def _shuffled_summary(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The recurrent branch reading variables as steps: ``(batch, hidden * dirs)``."""
        limit = int(self.max_timesteps)  # type: ignore[arg-type]
        time = x.shape[1]
        longest = time if lengths is None else int(lengths.max())
        if longest > limit:
            raise ValueError(
                f"architecture {self.name!r} with dimension_shuffle=True reads a whole series "
                f"as one LSTM input of max_timesteps={limit} values (by default the longest "
                f"training sequence), but got a sequence of {longest} steps; fit on sequences "
                "that long, raise architecture_options['max_timesteps'], or set "
                "architecture_options['dimension_shuffle']=False, which has no length limit"
            )
        # (batch, F, time), zero-padded (or cut, past every valid step) to the fixed width:
        # the zeros a sequence alone gets, so ragged batches change nothing.
        variables = x.transpose(1, 2)
        if time <= limit:
            variables = F.pad(variables, (0, limit - time))
        else:
            variables = variables[..., :limit]
        return self.recurrent(variables, None)[1]


def _max_timesteps(name: str, config: BodyConfig, options: FCNOptions) -> int | None:
    if not options.dimension_shuffle:
        return None
    trained, asked = config.max_timesteps, options.max_timesteps
    if asked is None and trained is None:
        raise ValueError(
            f"architecture {name!r} with dimension_shuffle=True needs the sequence length "
            "when it is built, but BodyConfig.max_timesteps is None (a body built outside "
            "fit); pass architecture_options['max_timesteps'] or dimension_shuffle=False"
        )
    if asked is not None and trained is not None and asked < trained:
        raise ValueError(
            f"architecture {name!r}: architecture_options['max_timesteps']={asked} is shorter "
            f"than the longest training sequence ({trained} steps)"
        )
    return int(asked if asked is not None else trained)  # type: ignore[arg-type]


def _builder(name: str, *, squeeze_excitation: bool) -> Any:
    def build(config: BodyConfig) -> nn.Module:
        options = FCNOptions.parse(name, config.options, squeeze_excitation=squeeze_excitation)
        for knob, value, default in (
            ("activation", config.activation, "tanh"),
            ("recurrent_activation", config.recurrent_activation, "sigmoid"),
        ):
            if value != default:
                raise ValueError(
                    f"architecture {name!r} supports only {knob}={default!r} (the recurrent "
                    f"branch runs on torch.nn.LSTM/GRU), got {value!r}"
                )
        if config.bidirectional and options.dimension_shuffle:
            raise ValueError(
                f"architecture {name!r}: bidirectional=True needs dimension_shuffle=False; "
                "with the shuffle the LSTM reads the variables as steps, whose order has no "
                "direction to reverse"
            )
        return FCNBody(config, options, name)

    build.__name__ = f"build_{name}"
    return build


#: Cheap sets for the shared suites. Tiny filters; ``max_timesteps`` above the
#: suites' longest predict length (17), since they predict longer than they train.
_TINY = (8, 8, 8)
LSTM_FCN_TEST_PARAMS: tuple[dict, ...] = (
    {"hidden_size": 4, "architecture_options": {"filters": _TINY, "max_timesteps": 20}},
    {
        "hidden_size": 4,
        "num_layers": 2,
        "architecture_options": {"filters": _TINY, "dimension_shuffle": False, "recurrent": "gru"},
    },
)
MLSTM_FCN_TEST_PARAMS: tuple[dict, ...] = (
    {
        "hidden_size": 4,
        "architecture_options": {"filters": _TINY, "se_reduction": 4, "max_timesteps": 20},
    },
    {
        "hidden_size": 4,
        "bidirectional": True,
        "architecture_options": {"filters": (8, 16, 8), "dimension_shuffle": False},
    },
)


@hookimpl
def seqpipe_architectures() -> list[ArchitectureSpec]:
    return [
        ArchitectureSpec(
            name="lstm_fcn",
            build=_builder("lstm_fcn", squeeze_excitation=False),
            description="LSTM-FCN (Karim et al. 2017): LSTM branch + 3 conv blocks, pooled",
            onnx_lowering=FCN_LOWERING,
            test_params=LSTM_FCN_TEST_PARAMS,
            default_lr=1e-3,  # the papers' Adam rate (Karim et al. 2017, 2019)
            default_hidden_size=PAPER_LSTM_CELLS,
        ),
        ArchitectureSpec(
            name="mlstm_fcn",
            build=_builder("mlstm_fcn", squeeze_excitation=True),
            description="MLSTM-FCN (Karim et al. 2019): LSTM-FCN with squeeze-and-excitation",
            onnx_lowering=FCN_LOWERING,
            test_params=MLSTM_FCN_TEST_PARAMS,
            default_lr=1e-3,  # the papers' Adam rate (Karim et al. 2017, 2019)
            default_hidden_size=PAPER_LSTM_CELLS,
        ),
    ]
