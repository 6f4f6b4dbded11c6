"""What every seqpipe estimator shares: parameters, validation, scaling, the fit loop.

Hyperparameters are specs (``architecture="lstm"``, ``optimizer="adam"``,
``callbacks=[EarlyStopping(5)]``); ``fit`` builds the live objects (``module_``,
``optimizer_``, ``callbacks_``) from them, so ``clone`` and ``GridSearchCV`` stay
trivial.

``fit`` validates everything first (data, targets, warm-start compatibility,
validation split, callbacks), holds out the validation rows, fits every scaler
on the training rows only, and trains. Any failure after that point (a
non-finite loss, a callback's exception, an interrupt) restores the estimator as
it was before the call: a fit either succeeds or changes nothing.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from seqpipe._chunks import length_sorted_chunks, row_slices
from seqpipe._devices import copy_to_cpu, resolve_device
from seqpipe._local_scaling import LOCAL_SCALINGS, all_constant, scale_windows, window_stats
from seqpipe._network import HEAD_ACTIVATIONS, Seq2SeqNetwork, SequenceNetwork
from seqpipe._scaling import feature_stats
from seqpipe._sequences import check_feature_names, check_sequences
from seqpipe._targets import TargetLayout, Targets
from seqpipe._training import (
    LR_SCHEDULES,
    PRECISIONS,
    LazyInputs,
    LoopSettings,
    TensorData,
    batch_source,
    check_precision,
    cross_entropy_loss,
    mse_loss,
    train_epochs,
)
from seqpipe.architectures.layout import activation_name
from seqpipe.architectures.spec import BodyConfig
from seqpipe.callbacks import Callback, EarlyStopping, ProgressBar
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
#: ...and, on the CPU, of at most this many rows x time steps. Convolutions want
#: small chunks (their activations stay in the caches), the recurrent kernels wide
#: ones (their cost is per step); measured one thread on PLAID and OSULeaf's test
#: sets, 2**15 was within noise of the best for both (lstm_fcn 2**13 to 2**15 alike,
#: 1.4x slower at 2**16; gru 1.5x slower at 2**13).
PREDICT_STEPS = 32768

#: The parameters that shape the network ``fit`` builds. The fitted model keeps
#: their values in ``network_params_`` (``hidden_size`` resolved): predict and export
#: describe the network that exists, and ``set_params`` changes only the next fit
#: that builds a new one (warm_start and partial_fit refuse a change).
NETWORK_PARAMS: tuple[str, ...] = (
    "architecture",
    "hidden_size",
    "num_layers",
    "bidirectional",
    "dropout",
    "activation",
    "recurrent_activation",
    "architecture_options",
    "head_layers",
    "head_activation",
)


class SequenceModelBase(BaseEstimator):
    """Parameters and machinery shared by LSTMRegressor, LSTMClassifier, LSTMTransformer."""

    _parameter_constraints: dict[str, list[Any]] = {
        "architecture": [str],
        "hidden_size": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
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
        "precision": [StrOptions(set(PRECISIONS))],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "callbacks": [list, tuple, None],
        "torch_num_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
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
        for i, callback in enumerate(self.callbacks or ()):
            if not isinstance(callback, Callback):
                raise ValueError(
                    f"callbacks must hold seqpipe.callbacks.Callback instances (subclass it "
                    f"and override on_train_begin, on_epoch_end or on_train_end), but item "
                    f"{i} is {callback!r}"
                )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        # NaN is accepted only as trailing padding; anywhere else it is an error.
        tags.input_tags.allow_nan = False
        return tags

    # --- input -------------------------------------------------------------------
    def _validate_X(self, X: Any, *, reset: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``X`` as float64 ``(n, T, F)`` (a large float32/float64 array as passed,
        see ``check_sequences(in_chunks=True)``) and its lengths; checked against the fitted
        width unless ``reset`` (``fit`` stores ``n_features_in_`` once it commits)."""
        if not reset:
            check_is_fitted(self)
        source = X
        # in_chunks: a large float array (windows from make_windows are views) is
        # checked chunk by chunk and read a chunk or a batch at a time from then on,
        # never copied whole (O(n) memory for fit and predict).
        X, lengths = check_sequences(
            X,
            n_features=None if reset else self.n_features_in_,
            shortest_fit=None if reset else getattr(self, "_shortest_fit", None),
            in_chunks=True,
        )
        if not reset:
            check_feature_names(self, source, reset=False)
        if not reset and X.shape[2] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[2]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X, lengths

    def _fitted_local_scaling(self) -> str | None:
        """The ``local_scaling`` the network was trained with (``local_scaling_``):
        what predict, partial_fit and export apply, whatever ``set_params`` changed
        since. Models pickled before ``local_scaling_`` existed read the parameter."""
        return getattr(self, "local_scaling_", self.local_scaling)

    def _network_params(self) -> dict[str, Any]:
        """The network the parameters ask for now (:data:`NETWORK_PARAMS`), with
        ``hidden_size="auto"`` resolved for the architecture."""
        return _network_record(self.get_params(deep=False), self._resolve_hidden_size())

    def _check_same_network(self, doing: str, how: str) -> None:
        """More training continues the network that exists: a changed parameter of
        :data:`NETWORK_PARAMS` would otherwise be silently ignored."""
        fitted, wanted = self.network_params_, self._network_params()
        changed = [
            name
            for name in NETWORK_PARAMS
            if _comparable(name, fitted[name]) != _comparable(name, wanted[name])
        ]
        if not changed:
            return
        built = ", ".join(f"{name}={fitted[name]!r}" for name in changed)
        asked = ", ".join(f"{name}={wanted[name]!r}" for name in changed)
        if "hidden_size" in changed and isinstance(self.hidden_size, str):
            asked += f" (hidden_size={self.hidden_size!r} for architecture {self.architecture!r})"
        raise ValueError(
            f"{doing} the fitted network, which was built with {built}, but the "
            f"parameters now ask for {asked}{how}"
        )

    def _locally_scaled(self, X: np.ndarray) -> np.ndarray:
        """``X`` with each window scaled by its own statistics (``local_scaling_``)."""
        return scale_windows(X, *window_stats(X)) if self._fitted_local_scaling() else X

    def _standardized(self, X: np.ndarray) -> np.ndarray:
        """What the network reads: standardized in float64, then float32, padding 0."""
        scaled = (X - self.x_mean_) / self.x_scale_
        # Padding becomes 0; lengths tell the body where each sequence ends.
        np.nan_to_num(scaled, copy=False, nan=0.0)
        return np.ascontiguousarray(scaled, dtype=np.float32)

    def _network_input(self, X: np.ndarray) -> np.ndarray:
        """Rows of validated ``X`` as the network reads them (float32, padding 0),
        row by row, so any chunk or batch of rows gives what all of them would."""
        return self._standardized(self._locally_scaled(X))

    def _network_inputs(self, X: np.ndarray) -> LazyInputs:
        """The network's inputs for ``X``, computed when read (scaling is fitted)."""
        return LazyInputs(X, self._network_input)

    def _fit_input_scaling(
        self, X: np.ndarray, n_train: int, weights: np.ndarray | None = None
    ) -> LazyInputs:
        """Learn ``x_mean_``/``x_scale_`` on the training rows (weighted by
        ``weights``, see :func:`feature_stats`); the network's inputs."""
        # First: everything below, and predict after it, scales as this fit does.
        self.local_scaling_ = self.local_scaling
        if self.local_scaling and all_constant(X[:n_train]):
            warnings.warn(
                f"local_scaling={self.local_scaling!r} scales each sequence by its own mean "
                "and standard deviation, but every training sequence is constant (or one "
                "step long), so every input becomes 0 and the network cannot tell them "
                "apart; pass local_scaling=None to keep their levels (LSTMClassifier's "
                "default is 'standard')",
                UserWarning,
                stacklevel=3,
            )
        if self.scale_X:
            train_weights = None if weights is None else weights[:n_train]
            # The global statistics describe what the network sees: locally scaled
            # windows, scaled chunk by chunk inside feature_stats.
            local = self._locally_scaled if self.local_scaling else None
            self.x_mean_, self.x_scale_ = feature_stats(X[:n_train], train_weights, local)
        else:
            self.x_mean_, self.x_scale_ = np.zeros(X.shape[2]), np.ones(X.shape[2])
        return self._network_inputs(X)

    @staticmethod
    def _lengths_tensor(lengths: np.ndarray | None) -> torch.Tensor | None:
        return None if lengths is None else torch.from_numpy(lengths)

    # --- building ----------------------------------------------------------------
    def _build_module(self, layout: TargetLayout) -> torch.nn.Module:
        """The network of ``network_params_``, for ``n_features_in_`` features."""
        network = self.network_params_
        spec = get_architecture(network["architecture"])
        body = spec.build(BodyConfig.from_params(network, self.n_features_in_, self.max_timesteps_))
        if not isinstance(getattr(body, "output_size", None), numbers.Integral):
            raise TypeError(
                f"architecture {network['architecture']!r} built {type(body).__name__} "
                "without an integer `output_size` attribute, which the body contract requires"
            )
        if layout.kind == "horizon":
            horizon, *rest = layout.output_shape
            return Seq2SeqNetwork(body, horizon, rest[0] if rest else 1)
        return SequenceNetwork(
            body,
            layout.n_outputs,
            per_step=layout.per_step,
            head_layers=network["head_layers"],
            head_activation=network["head_activation"],
        )

    def _resolve_hidden_size(self) -> int:
        """``hidden_size``, or with ``"auto"`` the architecture's ``default_hidden_size``."""
        return get_architecture(self.architecture).resolved_hidden_size(self.hidden_size)

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
    def _fit_sequences(self, X: Any, y: Any, sample_weight: Any = None) -> SequenceModelBase:
        """The ``fit`` of every estimator: validate everything, then train, all or nothing."""
        self._validate_params()
        source = X
        X, lengths = self._validate_X(X, reset=True)
        targets = self._check_targets(y, X, lengths)
        weights = self._sample_weights(sample_weight, X, targets)
        self._check_warm_start(X, targets, source)
        n_train = self._n_train(len(X))
        _check_weight_split(weights, n_train)
        callbacks = self._training_callbacks(validating=n_train < len(X))
        with self._all_or_nothing(), self._torch_threads():
            self.n_features_in_ = X.shape[2]
            # Kept for the single-window warning (a 2-D (n, 1) X at predict time) and
            # written into exported files for the runtime's.
            self._shortest_fit = int(X.shape[1] if lengths is None else lengths.min())
            check_feature_names(self, source, reset=True)
            inputs = self._fit_input_scaling(X, n_train, weights)
            y_train = self._training_targets(targets, X, inputs, n_train, weights)
            self._fit_network(inputs, lengths, y_train, targets, n_train, callbacks, weights)
        return self

    def _sample_weights(
        self, sample_weight: Any, X: np.ndarray, targets: Targets
    ) -> np.ndarray | None:
        """``sample_weight`` checked (one non-negative finite value per sample, not
        all zero) as float64, a new array; None when every sample counts once."""
        if sample_weight is None:
            return None
        # copy=True: the caller's array is never written to.
        return _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True, copy=True
        )

    def _check_targets(self, y: Any, X: np.ndarray, lengths: np.ndarray | None) -> Targets:
        """``y`` validated for this estimator (see :mod:`seqpipe._targets`); stores nothing."""
        raise NotImplementedError

    def _training_targets(
        self,
        targets: Targets,
        X: np.ndarray,
        inputs: LazyInputs,
        n_train: int,
        weights: np.ndarray | None,
    ) -> torch.Tensor:
        """The tensor the loss compares with; stores the target attributes
        (scaling statistics fitted on the first ``n_train`` rows with their
        ``weights``, classes, ...)."""
        raise NotImplementedError

    def _check_warm_start(self, X: np.ndarray, targets: Targets, source: Any = None) -> None:
        """With ``warm_start``, the fitted network must fit the new data, or nothing changes."""
        if not (self.warm_start and hasattr(self, "module_")):
            return
        how = "; fit with warm_start=False to train a new network (the fitted model is unchanged)"
        if X.shape[2] != self.n_features_in_:
            raise ValueError(
                f"warm_start=True continues training the fitted network, which reads "
                f"{self.n_features_in_} feature(s) per time step, but X has {X.shape[2]}{how}"
            )
        # The same features in the same order, by name (scikit-learn's own check and
        # message), as partial_fit and predict require.
        check_feature_names(self, source, reset=False)
        old_classes = getattr(self, "classes_", None)
        if targets.classes is not None and old_classes is not None:
            if not np.array_equal(targets.classes, old_classes):
                raise ValueError(
                    f"warm_start=True continues training the fitted network, which was "
                    f"trained for the classes {np.asarray(old_classes).tolist()}, but y has "
                    f"the classes {np.asarray(targets.classes).tolist()}{how}"
                )
        self._check_same_network("warm_start=True continues training", how)
        if targets.layout != self.target_layout_:
            raise ValueError(
                f"warm_start=True continues training the fitted network, whose outputs are "
                f"{_describe_layout(self.target_layout_)}, but y needs "
                f"{_describe_layout(targets.layout)}{how}"
            )
        self._check_same_local_scaling("warm_start=True continues training", how)

    def _check_same_local_scaling(self, doing: str, how: str) -> None:
        """The network learned on inputs scaled one way; more training on inputs
        scaled another way would silently mix the two."""
        fitted = self._fitted_local_scaling()
        if self.local_scaling != fitted:
            raise ValueError(
                f"{doing} the fitted network, which was trained with local_scaling="
                f"{fitted!r}, but local_scaling={self.local_scaling!r} now{how}"
            )

    def _n_train(self, n: int) -> int:
        """Rows that train; the rest (the *last* ones) are the validation split."""
        # Like Keras' validation_split: the last fraction, so time order is respected.
        if not self.validation_fraction:
            return n
        n_valid = round(n * self.validation_fraction)
        if n_valid < 1 or n - n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves {n - n_valid} training and "
                f"{n_valid} validation samples out of {n}; both need at least one"
            )
        return n - n_valid

    def _training_callbacks(self, *, validating: bool) -> list[Callback]:
        """Clones of ``callbacks``, plus the built-ins the parameters ask for.

        Early stopping (``validation_fraction > 0``, ``patience``) comes first, so the
        other callbacks see the restored weights at the end; progress (``verbose``)
        comes last. Either is left out when ``callbacks`` already holds one.
        """
        callbacks = [clone(callback, safe=False) for callback in self.callbacks or ()]
        if validating and not any(isinstance(c, EarlyStopping) for c in callbacks):
            callbacks.insert(0, EarlyStopping(patience=self.patience))
        if self.verbose and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(ProgressBar("bar" if int(self.verbose) == 1 else "lines"))
        return callbacks

    @contextlib.contextmanager
    def _all_or_nothing(self, *, in_place: bool = False) -> Iterator[None]:
        """Restore every attribute (and a warm-started network's weights) if the body raises.

        ``in_place``: the fitted network is trained in place whatever ``warm_start``
        says (``partial_fit``), so its weights and optimizer state are kept too.
        """
        saved = dict(vars(self))
        module, optimizer = saved.get("module_"), saved.get("optimizer_")
        weights = optimizer_state = None
        if (in_place or self.warm_start) and module is not None:  # trained in place: keep a copy
            weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
            if optimizer is not None:
                optimizer_state = copy.deepcopy(optimizer.state_dict())
        try:
            yield
        except BaseException:
            if weights is not None:
                module.load_state_dict(weights)
            if optimizer_state is not None:
                optimizer.load_state_dict(optimizer_state)
            vars(self).clear()
            vars(self).update(saved)
            raise

    @contextlib.contextmanager
    def _torch_threads(self) -> Iterator[None]:
        """Run the body with ``torch_num_threads`` intra-op threads, then restore the
        caller's count, also when the body raises (None: torch's setting as it is)."""
        # getattr: an estimator pickled before the parameter existed leaves torch alone.
        threads = getattr(self, "torch_num_threads", None)
        before = torch.get_num_threads()
        if threads is None or threads == before:
            yield
            return
        torch.set_num_threads(int(threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _non_finite_hint(self) -> str:
        """What a non-finite loss error suggests, from this estimator's parameters."""
        advice = [f"a smaller learning rate (lr={getattr(self, 'lr_', self.lr)} now)"]
        if self.clip_grad_norm is None:
            advice.append("gradient clipping (e.g. clip_grad_norm=1.0)")
        else:
            advice.append(
                f"stronger gradient clipping (clip_grad_norm={self.clip_grad_norm:g} now)"
            )
        unscaled = [name for name in ("scale_X", "scale_y") if getattr(self, name, True) is False]
        if unscaled:
            advice.append(f"standardized data ({', '.join(f'{n}=True' for n in unscaled)})")
        else:
            advice.append("checking X and y for extreme values (both are standardized already)")
        return (
            f"; {type(self).__name__}.fit stopped and the estimator keeps the state it had "
            f"before this fit. Try {', '.join(advice[:-1])}, or {advice[-1]}"
        )

    def _tensor_data(
        self,
        inputs: LazyInputs,
        lengths: np.ndarray | None,
        y: torch.Tensor,
        targets: Targets,
        weights: np.ndarray | None,
    ) -> TensorData:
        """Everything the training loop reads, on ``device_``; inputs larger than
        ``IN_MEMORY_BYTES`` on the CPU are computed batch by batch (see
        :func:`batch_source`), never copied whole."""
        mask = targets.mask
        return TensorData(
            batch_source(inputs.to(self.device_)),
            y.to(self.device_),
            self._lengths_tensor(lengths),
            None if mask is None else torch.from_numpy(mask).to(self.device_),
            _weight_tensor(weights, self.device_),
        )

    def _fit_network(
        self,
        inputs: LazyInputs,
        lengths: np.ndarray | None,
        y: torch.Tensor,
        targets: Targets,
        n_train: int,
        callbacks: list[Callback],
        weights: np.ndarray | None = None,
    ) -> None:
        """Build (or, with warm_start, reuse) the network and train it on the first
        ``n_train`` rows, validating on the rest; rows of zero weight take no part."""
        layout = targets.layout
        self.device_ = resolve_device(self.device)
        check_precision(self.precision, self.device_)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        data = self._tensor_data(inputs, lengths, y, targets, weights)
        n = len(data)
        train = _weighted_rows(data, 0, n_train, weights, self.device_)
        valid = _weighted_rows(data, n_train, n, weights, self.device_) if n_train < n else None
        reuse = self.warm_start and hasattr(self, "module_")
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        # Seed inside a forked RNG so fit is reproducible without touching the
        # caller's global torch state.
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            self.lr_ = self._resolve_lr()
            if reuse:
                # A new list: the one of the previous fit stays intact if this one fails.
                self.history_ = list(self.history_)
                self.hidden_size_ = self.network_params_["hidden_size"]
            else:
                # Kept, so a warm start or a rebuild sees the same length as the first fit.
                self.max_timesteps_ = _longest(inputs, lengths)
                self.network_params_ = self._network_params()
                self.hidden_size_ = self.network_params_["hidden_size"]
                self.module_ = self._build_module(layout).to(self.device_)
                self.history_ = []
            if not reuse or not hasattr(self, "optimizer_"):  # pickles from a GPU drop it
                self.optimizer_ = self._make_optimizer(self.module_)
            # Every fit starts from `lr`: a schedule of an earlier fit (warm_start) may
            # have left the optimizer at a fraction of it, or at 0 (cosine).
            for group in self.optimizer_.param_groups:
                group["lr"] = group["initial_lr"] = self.lr_
            self.target_layout_ = layout
            self.best_epoch_ = None
            self.callbacks_ = callbacks
            stopper = next((c for c in callbacks if isinstance(c, EarlyStopping)), None)
            train_epochs(
                self,
                self.module_,
                self.optimizer_,
                cross_entropy_loss if targets.task == "classification" else mse_loss,
                train,
                valid,
                LoopSettings(
                    epochs=self.epochs,
                    batch_size=self.batch_size,
                    shuffle=self.shuffle,
                    clip_grad_norm=self.clip_grad_norm,
                    lr_schedule=self.lr_schedule,
                    stop_patience=None if stopper is None else stopper.patience,
                    non_finite_hint=self._non_finite_hint(),
                    precision=self.precision,
                ),
                torch.Generator().manual_seed(seed),
                self.history_,
                callbacks,
            )
        self.n_epochs_ = len(self.history_)

    # --- incremental fitting (partial_fit) -------------------------------------------
    def _partial_fit_sequences(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> SequenceModelBase:
        """The ``partial_fit`` of every estimator: one epoch over ``X``, all or nothing.

        The first call (on an unfitted estimator) does what ``fit`` does before
        training: it learns the scaling statistics on this chunk and builds the
        network (with ``fit``'s seed, so the same initial weights). Later calls, and
        calls after ``fit``, keep the statistics, the network and the optimizer's
        state, and train one more epoch at the constant rate ``lr_``.
        """
        self._validate_params()
        if self.validation_fraction:
            # As scikit-learn's MLP refuses early_stopping in partial_fit: one epoch
            # per call leaves nothing for a held-out split to decide.
            raise ValueError(
                f"partial_fit trains one epoch on every row it is given and has no "
                f"validation split, but validation_fraction={self.validation_fraction}; "
                f"set validation_fraction=0 (early stopping applies to fit only)"
            )
        first = not hasattr(self, "module_")
        if not first:
            self._check_same_local_scaling(
                "partial_fit continues training",
                "; set it back, or fit to train a new network (the fitted model is unchanged)",
            )
            self._check_same_network(
                "partial_fit continues training",
                "; set the parameters back, or fit to train a new network (the fitted model is "
                "unchanged)",
            )
        source = X
        X, lengths = self._validate_X(X, reset=first)
        targets = self._check_partial_targets(y, X, lengths, classes)
        # The plain sample weights (class_weight is refused by the classifier's
        # partial_fit: "balanced" would be per chunk).
        weights = SequenceModelBase._sample_weights(self, sample_weight, X, targets)
        _check_weight_split(weights, len(X))
        if not first:
            self._check_partial_layout(targets)
        callbacks = [clone(callback, safe=False) for callback in self.callbacks or ()]
        with self._all_or_nothing(in_place=True), self._torch_threads():
            if first:
                self.n_features_in_ = X.shape[2]
                self._shortest_fit = int(X.shape[1] if lengths is None else lengths.min())
                check_feature_names(self, source, reset=True)
                inputs = self._fit_input_scaling(X, len(X), weights)
                y_train = self._training_targets(targets, X, inputs, len(X), weights)
            else:
                inputs = self._network_inputs(X)
                y_train = self._scaled_targets(targets, X, inputs)
            self._partial_fit_epoch(
                inputs, lengths, y_train, targets, callbacks, first=first, weights=weights
            )
        return self

    def _check_partial_targets(
        self, y: Any, X: np.ndarray, lengths: np.ndarray | None, classes: Any
    ) -> Targets:
        """``y`` of one ``partial_fit`` call; the classifier overrides it for ``classes``."""
        return self._check_targets(y, X, lengths)

    def _scaled_targets(self, targets: Targets, X: np.ndarray, inputs: LazyInputs) -> torch.Tensor:
        """The loss's targets of a later ``partial_fit`` call, scaled by the stored
        statistics (the first call's); stores nothing."""
        raise NotImplementedError

    def _check_partial_layout(self, targets: Targets) -> None:
        """A later ``partial_fit`` chunk's ``y`` must suit the network's outputs."""
        if targets.layout != self.target_layout_:
            raise ValueError(
                f"partial_fit continues training the fitted network, whose outputs are "
                f"{_describe_layout(self.target_layout_)}, but y needs "
                f"{_describe_layout(targets.layout)}; every call must pass y of the same "
                f"layout (the fitted model is unchanged)"
            )

    def _partial_fit_epoch(
        self,
        inputs: LazyInputs,
        lengths: np.ndarray | None,
        y: torch.Tensor,
        targets: Targets,
        callbacks: list[Callback],
        *,
        first: bool,
        weights: np.ndarray | None = None,
    ) -> None:
        """Build the network on the first call, then train one epoch at ``lr_``."""
        if first:
            self.device_ = resolve_device(self.device)
        check_precision(self.precision, self.device_)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        n_done = len(self.history_) if not first else 0
        # Another shuffling order (and dropout mask) per call, still reproducible.
        epoch_seed = int(np.random.SeedSequence([seed, n_done]).generate_state(1)[0])
        data = self._tensor_data(inputs, lengths, y, targets, weights)
        data = _weighted_rows(data, 0, len(data), weights, self.device_)
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            self.lr_ = self._resolve_lr()
            if first:
                torch.manual_seed(seed)  # fit's seed: the same initial network as fit
                self.max_timesteps_ = _longest(inputs, lengths)
                self.network_params_ = self._network_params()
                self.hidden_size_ = self.network_params_["hidden_size"]
                self.module_ = self._build_module(targets.layout).to(self.device_)
                self.history_ = []
                self.target_layout_ = targets.layout
            else:
                # A new list: the previous one stays intact if this call fails.
                self.history_ = list(self.history_)
            if not hasattr(self, "optimizer_"):  # first call, or a pickle from a GPU
                self.optimizer_ = self._make_optimizer(self.module_)
            # A schedule is per fit (cosine over `epochs`, plateau over a run of
            # epochs); one epoch per call has neither, so every call runs at lr_.
            for group in self.optimizer_.param_groups:
                group["lr"] = self.lr_
            self.best_epoch_ = None
            self.callbacks_ = callbacks
            torch.manual_seed(epoch_seed)
            train_epochs(
                self,
                self.module_,
                self.optimizer_,
                cross_entropy_loss if targets.task == "classification" else mse_loss,
                data,
                None,
                LoopSettings(
                    epochs=1,
                    batch_size=self.batch_size,
                    shuffle=self.shuffle,
                    clip_grad_norm=self.clip_grad_norm,
                    non_finite_hint=self._non_finite_hint().replace(".fit ", ".partial_fit "),
                    precision=self.precision,
                ),
                torch.Generator().manual_seed(epoch_seed),
                self.history_,
                callbacks,
            )
        self.n_epochs_ = len(self.history_)

    # --- inference ---------------------------------------------------------------
    def _forward(
        self, X: np.ndarray, lengths: np.ndarray | None, *, encode: bool = False
    ) -> np.ndarray:
        """The network's output for every row of validated ``X``, in row order.

        Rows go through in chunks (memory is ``X`` plus one chunk, see
        :func:`~seqpipe._chunks.length_sorted_chunks`). Ragged rows are taken in order
        of length, and each chunk is cut after its own longest sequence, as training
        cuts its batches: padding costs no time (``bench/ragged_predict.py``).
        Outputs per time step keep ``X``'s time axis; steps after a chunk's cut are
        0, padding that the callers mask.
        """
        module = self.module_
        module.eval()
        run = module.encode if encode else module
        per_step = not encode and self.target_layout_.per_step
        n, steps = X.shape[:2]
        max_rows = min(PREDICT_BATCH, row_slices(X.shape)[0].stop)
        # The rows x steps cap is for CPU caches; a GPU wants its batches wide.
        step_budget = PREDICT_STEPS if self.device_.type == "cpu" else None
        out: np.ndarray | None = None
        with torch.inference_mode(), self._torch_threads():
            for index in length_sorted_chunks(n, steps, lengths, max_rows, step_budget):
                if isinstance(index, slice):
                    chunk_x, chunk_lengths = X[index], None
                else:
                    chunk_lengths = lengths[index]  # type: ignore[index]
                    chunk_x = X[index, : max(1, int(chunk_lengths.max()))]
                chunk = torch.from_numpy(self._network_input(chunk_x)).to(self.device_)
                result = run(chunk, self._lengths_tensor(chunk_lengths)).cpu().numpy()
                if out is None:
                    if isinstance(index, slice) and index.stop >= n:
                        return result  # one chunk: no copy
                    shape = (n, steps, *result.shape[2:]) if per_step else (n, *result.shape[1:])
                    # One output array, allocated once: keeping each chunk's small
                    # result alive between the large freed blocks of the next chunks
                    # fragments the heap, and the process's resident memory grew
                    # by hundreds of MiB on a first large predict.
                    out = np.zeros(shape, dtype=result.dtype)
                if per_step:
                    out[index, : result.shape[1]] = result
                else:
                    out[index] = result
        assert out is not None  # validated input has at least one row
        return out

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Parameters added since a model was pickled, at the value its training had:
        # without them get_params (clone, repr, GridSearchCV) raises AttributeError.
        state = {"precision": "32", **state}
        if "module_" in state and "network_params_" not in state:
            # Fitted before network_params_ existed: the parameters it was pickled
            # with, and the width it built (an int hidden_size before hidden_size_).
            width = state.get("hidden_size_", state["hidden_size"])
            state["network_params_"] = _network_record(state, int(width))
        super().__setstate__(state)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        # Pickles load on machines without a GPU: store the network on the CPU.
        if state.get("device_") is not None and state["device_"].type != "cpu":
            state = dict(state)
            state["module_"] = copy_to_cpu(state["module_"])
            state.pop("optimizer_", None)
            state["device_"] = torch.device("cpu")
        return state


def _comparable(name: str, value: Any) -> Any:
    """``value`` of network parameter ``name`` in a form where two spellings of the
    same network compare equal: activations by their canonical name (None is
    "linear"), and lists as tuples inside ``architecture_options``."""
    if name in ("activation", "recurrent_activation"):
        try:
            return activation_name(value)
        except ValueError:  # not ours to judge here: fit validates it
            return value
    if isinstance(value, Mapping):
        return {key: _comparable(name, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return tuple(_comparable(name, item) for item in value)
    return value


def _network_record(params: Mapping[str, Any], hidden_size: int) -> dict[str, Any]:
    """The values of :data:`NETWORK_PARAMS` in ``params``, copied, with the width
    built and the containers in one canonical form (for comparison and export)."""
    record = {name: copy.deepcopy(params[name]) for name in NETWORK_PARAMS}
    record["hidden_size"] = int(hidden_size)
    record["architecture_options"] = dict(record["architecture_options"] or {})
    record["head_layers"] = tuple(int(units) for units in record["head_layers"])
    return record


def _check_weight_split(weights: np.ndarray | None, n_train: int) -> None:
    """Both the training rows and the validation rows need a positive total weight."""
    if weights is None:
        return
    if not weights[:n_train].any():
        raise ValueError(
            f"sample_weight is zero for all {n_train} training rows (the first rows, before "
            "the validation split); at least one needs a positive weight"
        )
    if n_train < len(weights) and not weights[n_train:].any():
        raise ValueError(
            f"sample_weight is zero for all {len(weights) - n_train} validation rows (the "
            "last validation_fraction of the rows), so the validation loss is undefined; "
            "give one of them a positive weight or change validation_fraction"
        )


def _weight_tensor(weights: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    """float32 weights for the loss; divided by their maximum first, which the loss
    (normalized by the weights' sum) does not see, so tiny weights do not underflow."""
    if weights is None:
        return None
    return torch.from_numpy((weights / weights.max()).astype(np.float32)).to(device)


def _weighted_rows(
    data: TensorData, start: int, stop: int, weights: np.ndarray | None, device: torch.device
) -> TensorData:
    """Rows ``start:stop`` of ``data``, without those of zero weight.

    A zero-weight sample adds nothing to a weighted loss; dropping it also keeps it
    out of the batches (and of batch statistics such as batch normalization's), so
    zero weight is the same as removing the sample.
    """
    if weights is None:
        return data.take(slice(start, stop))
    rows = start + np.flatnonzero(weights[start:stop] > 0)
    if len(rows) == stop - start:
        return data.take(slice(start, stop))
    return data.take(torch.from_numpy(rows).to(device))


def _describe_layout(layout: TargetLayout) -> str:
    if layout.kind == "classes":
        return f"{layout.n_outputs} class scores"
    if layout.kind == "horizon":
        return f"an encoder-decoder horizon of shape {tuple(layout.output_shape)}"
    if layout.kind == "per_step":
        return f"{layout.n_outputs} output(s) per time step"
    return f"{layout.n_outputs} value(s) per sequence ({layout.kind} y)"


def _longest(inputs: LazyInputs, lengths: np.ndarray | None) -> int:
    """The longest training sequence: padding past every sequence's end is not part
    of any (bodies size themselves by it, e.g. chrono initialization's ``T_max``)."""
    return int(inputs.shape[1] if lengths is None or not len(lengths) else lengths.max())
