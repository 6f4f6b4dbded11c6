"""LSTMRegressor: a recurrent network as a scikit-learn regressor."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import StrOptions

from seqpipe._base import SequenceModelBase
from seqpipe._local_scaling import target_features, window_stats
from seqpipe._sequences import step_mask
from seqpipe._targets import (
    TargetLayout,
    Targets,
    horizon_targets,
    regression_targets,
    shape_predictions,
    standardize,
)
from seqpipe._training import LazyInputs
from seqpipe.callbacks import Callback


class LSTMRegressor(RegressorMixin, SequenceModelBase):
    """Recurrent-network regressor for sequence data, in the scikit-learn API.

    The architecture comes from the plugin registry by name (``"lstm"``, ``"gru"``,
    ``"rnn"`` and whatever plugins add; see :func:`seqpipe.list_architectures`), so
    one class runs every variant and ``GridSearchCV`` can search over them.

    The output follows ``y``: 1-D -> one value per sequence; 2-D ``(n, k)`` -> ``k``
    values (parallel series, or the next ``k`` steps: the "direct" multi-step
    strategy); 3-D ``(n, n_timesteps, k)`` -> one output per time step.

    Parameters
    ----------
    architecture : str, default="lstm"
        Registered architecture name.
    hidden_size : int or "auto", default=32
        Units per recurrent layer and direction. ``"auto"``: the width the
        architecture declares (``ArchitectureSpec.default_hidden_size``, see
        ``LSTMClassifier``). The width built is ``hidden_size_``.
    num_layers : int, default=1
        Stacked recurrent layers.
    bidirectional : bool, default=False
        Read each sequence in both directions.
    dropout : float, default=0.0
        Dropout between stacked layers.
    activation, recurrent_activation : str or None, default="tanh", "sigmoid"
        Keras-style activations of the candidate/output and of the gates.
    architecture_options : dict or None, default=None
        Options specific to the chosen architecture.
    head : {"dense", "seq2seq"}, default="dense"
        ``"dense"``: output layer(s) on the body's final state (or on every step for
        3-D ``y``). ``"seq2seq"``: encoder-decoder; the encoder's final state
        initialises an LSTM decoder that emits ``horizon`` steps; ``y`` is
        ``(n, horizon)`` or ``(n, horizon, n_targets)``.
    head_layers : tuple of int, default=()
        Hidden Dense layers between the recurrent body and the output layer
        (``head="dense"`` only).
    head_activation : {"relu", "tanh", "sigmoid", "linear"}, default="relu"
        Activation of ``head_layers``.
    optimizer : {"adam", "adamw", "sgd", "rmsprop"} or Optimizer class, default="adam"
    lr : float or "auto", default=1e-3
        Learning rate. ``"auto"``: the rate the architecture declares
        (``ArchitectureSpec.default_lr``, see ``LSTMClassifier``).
    weight_decay : float, default=0.0
    epochs : int, default=100
        Maximum passes over the training data.
    batch_size : int, default=32
    shuffle : bool, default=True
        Shuffle the training samples every epoch.
    validation_fraction : float, default=0.0
        Hold out this last fraction of the samples (time order kept, as Keras'
        ``validation_split``) for early stopping. The held-out rows shape nothing
        else: every scaling statistic is learned on the training rows only.
    patience : int or None, default=10
        Epochs without validation improvement before stopping; best weights are
        restored. Only used with ``validation_fraction > 0``.
    clip_grad_norm : float or None, default=None
        Clip the global gradient norm to this value.
    scale_X : bool, default=True
        Standardize each input feature (statistics learned in ``fit``).
    local_scaling : {"standard"} or None, default=None
        ``"standard"``: standardize each input sequence by its own mean and standard
        deviation (per feature, over its valid steps) before the network sees it
        (RevIN-style instance normalization, Kim et al. 2022). The targets are
        scaled by the same window's statistics and mapped back in ``predict``, so
        forecasts of a trending series are made in units of its recent window
        (defined for one input feature, or one target per input feature).
        Written into exported ONNX files.
    lr_schedule : {"plateau", "cosine"} or None, default=None
        Learning-rate schedule (``torch.optim.lr_scheduler``), stepped per epoch:
        ``"plateau"`` halves the rate after ``max(5, epochs // 20)`` epochs without
        improvement of the (validation, else training) loss, down to ``lr / 100``;
        ``"cosine"`` anneals it to 0 over ``epochs``.
    scale_y : bool, default=True
        Standardize the targets for training and undo it in ``predict``, so targets
        like 450 or 4400 need no care from the user.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, shuffling and dropout: same seed, same model.
    device : {"cpu", "cuda", "auto"} or torch.device, default="cpu"
        Where the network trains and predicts; ``"auto"`` picks CUDA when available.
    precision : {"32", "bf16-mixed"}, default="32"
        Arithmetic of training (PyTorch Lightning's names). ``"bf16-mixed"`` runs
        the training forward pass under ``torch.autocast`` in bfloat16 (automatic
        mixed precision): convolutions, linear layers and ``nn.LSTM``/``nn.RNN``
        compute in bfloat16 (``nn.GRU`` and seqpipe's hand-written cells stay
        float32 on the CPU), while the loss, gradients, optimizer and weights are
        float32. Faster where the hardware computes bfloat16 natively: CPUs with
        AMX or AVX-512 BF16 (Intel Xeon since Sapphire Rapids) and NVIDIA GPUs
        since Ampere; elsewhere it can be slower than ``"32"``. ``predict``,
        exported files and ``history_``'s ``valid_loss`` compute in float32 either
        way. Raises ``ValueError`` in ``fit`` on a GPU before Ampere.
    verbose : int, default=0
        1 shows a tqdm progress bar over the epochs, 2 one line per epoch
        (:class:`seqpipe.callbacks.ProgressBar`).
    warm_start : bool, default=False
        Continue training the fitted network instead of starting anew. The data
        must suit it (same feature count, same kind of ``y``); otherwise ``fit``
        raises and the fitted model stays as it was.
    callbacks : list of seqpipe.callbacks.Callback or None, default=None
        Called when training starts, after every epoch (able to stop training) and
        when it ends; see :mod:`seqpipe.callbacks`. ``fit`` works on clones, kept
        as ``callbacks_``. An ``EarlyStopping`` here replaces the one
        ``validation_fraction``/``patience`` build, a ``ProgressBar`` the one of
        ``verbose``.
    torch_num_threads : int or None, default=1
        torch's intra-op threads (``torch.set_num_threads``) while ``fit``,
        ``predict``, ``predict_proba``, ``transform`` and ``score`` run; the
        caller's count is restored when the call returns or raises. None leaves
        torch's setting as it is. Named after what it sets, not ``n_jobs``: in
        scikit-learn ``n_jobs`` means parallel jobs (processes), and these are
        threads within one operator. The default of 1 is measured (README,
        "Threads"): on a busy machine torch's default pool of one thread per core
        made a small fit over 10x slower, while on an idle one more threads won at
        most about 2x (for ``lstm`` with batch 256; ``gru`` got slower). Raise it
        for big models on a machine of your own. torch's setting is process-wide:
        threads of one process that predict at once should use the same value.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network.
    lr_ : float
        The learning rate used (``lr``, or what ``"auto"`` resolved to).
    hidden_size_ : int
        The recurrent width built (``hidden_size``, or what ``"auto"`` resolved to).
    network_params_ : dict
        The parameters the network was built with (``architecture``, ``hidden_size``
        resolved, ``num_layers``, ``bidirectional``, ``dropout``, ``activation``,
        ``recurrent_activation``, ``architecture_options``, ``head_layers``,
        ``head_activation``). Export describes this network; ``set_params`` changes
        only the next fit that builds a new one, and ``warm_start``/``partial_fit``
        raise ValueError if any of them changed.
    local_scaling_ : str or None
        The ``local_scaling`` the network was trained with; ``predict``,
        ``partial_fit`` and export follow it, whatever ``set_params`` changed since.
    history_ : list of dict
        Per-epoch ``train_loss`` (and ``valid_loss``), in scaled units.
    n_features_in_ : int
        Features per time step seen in ``fit``.
    feature_names_in_ : ndarray of str objects of shape (n_features_in_,)
        The columns of a long-format DataFrame seen in ``fit``; only defined then.
    n_epochs_ : int
        Epochs run so far.
    best_epoch_ : int or None
        Epoch whose weights were restored by early stopping.
    callbacks_ : list of seqpipe.callbacks.Callback
        The callbacks of the last ``fit`` (clones of ``callbacks`` and the
        built-ins that ``validation_fraction`` and ``verbose`` add), after training.
    local_target_features_ : ndarray of int or None
        With ``local_scaling``, the input feature whose window statistics scale each
        target column.

    Examples
    --------
    >>> import numpy as np
    >>> from seqpipe import LSTMRegressor
    >>> X = np.arange(10, 100, 10.0)[np.arange(6)[:, None] + np.arange(3)]  # windows of 3
    >>> y = X[:, -1] + 10
    >>> model = LSTMRegressor(hidden_size=16, epochs=300, lr=0.01, random_state=0).fit(X, y)
    >>> model.predict([[70.0, 80.0, 90.0]]).shape
    (1,)
    """

    _parameter_constraints = {
        **SequenceModelBase._parameter_constraints,
        "scale_y": ["boolean"],
        "head": [StrOptions({"dense", "seq2seq"})],
    }

    def __init__(
        self,
        architecture: str = "lstm",
        *,
        hidden_size: int | str = 32,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        activation: str | None = "tanh",
        recurrent_activation: str | None = "sigmoid",
        architecture_options: dict[str, Any] | None = None,
        head: str = "dense",
        head_layers: tuple[int, ...] = (),
        head_activation: str = "relu",
        optimizer: str | type = "adam",
        lr: float | str = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 100,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_fraction: float = 0.0,
        patience: int | None = 10,
        clip_grad_norm: float | None = None,
        scale_X: bool = True,
        local_scaling: str | None = None,
        lr_schedule: str | None = None,
        scale_y: bool = True,
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
        precision: str = "32",
        verbose: int = 0,
        warm_start: bool = False,
        callbacks: list[Callback] | None = None,
        torch_num_threads: int | None = 1,
    ) -> None:
        self.architecture = architecture
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.architecture_options = architecture_options
        self.head = head
        self.head_layers = head_layers
        self.head_activation = head_activation
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.clip_grad_norm = clip_grad_norm
        self.scale_X = scale_X
        self.local_scaling = local_scaling
        self.lr_schedule = lr_schedule
        self.scale_y = scale_y
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.torch_num_threads = torch_num_threads

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LSTMRegressor:
        """Train on sequences ``X`` and targets ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features), or list of arrays
            A 2-D array is (n_samples, n_timesteps) with one feature.
            Sequences; a 3-D array may be NaN-padded at the end for ragged data.
        y : array-like of shape (n_samples,), (n_samples, k) or (n_samples, n_timesteps, k)
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Non-negative weight of each sample's loss (of each of its valid steps for
            per-step ``y``); the loss is ``sum(w_i * loss_i) / sum(w_i)`` per batch,
            and the ``X``/``y`` scaling statistics are weighted the same way. With
            full-batch training (``batch_size >= n_samples``, ``shuffle=False``) a
            weight of 0 equals dropping the sample and a weight of 2 duplicating it.

        Returns
        -------
        self : LSTMRegressor

        Raises
        ------
        ValueError
            For negative or non-finite weights, a length other than ``X``'s, or a zero
            total weight of the training (or validation) rows; nothing fitted changes.
        """
        return self._fit_sequences(X, y, sample_weight)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> LSTMRegressor:
        """Train one epoch on ``X`` and ``y``, continuing the fitted network.

        For data that arrives in chunks or does not fit in memory (dask-ml's
        ``Incremental`` calls this), as scikit-learn's ``MLPRegressor.partial_fit``:
        each call is one pass over the given samples, in batches of ``batch_size``.

        The first call on an unfitted estimator learns the scaling statistics
        (``x_mean_``/``x_scale_``, ``y_mean_``/``y_scale_``) on its chunk and builds
        the network; they are fixed from then on, so **later chunks are scaled with
        the first chunk's statistics** (make the first chunk representative, or use
        ``scale_X=False``/``scale_y=False`` with data scaled beforehand). Later
        calls, and calls after ``fit``, keep training the same network with the same
        optimizer state (Adam's moments). ``lr_schedule`` does not apply: every call
        runs at the constant rate ``lr_``. ``epochs`` does not apply either (one
        epoch per call); ``history_`` and ``n_epochs_`` grow by one per call.
        ``callbacks`` run on clones for each call (kept as ``callbacks_``);
        ``verbose`` shows nothing.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features), or list of arrays
            A chunk of sequences, as for ``fit``; later calls need the same
            ``n_features`` as the first.
        y : array-like of shape (n_samples,), (n_samples, k) or (n_samples, n_timesteps, k)
            Targets of the same layout on every call.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of this chunk's samples, as in ``fit`` (the first call's scaling
            statistics are weighted by them).

        Returns
        -------
        self : LSTMRegressor

        Raises
        ------
        ValueError
            With ``validation_fraction > 0`` (early stopping applies to ``fit``
            only, as ``MLPRegressor`` refuses ``early_stopping`` here), or when a
            later chunk has another feature count or target layout than the fitted
            network; the fitted model is then unchanged.
        """
        return self._partial_fit_sequences(X, y, sample_weight=sample_weight)

    def _check_targets(self, y: Any, X: np.ndarray, lengths: np.ndarray | None) -> Targets:
        if self.head == "seq2seq":
            targets = horizon_targets(y, X)
        else:
            targets = regression_targets(y, X, lengths)
        self._local_target_features(X.shape[2], targets.layout)  # ambiguous units raise here
        return targets

    def _training_targets(
        self,
        targets: Targets,
        X: np.ndarray,
        inputs: LazyInputs,
        n_train: int,
        weights: np.ndarray | None,
    ) -> torch.Tensor:
        self.local_target_features_ = self._local_target_features(X.shape[2], targets.layout)
        values = self._to_local_units(targets.values, X, targets.layout, inverse=False)
        scaled, self.y_mean_, self.y_scale_ = standardize(
            targets, n_train, enabled=self.scale_y, values=values, sample_weight=weights
        )
        return torch.from_numpy(scaled)

    def _scaled_targets(self, targets: Targets, X: np.ndarray, inputs: LazyInputs) -> torch.Tensor:
        values = self._to_local_units(targets.values, X, targets.layout, inverse=False)
        # As standardize(): padded steps (NaN) become 0 and carry no loss (mask).
        scaled = np.nan_to_num((values - self.y_mean_) / self.y_scale_).astype(np.float32)
        return torch.from_numpy(scaled)

    def predict(self, X: Any) -> np.ndarray:
        """Predict targets for sequences ``X``.

        Returns
        -------
        y_pred : ndarray
            Shaped like ``y`` at fit: ``(n,)``, ``(n, k)`` or ``(n, n_timesteps, k)``
            (NaN at the padded steps of ragged input).
        """
        X, lengths = self._validate_X(X, reset=False)
        raw = self._forward(X, lengths).astype(np.float64) * self.y_scale_ + self.y_mean_
        raw = self._to_local_units(raw, X, self.target_layout_, inverse=True)
        return shape_predictions(raw, self.target_layout_, lengths)

    def _local_target_features(self, n_features: int, layout: TargetLayout) -> np.ndarray | None:
        """Input feature of each target column under ``local_scaling`` (the parameter:
        fit calls this; predict reads what fit stored, ``local_target_features_``), else None."""
        if not self.local_scaling:
            return None
        steps = 1
        per_step = layout.n_outputs
        if layout.kind == "horizon":
            steps = layout.output_shape[0]
            per_step = layout.output_shape[1] if len(layout.output_shape) > 1 else 1
        return np.tile(target_features(n_features, per_step), steps)

    def _to_local_units(
        self, y: np.ndarray, X: np.ndarray, layout: TargetLayout, *, inverse: bool
    ) -> np.ndarray:
        """Targets into (or, ``inverse``, out of) each window's own units."""
        columns = self.local_target_features_
        if columns is None:
            return y
        center, scale = window_stats(X)
        center, scale = center[:, columns], scale[:, columns]
        if layout.per_step:
            center, scale = center[:, None, :], scale[:, None, :]
        return y * scale + center if inverse else (y - center) / scale

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² of ``predict(X)`` against ``y`` (:func:`sklearn.metrics.r2_score`,
        weighted by ``sample_weight``); for per-step (3-D) targets, over all valid
        (sequence, step) pairs, each with its sequence's weight, as scikit-learn's
        metrics cannot take 3-D targets."""
        y = np.asarray(y, dtype=np.float64)
        if self.head == "seq2seq":
            y_pred = self.predict(X).reshape(len(y), -1)
            return float(r2_score(y.reshape(len(y), -1), y_pred, sample_weight=sample_weight))
        if y.ndim != 3:
            return super().score(X, y, sample_weight=sample_weight)
        _, lengths = self._validate_X(X, reset=False)  # the lengths, for the step mask
        # The original X: a long-format frame keeps its feature names for the check.
        y_pred = self.predict(X)
        valid = step_mask(lengths, y.shape[0], y.shape[1])
        weights = None
        if sample_weight is not None:
            weights = np.broadcast_to(np.asarray(sample_weight)[:, None], valid.shape)[valid]
        return float(r2_score(y[valid], y_pred[valid], sample_weight=weights))
