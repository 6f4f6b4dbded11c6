"""What every seqpipe estimator shares: parameters, validation, scaling, the fit loop.

Hyperparameters are specs (``architecture="lstm"``, ``optimizer="adam"``); ``fit``
builds the live objects (``module_``, ``optimizer_``) from them, so ``clone`` and
``GridSearchCV`` stay trivial.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from seqpipe._devices import copy_to_cpu, resolve_device
from seqpipe._local_scaling import LOCAL_SCALINGS, scale_windows, window_stats
from seqpipe._network import HEAD_ACTIVATIONS, Seq2SeqNetwork, SequenceNetwork
from seqpipe._sequences import check_feature_names, check_sequences
from seqpipe._targets import TargetLayout
from seqpipe._training import LR_SCHEDULES, LoopSettings, LossFn, TensorData, train_epochs
from seqpipe.architectures.spec import BodyConfig
from seqpipe.plugins import get_architecture

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}

#: Multi-tensor implementations for the named optimizers. On CPU torch defaults to
#: one small kernel per parameter tensor; the fused kernels update every tensor in
#: one call, which for the small stacked models of the seed problems cuts the
#: optimizer step from about 1 ms to 0.4 ms (20% of a training step). RMSprop has
#: no fused kernel; its foreach form batches the same way.
_MULTI_TENSOR: dict[str, dict[str, bool]] = {
    "adam": {"fused": True},
    "adamw": {"fused": True},
    "sgd": {"fused": True},
    "rmsprop": {"foreach": True},
}

#: Predict in chunks this large: bounded memory, near-full throughput.
PREDICT_BATCH = 4096


def feature_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale over samples and steps, ignoring NaN padding."""
    flat = X.reshape(-1, X.shape[-1]).astype(np.float64)
    flat = flat[~np.isnan(flat).all(axis=1)]
    mean = flat.mean(axis=0)
    scale = flat.std(axis=0)
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1)] = 1.0
    return mean, scale


