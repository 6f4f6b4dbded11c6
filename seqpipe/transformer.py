"""LSTMTransformer: a fitted recurrent encoder as a scikit-learn transformer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import type_of_target

from seqpipe._base import SequenceModelBase, feature_stats
from seqpipe._output import SequenceOutputMixin
from seqpipe._sequences import step_mask
from seqpipe._targets import TargetLayout, as_matrix, check_regression_targets
from seqpipe._training import cross_entropy_loss, mse_loss


class LSTMTransformer(
    SequenceOutputMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, SequenceModelBase
):
    """Recurrent encoder whose ``transform`` returns each sequence's final hidden
    state, so any scikit-learn model can sit behind it.

    ``fit`` trains the body with a temporary head (see ``task``); ``transform``
    returns the body's summary of each sequence (its last valid step), which has
    ``hidden_size * (2 if bidirectional else 1)`` columns for the built-in
    architectures (the body's ``output_size`` in general).

    Parameters
    ----------
    architecture : str, default="lstm"
        Registered architecture name: a built-in (``"lstm"``, ``"gru"``, ``"rnn"``,
        ``"peephole_lstm"``, ``"cifg_lstm"``) or one a plugin adds; see
        :func:`seqpipe.list_architectures`.
    hidden_size : int, default=32
        Units per recurrent layer and direction.
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
        ``validation_split``) for early stopping.
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
    verbose : int, default=0
        1 shows a progress bar, 2 one line per epoch.
    warm_start : bool, default=False
        Continue training the fitted network instead of starting anew.
    task : {"auto", "forecast", "regression", "classification"}, default="auto"
        What the encoder learns to do:

        * ``"forecast"``: predict every next time step of ``X`` from the steps
          before it: self-supervised, no labels needed (``"auto"`` without ``y``);
        * ``"classification"``: predict ``y``'s class (``"auto"`` for discrete ``y``);
        * ``"regression"``: predict ``y``, standardized (``"auto"`` for continuous
          ``y``); ``y`` may be 1-D, 2-D or per step (3-D).

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
    device_ : torch.device
        The device ``device`` resolved to.
    history_ : list of dict
        One record per epoch: ``epoch``, ``train_loss`` (in the training loss's
        units), ``valid_loss`` with ``validation_fraction > 0``, and ``seconds``.
    n_epochs_ : int
        Epochs run so far.
    best_epoch_ : int or None
        Epoch whose weights were restored by early stopping.
    n_features_in_ : int
        Features per time step seen in ``fit``.
    feature_names_in_ : ndarray of str objects of shape (n_features_in_,)
        The columns of a long-format DataFrame seen in ``fit``; only defined then.
    x_mean_, x_scale_ : ndarray of shape (n_features_in_,)
        Input standardization learned in ``fit`` (0 and 1 with ``scale_X=False``).

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
        hidden_size: int = 32,
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
        verbose: int = 0,
        warm_start: bool = False,
        task: str = "auto",
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
        self.verbose = verbose
        self.warm_start = warm_start
        self.task = task

    def _resolve_task(self, y: Any) -> str:
        if self.task != "auto":
            return self.task
        if y is None:
            return "forecast"
        kind = type_of_target(y)
        return "classification" if kind in ("binary", "multiclass") else "regression"

    def fit(self, X: Any, y: Any = None) -> LSTMTransformer:
        """Train the encoder on ``X`` (and ``y`` unless ``task="forecast"``).

        Returns
        -------
        self : LSTMTransformer
        """
        self._validate_params()
        X, lengths = self._validate_X(X, reset=True)
        self._fit_input_scaling(X)
        self.task_ = task = self._resolve_task(y)
        if task == "forecast":
            self._fit_forecast(X, lengths)
        elif task == "classification":
            if y is None:
                raise ValueError("task='classification' requires y, but the target y is None")
            codes = LabelEncoder().fit_transform(np.asarray(y).ravel())
            n_classes = int(codes.max()) + 1
            self._fit_network(
                X,
                lengths,
                torch.from_numpy(codes.astype(np.int64)),
                None,
                cross_entropy_loss,
                TargetLayout("classes", max(n_classes, 2)),
            )
        else:
            y, layout, mask = check_regression_targets(y, X, lengths)
            mean, scale = feature_stats(as_matrix(y, layout, mask))
            y = (y.reshape(*y.shape[: 2 if layout.per_step else 1], -1) - mean) / scale
            self._fit_network(
                X,
                lengths,
                torch.from_numpy(np.nan_to_num(y).astype(np.float32)),
                mask,
                mse_loss,
                layout,
            )
        self._n_features_out = int(self.module_.body.output_size)
        return self

    def _fit_forecast(self, X: np.ndarray, lengths: np.ndarray | None) -> None:
        n, t, _ = X.shape
        if t < 2 or (lengths is not None and lengths.min() < 2):
            raise ValueError(
                "task='forecast' learns to predict each next step, so every sequence needs "
                "at least 2 time steps"
            )
        # Step t's target is the (scaled) input at t + 1; the last valid step has none.
        target = np.nan_to_num((X[:, 1:] - self.x_mean_) / self.x_scale_)
        target = np.concatenate([target, np.zeros_like(X[:, :1])], axis=1)
        valid = step_mask(None if lengths is None else lengths - 1, n, t)
        if lengths is None:
            valid[:, -1] = False
        self._fit_network(
            X,
            lengths,
            torch.from_numpy(target.astype(np.float32)),
            valid,
            mse_loss,
            TargetLayout("per_step", X.shape[2]),
        )

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
