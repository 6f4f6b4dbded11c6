"""Callbacks: code that runs when training starts, after every epoch, and when it ends.

The protocol is Keras' and skorch's, trimmed to three hooks. A callback subclasses
:class:`Callback` and overrides what it needs; each hook gets the estimator being
fitted, whose ``module_``, ``optimizer_`` and ``history_`` are live:

* ``on_train_begin(estimator)``: before the first epoch of a ``fit``;
* ``on_epoch_end(estimator, record) -> bool | None``: after each epoch, with the
  epoch's record (the dict appended to ``history_``: ``epoch``, ``train_loss``,
  ``valid_loss`` with a validation split, ``lr``, ``seconds``). Returning ``True``
  or raising :class:`StopTraining` ends training after this epoch (the other
  callbacks still see the epoch);
* ``on_train_end(estimator)``: after the last epoch of a ``fit`` that did not fail.

Callbacks run once per epoch, never per batch, so they cost no time in the inner
loop. The estimator's ``callbacks`` parameter holds instances as specs: ``fit``
works on clones (:func:`sklearn.base.clone`, a deep copy for a plain object) and
keeps them as ``callbacks_``, so the instances you passed are never changed and
``clone``/``GridSearchCV`` copy them like any other parameter.

Two built-ins: :class:`EarlyStopping`, which the estimators' ``validation_fraction``
and ``patience`` build, and :class:`ProgressBar` (tqdm), which ``verbose`` builds.

Examples
--------
>>> import numpy as np
>>> from seqpipe import LSTMRegressor
>>> from seqpipe.callbacks import Callback
>>> class StopBelow(Callback):
...     def __init__(self, loss):
...         self.loss = loss
...     def on_epoch_end(self, estimator, record):
...         return record["train_loss"] < self.loss
>>> X = np.random.default_rng(0).normal(size=(20, 4, 1))
>>> model = LSTMRegressor(hidden_size=4, epochs=50, callbacks=[StopBelow(10.0)])
>>> model.fit(X, X.sum(axis=(1, 2))).n_epochs_
1
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

from tqdm import tqdm

__all__ = ["Callback", "EarlyStopping", "ProgressBar", "StopTraining"]


class StopTraining(Exception):
    """Raised by a callback's ``on_epoch_end`` to end training after this epoch."""


class Callback:
    """Base class of training callbacks; every hook does nothing unless overridden."""

    def on_train_begin(self, estimator: Any) -> None:
        """Called before the first epoch of each ``fit``."""

    def on_epoch_end(self, estimator: Any, record: dict[str, float]) -> bool | None:
        """Called after each epoch; return True (or raise StopTraining) to stop."""
        return None

    def on_train_end(self, estimator: Any) -> None:
        """Called after the last epoch of a ``fit`` that did not fail."""

    def __repr__(self) -> str:
        params = ", ".join(
            f"{k}={v!r}"
            for k, v in vars(self).items()
            if not (k.startswith("_") or k.endswith("_"))
        )
        return f"{type(self).__name__}({params})"


class EarlyStopping(Callback):
    """Stop when a monitored loss stops improving, and restore the best weights.

    What ``validation_fraction > 0`` with ``patience`` builds; pass one in
    ``callbacks`` to choose the monitored key (the built-in one is then not added).

    Parameters
    ----------
    patience : int or None, default=10
        Epochs without improvement before training stops; None never stops early
        (the best weights are still restored).
    monitor : str, default="valid_loss"
        Key of the epoch record to minimize (``"train_loss"`` needs no validation
        split).
    restore_best_weights : bool, default=True
        Load the weights of the best epoch into ``module_`` when training ends, and
        set the estimator's ``best_epoch_`` to it.

    Attributes
    ----------
    best_ : float
        Lowest monitored value of the last ``fit``.
    best_epoch_ : int or None
        Epoch (1-based, counted over warm starts) where it was reached.
    """

    def __init__(
        self,
        patience: int | None = 10,
        monitor: str = "valid_loss",
        restore_best_weights: bool = True,
    ) -> None:
        self.patience = patience
        self.monitor = monitor
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, estimator: Any) -> None:
        patience = self.patience
        if patience is not None and (
            isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1
        ):
            raise ValueError(
                f"EarlyStopping: patience must be an int >= 1 or None, got {patience!r}"
            )
        self.best_ = math.inf
        self.best_epoch_ = None
        self._wait = 0
        self._best_state: dict[str, Any] | None = None

    def on_epoch_end(self, estimator: Any, record: dict[str, float]) -> bool:
        if self.monitor not in record:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, but the epoch records hold only "
                f"{sorted(record)}; set validation_fraction > 0 for 'valid_loss', or "
                "EarlyStopping(monitor='train_loss')"
            )
        value = record[self.monitor]
        if value < self.best_:
            self.best_, self.best_epoch_, self._wait = value, record["epoch"], 0
            if self.restore_best_weights:
                state = estimator.module_.state_dict()
                self._best_state = {k: v.detach().clone() for k, v in state.items()}
            return False
        self._wait += 1
        return self.patience is not None and self._wait >= self.patience

    def on_train_end(self, estimator: Any) -> None:
        if self.restore_best_weights and self._best_state is not None:
            estimator.module_.load_state_dict(self._best_state)
            estimator.best_epoch_ = self.best_epoch_
        # The copy has done its job; callbacks_ should not carry a second set of weights.
        self._best_state = None


class ProgressBar(Callback):
    """Training progress on stderr, with tqdm: a bar over the epochs, or one line each.

    What ``verbose=1`` (``style="bar"``) and ``verbose=2`` (``style="lines"``) build.

    Parameters
    ----------
    style : {"bar", "lines"}, default="bar"
        ``"bar"``: one tqdm bar for the ``fit``, showing the latest losses;
        ``"lines"``: one line per epoch with its losses and seconds.
    """

    def __init__(self, style: str = "bar") -> None:
        self.style = style

    def on_train_begin(self, estimator: Any) -> None:
        if self.style not in ("bar", "lines"):
            raise ValueError(f"ProgressBar: style must be 'bar' or 'lines', got {self.style!r}")
        history = getattr(estimator, "history_", [])
        self._first = len(history) + 1
        self._last = len(history) + int(estimator.epochs)
        self._bar = None
        if self.style == "bar":
            self._bar = tqdm(
                total=int(estimator.epochs),
                desc=type(estimator).__name__,
                unit="epoch",
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
            )

    def on_epoch_end(self, estimator: Any, record: dict[str, float]) -> None:
        losses = "  ".join(f"{k}={v:.5g}" for k, v in record.items() if k.endswith("_loss"))
        if self._bar is None:
            tqdm.write(
                f"epoch {record['epoch']}/{self._last}  {losses}  {record['seconds']:.3f}s",
                file=sys.stderr,
            )
            return
        # tqdm redraws at most every 0.1 s; close() draws the final state.
        self._bar.set_postfix_str(losses, refresh=False)
        self._bar.update(1)

    def on_train_end(self, estimator: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __getstate__(self) -> dict[str, Any]:
        # A fitted estimator (its callbacks_) must pickle: the bar is closed by then.
        state = dict(vars(self))
        state.pop("_bar", None)
        return state