class SequenceModelBase(BaseEstimator):
    """Parameters and machinery shared by LSTMRegressor, LSTMClassifier, LSTMTransformer."""

    _parameter_constraints: dict[str, list[Any]] = {
        "architecture": [str],
        "hidden_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "num_layers": [Interval(numbers.Integral, 1, None, closed="left")],
        "bidirectional": ["boolean"],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "activation": [str, None],
        "recurrent_activation": [str, None],
        "architecture_options": [dict, None],
        "head_layers": ["array-like"],
        "head_activation": [StrOptions(set(HEAD_ACTIVATIONS))],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "lr": [Interval(numbers.Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "patience": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "clip_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "scale_X": ["boolean"],
        "local_scaling": [StrOptions(set(LOCAL_SCALINGS)), None],
        "lr_schedule": [StrOptions(set(LR_SCHEDULES)), None],
        "random_state": ["random_state"],
        "device": [StrOptions({"cpu", "cuda", "auto"}), str, torch.device],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    def _validate_params(self) -> None:
        """scikit-learn's constraint table, then what it cannot express."""
        super()._validate_params()
        for units in self.head_layers:
            if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units < 1:
                raise ValueError(
                    f"head_layers must hold positive integers (units of each hidden Dense "
                    f"layer), got {tuple(self.head_layers)!r}"
                )
        optimizer = self.optimizer
        if not isinstance(optimizer, str) and not (
            isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)
        ):
            raise ValueError(
                f"optimizer must be one of {sorted(OPTIMIZERS)} or a torch.optim.Optimizer "
                f"subclass, got {optimizer!r}"
            )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        # NaN is accepted only as trailing padding; anywhere else it is an error.
        tags.input_tags.allow_nan = False
        return tags

    # --- input -------------------------------------------------------------------
    def _validate_X(self, X: Any, *, reset: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if not reset:
            check_is_fitted(self)
        source = X
        X, lengths = check_sequences(
            X,
            n_features=None if reset else self.n_features_in_,
            shortest_fit=None if reset else getattr(self, "_shortest_fit", None),
        )
        check_feature_names(self, source, reset=reset)
        if reset:
            self.n_features_in_ = X.shape[2]
            # Kept for the single-window warning (a 2-D (n, 1) X at predict time) and
            # written into exported files for the runtime's.
            self._shortest_fit = int(X.shape[1] if lengths is None else lengths.min())
        elif X.shape[2] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[2]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X, lengths

    def _local_stats(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Each window's own ``(center, scale)`` with ``local_scaling``, else None."""
        return window_stats(X) if self.local_scaling else None

    def _locally_scaled(self, X: np.ndarray) -> np.ndarray:
        stats = self._local_stats(X)
        return X if stats is None else scale_windows(X, *stats)

    def _fit_input_scaling(self, X: np.ndarray) -> None:
        # The global statistics describe what the network sees: locally scaled windows.
        X = self._locally_scaled(X)
        if self.scale_X:
            mean, scale = feature_stats(X)
        else:
            mean, scale = np.zeros(X.shape[2]), np.ones(X.shape[2])
        self.x_mean_ = mean.astype(np.float32)
        self.x_scale_ = scale.astype(np.float32)

    def _input_tensor(self, X: np.ndarray) -> torch.Tensor:
        scaled = (self._locally_scaled(X) - self.x_mean_) / self.x_scale_
        # Padding becomes 0; lengths tell the body where each sequence ends.
        np.nan_to_num(scaled, copy=False, nan=0.0)
        return torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32)).to(self.device_)

    @staticmethod
    def _lengths_tensor(lengths: np.ndarray | None) -> torch.Tensor | None:
        return None if lengths is None else torch.from_numpy(lengths)

    # --- building ----------------------------------------------------------------
    def _body_config(self, input_size: int, max_timesteps: int | None = None) -> BodyConfig:
        return BodyConfig.from_params(self.get_params(deep=False), input_size, max_timesteps)

    def _build_module(self, layout: TargetLayout) -> torch.nn.Module:
        spec = get_architecture(self.architecture)
        body = spec.build(self._body_config(self.n_features_in_, self.max_timesteps_))
        if not isinstance(getattr(body, "output_size", None), numbers.Integral):
            raise TypeError(
                f"architecture {self.architecture!r} built {type(body).__name__} without an "
                "integer `output_size` attribute, which the body contract requires"
            )
        if layout.kind == "horizon":
            horizon, *rest = layout.output_shape
            return Seq2SeqNetwork(body, horizon, rest[0] if rest else 1)
        return SequenceNetwork(
            body,
            layout.n_outputs,
            per_step=layout.per_step,
            head_layers=tuple(self.head_layers),
            head_activation=self.head_activation,
        )

    def _resolve_lr(self) -> float:
        """``lr``, or with ``lr="auto"`` the architecture's declared ``default_lr``."""
        if isinstance(self.lr, str):  # "auto", checked by the parameter constraints
            return get_architecture(self.architecture).resolved_lr()
        return float(self.lr)

    def _make_optimizer(self, module: torch.nn.Module) -> torch.optim.Optimizer:
        if not isinstance(self.optimizer, str):  # a user's class gets only lr and decay
            return self.optimizer(module.parameters(), lr=self.lr_, weight_decay=self.weight_decay)
        return OPTIMIZERS[self.optimizer](
            module.parameters(),
            lr=self.lr_,
            weight_decay=self.weight_decay,
            **_MULTI_TENSOR[self.optimizer],
        )

    # --- fitting -----------------------------------------------------------------
    def _fit_network(
        self,
        X: np.ndarray,
        lengths: np.ndarray | None,
        y: torch.Tensor,
        mask: np.ndarray | None,
        loss_fn: LossFn,
        layout: TargetLayout,
    ) -> None:
        """Build (or, with warm_start, reuse) the network for ``layout`` and train it."""
        self.device_ = resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        data = TensorData(
            self._input_tensor(X),
            y.to(self.device_),
            self._lengths_tensor(lengths),
            None if mask is None else torch.from_numpy(mask).to(self.device_),
        )
        train, valid = self._split_validation(data)
        reuse = self.warm_start and hasattr(self, "module_") and self.target_layout_ == layout
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        # Seed inside a forked RNG so fit is reproducible without touching the
        # caller's global torch state.
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            self.lr_ = self._resolve_lr()
            if not reuse:
                # Kept, so a warm start or a rebuild sees the same length as the first fit.
                self.max_timesteps_ = int(X.shape[1])
                self.module_ = self._build_module(layout).to(self.device_)
                self.history_ = []
            if not reuse or not hasattr(self, "optimizer_"):  # pickles from a GPU drop it
                self.optimizer_ = self._make_optimizer(self.module_)
            # Every fit starts from `lr`: a schedule of an earlier fit (warm_start) may
            # have left the optimizer at a fraction of it, or at 0 (cosine).
            for group in self.optimizer_.param_groups:
                group["lr"] = group["initial_lr"] = self.lr_
            self.target_layout_ = layout
            generator = torch.Generator().manual_seed(seed)
            self.best_epoch_ = train_epochs(
                self.module_,
                self.optimizer_,
                loss_fn,
                train,
                valid,
                LoopSettings(
                    epochs=self.epochs,
                    batch_size=self.batch_size,
                    shuffle=self.shuffle,
                    patience=self.patience,
                    clip_grad_norm=self.clip_grad_norm,
                    verbose=int(self.verbose),
                    lr_schedule=self.lr_schedule,
                ),
                generator,
                self.history_,
            )
        self.n_epochs_ = len(self.history_)

    def _split_validation(self, data: TensorData) -> tuple[TensorData, TensorData | None]:
        # Like Keras' validation_split: the *last* fraction, so time order is respected.
        if not self.validation_fraction:
            return data, None
        n = len(data)
        n_valid = round(n * self.validation_fraction)
        if n_valid < 1 or n - n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves {n - n_valid} training and "
                f"{n_valid} validation samples out of {n}; both need at least one"
            )
        return data.take(slice(0, n - n_valid)), data.take(slice(n - n_valid, n))

    # --- inference ---------------------------------------------------------------
    def _forward(
        self, X: np.ndarray, lengths: np.ndarray | None, *, encode: bool = False
    ) -> np.ndarray:
        module = self.module_
        module.eval()
        inputs = self._input_tensor(X)
        lengths_t = self._lengths_tensor(lengths)
        run = module.encode if encode else module
        outputs = []
        with torch.inference_mode():
            for start in range(0, inputs.shape[0], PREDICT_BATCH):
                stop = start + PREDICT_BATCH
                chunk_lengths = None if lengths_t is None else lengths_t[start:stop]
                outputs.append(run(inputs[start:stop], chunk_lengths))
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return out.cpu().numpy()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        # Pickles load on machines without a GPU: store the network on the CPU.
        if state.get("device_") is not None and state["device_"].type != "cpu":
            state = dict(state)
            state["module_"] = copy_to_cpu(state["module_"])
            state.pop("optimizer_", None)
            state["device_"] = torch.device("cpu")
        return state
