"""The training loop: in-memory tensors, index batches, one host sync per epoch.

Deliberately no DataLoader: for data already in memory its per-batch collation
costs more than the small recurrent models we train. Losses are accumulated on the
device and read once per epoch, so the loop does not stall the GPU per batch.

Inputs too large to hold as one more float32 copy (:data:`IN_MEMORY_BYTES`) stay
what the user passed, windows that are views into a series included, and each
batch's network inputs are computed when it is drawn (:class:`LazyInputs`):
training memory is the input plus what a batch needs.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from seqpipe._chunks import row_slices
from seqpipe.callbacks import Callback, StopTraining

#: Network inputs up to this size (float32 bytes) are computed once and kept as one
#: tensor on the device, the fastest to draw batches from (no transfer per batch on
#: a GPU); larger ones are computed batch by batch from the user's array.
IN_MEMORY_BYTES = 32 * 2**20

#: ``loss_fn(output, target, mask, weight)``: the batch's mean loss (weighted by
#: ``weight``, one non-negative value per sample, when it is not None).
LossFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None], torch.Tensor
]


class LazyInputs:
    """The network's float32 inputs, computed from the rows of ``X`` when they are read.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_timesteps, n_features)
        Validated sequences in any float dtype, padding NaN; may be a strided view
        (windows from :func:`seqpipe.preprocessing.make_windows`). Never written to.
    transform : callable
        Rows of ``X`` to the network's float32 inputs, row by row (the
        estimators' local scaling, standardization and padding to 0), so any
        subset of rows gives what the whole array would.
    device : torch.device, default=cpu
        Where :meth:`tensor` puts the result.
    rows : slice or ndarray of int, default=all rows
        The rows of ``X`` this object stands for.
    """

    def __init__(
        self,
        X: np.ndarray,
        transform: Callable[[np.ndarray], np.ndarray],
        device: torch.device | str = "cpu",
        rows: slice | np.ndarray | None = None,
    ) -> None:
        self.X, self.transform, self.device = X, transform, torch.device(device)
        self.rows = slice(0, len(X)) if rows is None else rows

    def __len__(self) -> int:
        rows = self.rows
        return len(range(*rows.indices(len(self.X)))) if isinstance(rows, slice) else len(rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.X.shape[1:])

    @property
    def nbytes(self) -> int:
        """Bytes of the float32 inputs these rows stand for."""
        return 4 * math.prod(self.shape)

    def to(self, device: torch.device) -> LazyInputs:
        return LazyInputs(self.X, self.transform, device, self.rows)

    def __getitem__(self, index: torch.Tensor | np.ndarray | slice) -> LazyInputs:
        """The rows ``index`` of these rows, still not computed."""
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        rows = self.rows
        if isinstance(rows, slice) and rows.step in (None, 1):
            # Batches of a contiguous split: offsets, never an index of all rows.
            if isinstance(index, slice):
                start, stop, step = index.indices(len(self))
                return self._with(slice(rows.start + start, rows.start + stop, step))
            return self._with(rows.start + np.asarray(index, dtype=np.int64))
        if isinstance(rows, slice):  # a strided split, which fit never makes
            return self._with(np.arange(len(self.X))[rows][index])
        return self._with(rows[index])

    def _with(self, rows: slice | np.ndarray) -> LazyInputs:
        return LazyInputs(self.X, self.transform, self.device, rows)

    def numpy(self) -> np.ndarray:
        """The float32 inputs of these rows, computed one chunk at a time."""
        out = np.empty(self.shape, dtype=np.float32)
        rows = self.rows
        for chunk in row_slices(out.shape):
            if isinstance(rows, slice):
                start, _, step = rows.indices(len(self.X))
                part = self.X[start + chunk.start * step : start + chunk.stop * step : step]
            else:
                part = self.X[rows[chunk]]
            out[chunk] = self.transform(part)
        return out

    def tensor(self) -> torch.Tensor:
        """These rows' inputs as one tensor on ``device``, filled a chunk at a time
        (on a GPU: host memory for one chunk, never a host copy of all of them)."""
        if self.device.type == "cpu":
            return torch.from_numpy(self.numpy())
        out = torch.empty(self.shape, dtype=torch.float32, device=self.device)
        for chunk in row_slices(self.shape):
            out[chunk] = torch.from_numpy(self[chunk].numpy()).to(self.device)
        return out


def batch_source(inputs: LazyInputs) -> torch.Tensor | LazyInputs:
    """What the training loop draws batches from: one tensor on the device, or on
    the CPU above :data:`IN_MEMORY_BYTES` the lazy inputs, computed per batch.

    A GPU always gets one tensor (filled chunk by chunk): recomputing each batch on
    the host every epoch, plus a transfer and a sync per batch, would leave it
    waiting on the CPU; device memory holds the float32 inputs.
    """
    if inputs.device.type == "cpu" and inputs.nbytes > IN_MEMORY_BYTES:
        return inputs
    return inputs.tensor()


def as_tensor(X: torch.Tensor | LazyInputs) -> torch.Tensor:
    """Inputs ready for the network: computed now if they are lazy."""
    return X.tensor() if isinstance(X, LazyInputs) else X


@dataclass
class TensorData:
    """Inputs (a tensor, or :class:`LazyInputs` computed per batch), targets,
    lengths (CPU, or None), per-step mask (or None) and per-sample weights (or
    None: every sample counts once)."""

    X: torch.Tensor | LazyInputs
    y: torch.Tensor
    lengths: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    weight: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.X.shape[0]

    def take(self, index: torch.Tensor | slice) -> TensorData:
        lengths = None if self.lengths is None else self.lengths[_cpu(index)]
        mask = None if self.mask is None else self.mask[index]
        weight = None if self.weight is None else self.weight[index]
        return TensorData(self.X[index], self.y[index], lengths, mask, weight)

    def total_weight(self) -> torch.Tensor | int:
        """What the mean loss of these samples is normalized by: their count, or the
        sum of their weights (a device tensor: no host sync)."""
        return len(self) if self.weight is None else self.weight.sum()


def network_batch(batch: TensorData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A batch's network inputs, targets and step mask, cut after its longest sequence.

    Every row of a ragged data set is padded to the longest sequence of the whole
    set; by the padding contract (padded steps change no sequence's result, checked
    for every architecture by the shared suite and the conformance kit) the steps
    after the batch's own longest sequence change nothing but the time they take.
    On PLAID (lengths 100 to 1344, median 300) random batches of 8 hold 2.5x fewer
    steps cut than padded. Per-step targets and their mask (same time axis as the
    inputs) are cut with them; the batch's order and composition stay the same.
    """
    X = as_tensor(batch.X)
    y, mask = batch.y, batch.mask
    if batch.lengths is not None and len(batch.lengths):
        longest = int(batch.lengths.max())  # lengths live on the CPU: no device sync
        if 0 < longest < X.shape[1]:
            X = X[:, :longest].contiguous()
            if mask is not None:
                y, mask = y[:, :longest], mask[:, :longest]
    return X, y, mask


