"""LSTMClassifier: a recurrent network as a scikit-learn classifier."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, column_or_1d

from seqpipe._base import SequenceModelBase
from seqpipe._targets import TargetLayout
from seqpipe._training import cross_entropy_loss


class LSTMClassifier(ClassifierMixin, SequenceModelBase):
    """Recurrent-network classifier for sequence data, in the scikit-learn API.

    Labels may be of any type (strings too); ``predict`` returns labels from
    ``classes_`` and ``predict_proba`` their probabilities. Binary and multiclass.
    Parameters are those of :class:`seqpipe.LSTMRegressor` without ``scale_y``.

    Examples
    --------
    >>> import numpy as np
    >>> from seqpipe import LSTMClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 6, 1))
    >>> y = np.where(X[:, :, 0].sum(axis=1) > 0, "up", "down")
    >>> clf = LSTMClassifier(hidden_size=8, epochs=30, random_state=0).fit(X, y)
    >>> clf.classes_.tolist()
    ['down', 'up']
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

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
        lr: float = 1e-3,
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

    def fit(self, X: Any, y: Any) -> LSTMClassifier:
        """Train on sequences ``X`` and class labels ``y`` (1-D, any label type).

        Returns
        -------
        self : LSTMClassifier
        """
        self._validate_params()
        X, lengths = self._validate_X(X, reset=True)
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(
                f"LSTMClassifier needs samples of at least 2 classes in the data; got 1 class "
                f"({self.classes_[0]!r})"
            )
        self._fit_input_scaling(X)
        codes = torch.from_numpy(encoder.transform(y).astype(np.int64))
        layout = TargetLayout("classes", len(self.classes_))
        self._fit_network(X, lengths, codes, None, cross_entropy_loss, layout)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns ordered as ``classes_``."""
        X, lengths = self._validate_X(X, reset=False)
        logits = torch.from_numpy(self._forward(X, lengths))
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label for each sequence."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
