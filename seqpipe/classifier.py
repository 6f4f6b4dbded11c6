"""LSTMClassifier: a recurrent network as a scikit-learn classifier."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    unique_labels,
)
from sklearn.utils.validation import check_consistent_length, column_or_1d

from seqpipe._base import SequenceModelBase
from seqpipe._targets import TargetLayout, Targets, class_targets
from seqpipe._training import LazyInputs
from seqpipe.callbacks import Callback


class LSTMClassifier(ClassifierMixin, SequenceModelBase):
    """Recurrent-network classifier for sequence data, in the scikit-learn API.

    Labels may be of any type (strings too); ``predict`` returns labels from
    ``classes_`` and ``predict_proba`` their probabilities. Binary and multiclass.
    The network reads each sequence's summary (its last valid step) and is trained
    with cross-entropy.

    Parameters
    ----------
    architecture : str, default="lstm"
        Registered architecture name: a built-in (``"lstm"``, ``"gru"``, ``"rnn"``,
        ``"peephole_lstm"``, ``"cifg_lstm"``) or one a plugin adds; see
        :func:`seqpipe.list_architectures`.
    hidden_size : int or "auto", default="auto"
        Units per recurrent layer and direction. ``"auto"``: the width the
        architecture declares (``ArchitectureSpec.default_hidden_size``; 32 when it
        declares none): 8 for ``lstm_fcn``/``mlstm_fcn``, the default of the
        authors' code (``lstm_fcn`` on OSULeaf: 0.919 with 32 cells, 0.971 with 8; on
        ArrowHead 0.827 and 0.805, ``bench/ucr.py``); 32 for the others. The width
        built is ``hidden_size_``.
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
        Hidden Dense layers between the recurrent body and the output layer.
    head_activation : {"relu", "tanh", "sigmoid", "linear"}, default="relu"
        Activation of ``head_layers``.
    optimizer : {"adam", "adamw", "sgd", "rmsprop"} or Optimizer class, default="adam"
        A class is called as ``optimizer(params, lr=lr, weight_decay=weight_decay)``.
    lr : float or "auto", default="auto"
        Learning rate. ``"auto"``: the rate the architecture declares
        (``ArchitectureSpec.default_lr``; 1e-3 when it declares none): 1e-2 for
        ``lstm``, ``gru``, ``peephole_lstm`` and ``cifg_lstm``, whose chrono-initialised
        gates learn long series at that rate (plain ``lstm``: 0.79 instead of 0.55 on
        PickupGestureWiimoteZ, 0.61 instead of 0.48 on OSULeaf, ``bench/ucr.py``,
        measured before per-series scaling became the default);
        1e-3 for ``lstm_fcn``/``mlstm_fcn`` (the papers' rate) and ``rnn``. The rate
        used is ``lr_``.
    weight_decay : float, default=0.0
        L2 penalty passed to the optimizer.
    epochs : int, default=150
        Maximum passes over the training data. More than the regressor's 100:
        ``lstm_fcn`` gained 1-1.5 points on ArrowHead and PickupGestureWiimoteZ and
        its seed-to-seed spread fell under 3 points (``bench/ucr.py``).
    batch_size : int, default=8
        Sequences per gradient step. Smaller than the regressor's 32 because
        classification sets are often tens to hundreds of sequences: on UCR sets
        ``lstm_fcn`` reached 0.83-0.86 on ArrowHead (0.50-0.63 with 32) and 0.91 on
        OSULeaf (0.85 with 32), at a similar fit time (``bench/ucr.py``).
    shuffle : bool, default=True
        Shuffle the training samples every epoch.
    validation_fraction : float, default=0.0
        Hold out this last fraction of the samples (time order kept, as Keras'
        ``validation_split``) for early stopping. The held-out rows shape nothing
        else: every scaling statistic is learned on the training rows only.
    patience : int or None, default=10
        Epochs without validation improvement before stopping; best weights are
        restored. Only used with ``validation_fraction > 0``.
    clip_grad_norm : float or None, default=1.0
        Clip the global gradient norm to this value (Pascanu et al. 2013); None: no
        clipping. 1.0 keeps the recurrent bodies stable at ``lr="auto"``'s 1e-2 and
        lifted ``lstm_fcn`` on ArrowHead from 0.806 to 0.829 (3 seeds, ``bench/ucr.py``).
    scale_X : bool, default=True
        Standardize each input feature (statistics learned in ``fit``).
    local_scaling : {"standard"} or None, default="standard"
        ``"standard"``: standardize each input sequence by its own mean and standard
        deviation (per feature, over its valid steps) before the network sees it
        (z-normalization, the UCR/UEA archive's convention; RevIN-style instance
        normalization, Kim et al. 2022). Written into exported ONNX files. The
        classifier's default: sets whose series differ in level and amplitude train
        far better (``lstm_fcn`` on PLAID, 30 epochs: 0.829 with it, 0.277 without;
        ``bench/ucr.py``). None keeps each series' level and amplitude (use it when
        they carry the class, or to export a streaming file, which cannot scale a
        window it has not yet seen).
    lr_schedule : {"plateau", "cosine"} or None, default="cosine"
        Learning-rate schedule (``torch.optim.lr_scheduler``), stepped per epoch:
        ``"plateau"`` halves the rate after ``max(5, epochs // 20)`` epochs without
        improvement of the (validation, else training) loss, down to ``lr / 100``;
        ``"cosine"`` anneals it to 0 over ``epochs``. The classifier defaults to
        ``"cosine"``: ending training at a small rate makes the final model depend
        far less on the seed (``lstm_fcn`` on ArrowHead, 3 seeds at 100 epochs:
        0.77-0.82 with it, 0.62-0.86 without; ``bench/ucr.py``).
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
        since Ampere (``lstm_fcn`` on ArrowHead, on an AMX CPU: 0.07 s an epoch
        instead of 0.17, accuracy 0.819 vs 0.821 over 3 seeds; ``bench/ucr.py
        --precision 32 bf16-mixed``); elsewhere it can be slower than ``"32"``. ``predict``,
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
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, as scikit-learn defines them
        (:func:`sklearn.utils.class_weight.compute_class_weight`), multiplied into
        ``fit``'s ``sample_weight``: a dict maps labels to weights (1 for labels it
        leaves out); ``"balanced"`` gives class ``c`` the weight ``n_samples /
        (n_classes * count_c)``, counts summed over ``sample_weight`` when given.
        Computed over all rows, validation split included, as scikit-learn's
        ``SGDClassifier`` does; the validation loss is weighted the same way.
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
    classes_ : ndarray of shape (n_classes,)
        The class labels seen in ``fit``, sorted; the columns of ``predict_proba``.
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
    seqpipe.LSTMRegressor : the same network for regression targets.
    seqpipe.LSTMTransformer : the trained encoder as features for any estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from seqpipe import LSTMClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6, 1))
    >>> y = np.where(X[:, -1, 0] > X[:, 0, 0], "up", "down")  # ends above its start
    >>> clf = LSTMClassifier(hidden_size=8, epochs=30, random_state=0).fit(X, y)
    >>> clf.classes_.tolist()
    ['down', 'up']
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _parameter_constraints = {
        **SequenceModelBase._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        architecture: str = "lstm",
        *,
        hidden_size: int | str = "auto",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        activation: str | None = "tanh",
        recurrent_activation: str | None = "sigmoid",
        architecture_options: dict[str, Any] | None = None,
        head_layers: tuple[int, ...] = (),
        head_activation: str = "relu",
        optimizer: str | type = "adam",
        lr: float | str = "auto",
        weight_decay: float = 0.0,
        epochs: int = 150,
        batch_size: int = 8,
        shuffle: bool = True,
        validation_fraction: float = 0.0,
        patience: int | None = 10,
        clip_grad_norm: float | None = 1.0,
        scale_X: bool = True,
        local_scaling: str | None = "standard",
        lr_schedule: str | None = "cosine",
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
        precision: str = "32",
        verbose: int = 0,
        warm_start: bool = False,
        callbacks: list[Callback] | None = None,
        class_weight: dict[Any, float] | str | None = None,
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
        self.callbacks = callbacks
        self.class_weight = class_weight
        self.torch_num_threads = torch_num_threads

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LSTMClassifier:
        """Train on sequences ``X`` and class labels ``y`` (1-D, any label type).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features), or list of arrays
            Sequences; a 2-D array is (n_samples, n_timesteps) with one feature.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Non-negative weight of each sample's cross-entropy; the loss is
            ``sum(w_i * loss_i) / sum(w_i)`` per batch and the ``X`` scaling
            statistics are weighted the same way (``class_weight`` multiplies in).
            With full-batch training (``batch_size >= n_samples``, ``shuffle=False``)
            a weight of 0 equals dropping the sample and a weight of 2 duplicating
            it. ``classes_`` holds every label of ``y``, zero-weighted ones too.

        Returns
        -------
        self : LSTMClassifier

        Raises
        ------
        ValueError
            For negative or non-finite weights, a length other than ``X``'s, a zero
            total weight of the training (or validation) rows, or fewer than two
            classes of positive weight; nothing fitted changes.
        """
        return self._fit_sequences(X, y, sample_weight)

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> LSTMClassifier:
        """Train one epoch on ``X`` and ``y``, continuing the fitted network.

        For data that arrives in chunks or does not fit in memory (dask-ml's
        ``Incremental`` calls this), as scikit-learn's ``MLPClassifier.partial_fit``:
        each call is one pass over the given samples, in batches of ``batch_size``.

        The first call on an unfitted estimator fixes ``classes_`` from ``classes``,
        learns the input scaling (``x_mean_``/``x_scale_``) on its chunk and builds
        the network; the statistics are fixed from then on, so **later chunks are
        scaled with the first chunk's statistics** (make the first chunk
        representative, or use ``scale_X=False`` with data scaled beforehand).
        Later calls, and calls after ``fit``, keep training the same network with
        the same optimizer state (Adam's moments). ``lr_schedule`` (``"cosine"`` by
        default) does not apply: every call runs at the constant rate ``lr_``.
        ``epochs`` does not apply either (one epoch per call); ``history_`` and
        ``n_epochs_`` grow by one per call. ``callbacks`` run on clones for each
        call (kept as ``callbacks_``); ``verbose`` shows nothing.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features), or list of arrays
            A chunk of sequences, as for ``fit``; later calls need the same
            ``n_features`` as the first.
        y : array-like of shape (n_samples,)
            Labels of this chunk, each one of ``classes_``; a chunk need not hold
            every class.
        classes : array-like of shape (n_classes,) or None, default=None
            Every label of the whole data set (e.g. ``np.unique(y_all)``). Required
            on the first call; later calls may omit it or must pass the same.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of this chunk's samples, as in ``fit``. ``class_weight`` is for
            ``fit`` only (per chunk, "balanced" would change from call to call).

        Returns
        -------
        self : LSTMClassifier

        Raises
        ------
        ValueError
            Without ``classes`` on the first call, with other ``classes`` later, for
            labels outside ``classes``, with ``validation_fraction > 0`` (early
            stopping applies to ``fit`` only, as ``MLPClassifier`` refuses
            ``early_stopping`` here), or for a later chunk with another feature
            count; the fitted model is then unchanged.
        """
        if self.class_weight is not None:
            # Not silently dropped: partial_fit has no sample weights to multiply into.
            raise ValueError(
                f"class_weight={self.class_weight!r} applies to fit only; partial_fit does "
                "not weight classes (set class_weight=None for partial_fit; the fitted "
                "model is unchanged)"
            )
        return self._partial_fit_sequences(X, y, classes, sample_weight)

    def _check_targets(self, y: Any, X: np.ndarray, lengths: np.ndarray | None) -> Targets:
        return class_targets(y, X, "LSTMClassifier")

    def _sample_weights(
        self, sample_weight: Any, X: np.ndarray, targets: Targets
    ) -> np.ndarray | None:
        """``sample_weight`` times the weight of each sample's class (``class_weight``)."""
        weights = super()._sample_weights(sample_weight, X, targets)
        if self.class_weight is not None:
            with np.errstate(divide="ignore"):  # a class of zero total weight: see below
                per_class = compute_class_weight(
                    self.class_weight,
                    classes=targets.classes,
                    y=targets.classes[targets.values],
                    sample_weight=weights,
                )
            per_sample = per_class[targets.values]
            # "balanced" gives a class whose samples all weigh 0 an infinite weight;
            # those samples still weigh 0.
            if weights is not None:
                # np.where would still compute 0 * inf (and warn): multiply only where > 0.
                weights = np.multiply(
                    weights, per_sample, where=weights > 0, out=np.zeros_like(weights)
                )
            else:
                weights = per_sample
        if weights is not None:
            if not (np.isfinite(weights).all() and (weights >= 0).all()):
                raise ValueError(
                    f"class_weight must give every class a non-negative finite weight, got "
                    f"{self.class_weight!r}"
                )
            present = targets.classes[np.unique(targets.values[weights > 0])]
            if len(present) < 2:
                raise ValueError(
                    "LSTMClassifier needs samples of at least 2 classes with a positive "
                    f"weight; sample_weight and class_weight leave only the class "
                    f"{present.tolist()}"
                )
        return weights

    def _check_partial_targets(
        self, y: Any, X: np.ndarray, lengths: np.ndarray | None, classes: Any
    ) -> Targets:
        # scikit-learn's rule and messages for `classes`, applied to a stand-in so
        # nothing is stored on self before every check has passed.
        state = SimpleNamespace(classes_=getattr(self, "classes_", None))
        _check_partial_fit_first_call(state, classes)
        known = np.asarray(state.classes_)
        if len(known) < 2:
            raise ValueError(
                f"LSTMClassifier needs at least 2 classes; classes={known.tolist()} has "
                f"{len(known)}"
            )
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        unique_labels(known, y)  # a mix of string and number labels is an error here
        unseen = np.unique(y[~np.isin(y, known)])
        if unseen.size:
            raise ValueError(
                f"y holds label(s) {unseen.tolist()} that are not in classes_ "
                f"{known.tolist()}; the first partial_fit call's `classes` must list "
                f"every label of the whole data set (the fitted model is unchanged)"
            )
        codes = np.searchsorted(known, y).astype(np.int64)
        return Targets(codes, TargetLayout("classes", len(known)), None, "classification", known)

    def _scaled_targets(self, targets: Targets, X: np.ndarray, inputs: LazyInputs) -> torch.Tensor:
        return torch.from_numpy(targets.values)

    def _training_targets(
        self,
        targets: Targets,
        X: np.ndarray,
        inputs: LazyInputs,
        n_train: int,
        weights: np.ndarray | None,
    ) -> torch.Tensor:
        self.classes_ = targets.classes
        return torch.from_numpy(targets.values)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns ordered as ``classes_``."""
        X, lengths = self._validate_X(X, reset=False)
        logits = torch.from_numpy(self._forward(X, lengths))
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label for each sequence."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
