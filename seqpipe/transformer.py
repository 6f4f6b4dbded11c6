"""LSTMTransformer: a fitted recurrent encoder as a scikit-learn transformer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import type_of_target

from seqpipe._base import SequenceModelBase
from seqpipe._chunks import row_slices
from seqpipe._output import SequenceOutputMixin
from seqpipe._targets import (
    Targets,
    class_targets,
    next_step_targets,
    regression_targets,
    shift_one_step,
    standardize,
)
from seqpipe._training import LazyInputs
from seqpipe.callbacks import Callback


class LSTMTransformer(
    SequenceOutputMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, SequenceModelBase
):
    """Recurrent encoder whose ``transform`` returns each sequence's final hidden
    state, so any scikit-learn model can sit behind it.

    ``fit`` trains the body with a temporary head (see ``task``); ``transform``
    returns the body's summary of each sequence (its last valid step), which has
    ``hidden_size_ * (2 if bidirectional else 1)`` columns for the built-in
    architectures (the body's ``output_size`` in general).

    Parameters
    ----------
    architecture : str, default="lstm"
        Registered architecture name: a built-in (``"lstm"``, ``"gru"``, ``"rnn"``,
        ``"peephole_lstm"``, ``"cifg_lstm"``) or one a plugin adds; see
        :func:`seqpipe.list_architectures`.
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
    activation : str or None, default="tanh"
        Keras-style activation of the candidate and output (``None``: linear).
    recurrent_activation : str or None, default="sigmoid"
        Keras-style activation of the gates (``None``: linear).
    architecture_options : dict or None, default=None
        Options specific to the chosen architecture.
    head_layers : tuple of int, default=()
        Hidden Dense layers of the training head (not part of ``transform``'s output).
    head_activation : {"relu", "tanh", "sigmoid", "linear"}, default="relu"
        Activation of ``head_layers``.
    optimizer : {"adam", "adamw", "sgd", "rmsprop"} or Optimizer class, default="adam"
        A class is called as ``optimizer(params, lr=lr, weight_decay=weight_decay)``.
    lr : float or "auto", default=1e-3
        Learning rate. ``"auto"``: the rate the architecture declares
        (``ArchitectureSpec.default_lr``, see ``LSTMClassifier``).
    weight_decay : float, default=0.0
        L2 penalty passed to the optimizer.
    epochs : int, default=100
        Maximum passes over the training data.
    batch_size : int, default=32
        Sequences per gradient step.
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
        (RevIN-style instance normalization, Kim et al. 2022). Written into exported
        ONNX files.
    lr_schedule : {"plateau", "cosine"} or None, default=None
        Learning-rate schedule (``torch.optim.lr_scheduler``), stepped per epoch:
        ``"plateau"`` halves the rate after ``max(5, epochs // 20)`` epochs without
        improvement of the (validation, else training) loss, down to ``lr / 100``;
        ``"cosine"`` anneals it to 0 over ``epochs``.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, shuffling and dropout: same seed, same model.
        The caller's global torch RNG is left untouched.
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
    task : {"auto", "forecast", "regression", "classification"}, default="auto"
        What the encoder learns to do:

        * ``"forecast"``: predict every next time step of ``X`` from the steps
          before it: self-supervised, no labels needed (``"auto"`` without ``y``);
        * ``"classification"``: predict ``y``'s class (``"auto"`` for discrete ``y``);
        * ``"regression"``: predict ``y``, standardized (``"auto"`` for continuous
          ``y``); ``y`` may be 1-D, 2-D or per step (3-D).
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
    task_ : str
        The task ``fit`` trained for (``"auto"`` resolved).
    module_ : torch.nn.Module
        The trained network: the architecture's body and the head.
    optimizer_ : torch.optim.Optimizer
        The optimizer built from ``optimizer``, ``lr`` and ``weight_decay``.
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
    device_ : torch.device
        The device ``device`` resolved to.
    history_ : list of dict
        One record per epoch: ``epoch``, ``train_loss`` (in the training loss's
        units), ``valid_loss`` with ``validation_fraction > 0``, and ``seconds``.
    n_epochs_ : int
        Epochs run so far.
    best_epoch_ : int or None
        Epoch whose weights were restored by early stopping.
    callbacks_ : list of seqpipe.callbacks.Callback
        The callbacks of the last ``fit`` (clones of ``callbacks`` and the
        built-ins that ``validation_fraction`` and ``verbose`` add), after training.
    n_features_in_ : int
        Features per time step seen in ``fit``.
    feature_names_in_ : ndarray of str objects of shape (n_features_in_,)
        The columns of a long-format DataFrame seen in ``fit``; only defined then.
    x_mean_, x_scale_ : ndarray of shape (n_features_in_,)
        Input standardization learned in ``fit`` on the training rows, float64
        (0 and 1 with ``scale_X=False``).

    See Also
    --------
    seqpipe.LSTMRegressor, seqpipe.LSTMClassifier : the same networks as predictors.

    Notes
    -----
    With ``set_output(transform="pandas")`` (or a Pipeline's), ``transform`` returns a
    DataFrame with columns ``get_feature_names_out()`` (``lstmtransformer0``, ...),
    indexed like ``X`` when ``X`` is a DataFrame, and by the instance labels when
    ``X`` is a long-format frame (one row per instance).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> from seqpipe import LSTMTransformer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 8, 2))
    >>> y = X[:, -1, 0]
    >>> pipe = make_pipeline(LSTMTransformer(hidden_size=4, epochs=5, random_state=0), Ridge())
    >>> pipe.fit(X, y).predict(X[:3]).shape
    (3,)
    >>> LSTMTransformer(hidden_size=4, epochs=2, random_state=0).fit_transform(X).shape
    (30, 4)
    """

    _parameter_constraints = {
        **SequenceModelBase._parameter_constraints,
        "task": [StrOptions({"auto", "forecast", "regression", "classification"})],
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
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
        precision: str = "32",
        verbose: int = 0,
        warm_start: bool = False,
        task: str = "auto",
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
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self.warm_start = warm_start
        self.task = task
        self.callbacks = callbacks
        self.torch_num_threads = torch_num_threads

    def _resolve_task(self, y: Any) -> str:
        if self.task != "auto":
            return self.task
        if y is None:
            return "forecast"
        kind = type_of_target(y)
        return "classification" if kind in ("binary", "multiclass") else "regression"

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> LSTMTransformer:
        """Train the encoder on ``X`` (and ``y`` unless ``task="forecast"``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features), or list of arrays
        y : array-like or None, default=None
            Targets of the training task (see ``task``).
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Non-negative weight of each sample's training loss (of each of its valid
            steps for per-step targets and ``task="forecast"``), and of its part in
            the scaling statistics; as in :meth:`LSTMRegressor.fit`.

        Returns
        -------
        self : LSTMTransformer
        """
        return self._fit_sequences(X, y, sample_weight)

    def _check_targets(self, y: Any, X: np.ndarray, lengths: np.ndarray | None) -> Targets:
        task = self._resolve_task(y)
        if task == "forecast":
            return next_step_targets(X, lengths)
        if y is None:
            raise ValueError(f"task={task!r} requires y, but the target y is None")
        if task == "classification":
            return class_targets(y, X, "LSTMTransformer(task='classification')")
        return regression_targets(y, X, lengths)

    def _training_targets(
        self,
        targets: Targets,
        X: np.ndarray,
        inputs: LazyInputs,
        n_train: int,
        weights: np.ndarray | None,
    ) -> torch.Tensor:
        self.task_ = targets.task
        if targets.task == "forecast":
            # The next step as the network reads it: after every input scaling.
            # Filled a chunk at a time: the targets plus one chunk of inputs.
            shifted = np.empty(inputs.shape, dtype=np.float32)
            for rows in row_slices(inputs.shape):
                shifted[rows] = shift_one_step(inputs[rows].numpy())
            return torch.from_numpy(shifted)
        if targets.task == "classification":
            return torch.from_numpy(targets.values)
        scaled, _, _ = standardize(targets, n_train, sample_weight=weights)
        return torch.from_numpy(scaled)

    @property
    def _n_features_out(self) -> int:
        """Width of ``transform``'s output (for ``get_feature_names_out``)."""
        return int(self.module_.body.output_size)

    def transform(self, X: Any) -> Any:
        """Each sequence's final hidden state, shape ``(n_samples, n_features_out)``.

        An array, or a DataFrame under ``set_output(transform="pandas")`` (see Notes).
        """
        # Keep float32 input float32, as scikit-learn transformers do; else float64.
        dtype = np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64
        source = X
        X, lengths = self._validate_X(X, reset=False)
        out = self._forward(X, lengths, encode=True).astype(dtype, copy=False)
        return self._wrap_output(out, source)