def _cpu(index: torch.Tensor | slice) -> torch.Tensor | slice:
    return index.cpu() if isinstance(index, torch.Tensor) else index


def mse_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error over outputs (and valid steps), weighted per sample.

    With ``weight``: ``sum(w_i * l_i) / sum(w_i)`` over the batch, where a sample of
    per-step targets contributes each valid step with its weight, so a weight of 2
    is exactly a duplicated sample and a weight of 0 a dropped one.
    """
    if weight is None:
        if mask is None:
            return nn.functional.mse_loss(output, target)
        # Per-step targets of ragged batches: average over valid steps only.
        squared = (output - target).square() * mask.unsqueeze(-1)
        return squared.sum() / (mask.sum() * output.shape[-1]).clamp_min(1)
    squared = (output - target).square()
    if mask is None:
        per_sample = squared.reshape(len(squared), -1).mean(dim=1)
        return (per_sample * weight).sum() / weight.sum()
    step_weight = mask * weight.unsqueeze(-1)
    weighted = squared * step_weight.unsqueeze(-1)
    return weighted.sum() / (step_weight.sum() * output.shape[-1])


def cross_entropy_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy, averaged over the batch (``sum(w_i * l_i) / sum(w_i)`` with weights)."""
    if weight is None:
        return nn.functional.cross_entropy(output, target)
    losses = nn.functional.cross_entropy(output, target, reduction="none")
    return (losses * weight).sum() / weight.sum()


#: The values of the estimators' ``lr_schedule`` parameter.
LR_SCHEDULES = ("plateau", "cosine")

#: The values of the estimators' ``precision`` parameter (Lightning's names): the
#: dtype the training forward pass computes in under ``torch.autocast``, None for
#: float32 throughout.
PRECISIONS: dict[str, torch.dtype | None] = {"32": None, "bf16-mixed": torch.bfloat16}


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a mixed precision the device cannot run.

    Raises
    ------
    ValueError
        ``"bf16-mixed"`` on a CUDA device without bfloat16 (before Ampere).
    """
    # Compute capability 8 (Ampere) brought bfloat16 tensor cores; before it torch
    # emulates bfloat16 (is_bf16_supported() says True by default), slower than float32.
    if precision == "bf16-mixed" and device.type == "cuda":
        if torch.cuda.get_device_capability(device)[0] < 8:
            raise ValueError(
                f"precision='bf16-mixed' needs a GPU with bfloat16 (NVIDIA Ampere or "
                f"newer), but {torch.cuda.get_device_name(device)} has none; use "
                f"precision='32'"
            )


@dataclass
class LoopSettings:
    epochs: int
    batch_size: int
    shuffle: bool
    clip_grad_norm: float | None
    lr_schedule: str | None = None
    #: Early stopping's patience, which the plateau schedule stays below (or None).
    stop_patience: int | None = None
    #: What the user could change, appended to a non-finite loss error.
    non_finite_hint: str = ""
    #: ``precision``: a key of :data:`PRECISIONS`.
    precision: str = "32"


class NonFiniteLossError(ValueError):
    """Training produced a NaN or infinite loss (or weights), so ``fit`` stopped.

    A ``ValueError``, as scikit-learn's ``MLPRegressor`` raises for the same problem.
    The estimator is left as it was before that ``fit``.
    """


def make_scheduler(
    name: str | None,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    stop_patience: int | None = None,
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """torch's scheduler for ``lr_schedule``, stepped once per epoch.

    ``"plateau"``: ``ReduceLROnPlateau`` on the epoch's loss (validation loss when
    there is a validation split), halving the learning rate after ``max(5, epochs //
    20)`` epochs without improvement (at most half of early stopping's
    ``stop_patience``, so the rate drops before training stops), down to 1/100 of the
    initial rate (the LSTM-FCN papers train this way, with a slower decay over 2000
    epochs). ``"cosine"``: ``CosineAnnealingLR`` from the initial rate to 0 over
    ``epochs``. The optimizer's rates are its initial ones (``fit`` resets them).
    """
    if name is None:
        return None
    schedulers = torch.optim.lr_scheduler
    if name == "plateau":
        patience = max(5, epochs // 20)
        if stop_patience is not None:
            patience = min(patience, max(1, stop_patience // 2))
        floors = [group["lr"] * 1e-2 for group in optimizer.param_groups]
        return schedulers.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.5, patience=patience, min_lr=floors
        )
    if name == "cosine":
        return schedulers.CosineAnnealingLR(optimizer, T_max=epochs)
    raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)} or None, got {name!r}")


def _evaluate(module: nn.Module, data: TensorData, loss_fn: LossFn, batch_size: int) -> float:
    module.eval()
    total = torch.zeros((), device=data.X.device)
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = data.take(slice(start, start + batch_size))
            inputs, target, mask = network_batch(batch)
            output = module(inputs, batch.lengths)
            loss = loss_fn(output, target, mask, batch.weight)
            total += loss * batch.total_weight()
    return float(total) / float(data.total_weight())


def train_epochs(
    estimator: Any,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train: TensorData,
    valid: TensorData | None,
    settings: LoopSettings,
    generator: torch.Generator,
    history: list[dict[str, float]],
    callbacks: Sequence[Callback] = (),
) -> None:
    """Run the epochs, appending one record per epoch to ``history``.

    ``callbacks`` (see :mod:`seqpipe.callbacks`) are called with ``estimator`` once
    before the first epoch, after each epoch and after the last; any of them may end
    training after an epoch. Nothing runs per batch but the training step itself.

    Raises
    ------
    NonFiniteLossError
        When an epoch's training or validation loss, or a weight after the last
        epoch, is NaN or infinite.
    """
    n = len(train)
    # The epoch's loss is the (weighted) mean over all its samples.
    train_total = float(train.total_weight())
    batch_size = min(settings.batch_size, n)
    first_epoch = len(history) + 1
    scheduler = make_scheduler(
        settings.lr_schedule, optimizer, settings.epochs, settings.stop_patience
    )
    # Mixed precision: only the forward pass runs under autocast (its matmuls and
    # convolutions in bfloat16, reductions in float32); the loss, the gradients'
    # clipping and the optimizer step stay float32, as do the weights (PyTorch's
    # automatic mixed precision recipe). bfloat16 has float32's range, so no loss
    # scaling is needed.
    # float32: no autocast context at all (one the caller set up stays in force). One
    # context object serves every batch: both kinds can be entered again after exit.
    low = PRECISIONS[settings.precision]
    forward_precision = (
        contextlib.nullcontext() if low is None else torch.autocast(train.X.device.type, dtype=low)
    )
    for callback in callbacks:
        callback.on_train_begin(estimator)
    for epoch in range(first_epoch, first_epoch + settings.epochs):
        started = time.perf_counter()
        module.train()
        order = (
            torch.randperm(n, generator=generator).to(train.X.device) if settings.shuffle else None
        )
        total = torch.zeros((), device=train.X.device)
        for start in range(0, n, batch_size):
            index = (
                order[start : start + batch_size]
                if order is not None
                else slice(start, start + batch_size)
            )
            batch = train.take(index)
            optimizer.zero_grad(set_to_none=True)
            inputs, target, mask = network_batch(batch)
            with forward_precision:
                output = module(inputs, batch.lengths)
            loss = loss_fn(output.float(), target, mask, batch.weight)
            loss.backward()
            if settings.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(module.parameters(), settings.clip_grad_norm)
            optimizer.step()
            total += loss.detach() * batch.total_weight()
        # One NaN batch makes the sum NaN: checking once per epoch sees every batch.
        record = {
            "epoch": epoch,
            "train_loss": _finite(float(total) / train_total, "training", epoch, settings),
        }
        if valid is not None:
            valid_loss = _evaluate(module, valid, loss_fn, max(batch_size, 1024))
            record["valid_loss"] = _finite(valid_loss, "validation", epoch, settings)
        record["lr"] = optimizer.param_groups[0]["lr"]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(record.get("valid_loss", record["train_loss"]))
        elif scheduler is not None:
            scheduler.step()
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        if callbacks and _should_stop(callbacks, estimator, record):
            break
    # The last optimizer step comes after the last loss was measured.
    for name, value in module.state_dict().items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise NonFiniteLossError(
                f"training left a non-finite weight ({name}) after epoch {history[-1]['epoch']}"
                f"{settings.non_finite_hint}"
            )
    module.eval()
    for callback in callbacks:
        callback.on_train_end(estimator)


def _finite(value: float, which: str, epoch: int, settings: LoopSettings) -> float:
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"the {which} loss became {value} at epoch {epoch}{settings.non_finite_hint}"
        )
    return value


def _should_stop(callbacks: Sequence[Callback], estimator: Any, record: dict[str, float]) -> bool:
    """Every callback sees the epoch; True if any asked to stop."""
    stop = False
    for callback in callbacks:
        try:
            stop = bool(callback.on_epoch_end(estimator, record)) or stop
        except StopTraining:
            stop = True
    return stop
