"""Lift any 2-D scikit-learn transformer to sequence data, one time step per row."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from seqpipe.preprocessing._scaler import (
    _Batch,
    _feature_names_out,
    _SequenceOutput,
    _validate_batch,
)


def _inner_has(attr: str):
    """Expose a method only when the wrapped transformer has it (as Pipeline does)."""

    def check(self: FeatureWiseTransformer) -> bool:
        return hasattr(getattr(self, "transformer_", self.transformer), attr)

    return check


class FeatureWiseTransformer(_SequenceOutput, TransformerMixin, BaseEstimator):
    """Apply a 2-D scikit-learn transformer to every time step of sequence data.

    Sequences ``(n_samples, n_timesteps, n_features)`` are viewed as a table of
    ``n_samples * n_timesteps`` rows with ``n_features`` columns, so the wrapped
    transformer learns one set of statistics per feature, shared by all samples
    and time steps. Only valid time steps are passed to it: NaN padding (whole
    trailing steps that are NaN in every feature) is skipped in ``fit`` and stays
    NaN in the output.

    Input layouts are those of :class:`SequenceScaler`: 3-D arrays, 2-D
    ``(n_samples, n_timesteps)`` arrays with one feature (returned 2-D), lists
    of 1-D/2-D sequences of different lengths (returned as lists), and long-format
    DataFrames (returned as DataFrames with the same index and columns).

    Parameters
    ----------
    transformer : estimator
        Any scikit-learn transformer that maps ``F`` features to ``F`` features,
        such as ``MinMaxScaler``, ``RobustScaler``, ``PowerTransformer`` or
        ``QuantileTransformer``. It is cloned in ``fit``; the parameter itself is
        never fitted.

    Attributes
    ----------
    transformer_ : estimator
        The fitted clone of ``transformer``.
    n_features_in_ : int
        Number of features: ``X.shape[2]`` for 3-D input, 1 for 2-D input.
    feature_names_in_ : ndarray of str objects of shape (n_features_in_,)
        The columns of a long-format DataFrame seen in ``fit``; only defined then.
    n_samples_seen_ : int
        Number of sequences seen in ``fit``.

    See Also
    --------
    SequenceScaler : Standardization without the wrapper.

    Notes
    -----
    ``y`` is not passed on: it labels sequences, not time steps, so the wrapped
    transformer is always fitted unsupervised. Transformers that change the
    number of features (one-hot encoding, PCA with fewer components, feature
    selection) are rejected with a ``ValueError``. ``inverse_transform`` exists
    only if the wrapped transformer has one.

    ``set_output`` works as for :class:`SequenceScaler`: 2-D results become
    DataFrames, 3-D results stay arrays, lists stay lists, and long-format frames
    stay frames. It configures this wrapper's output only; the wrapped transformer
    always works on arrays of rows.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from seqpipe.preprocessing import FeatureWiseTransformer
    >>> X = np.array([[[0.0, 100.0], [5.0, 200.0]],
    ...               [[10.0, 300.0], [np.nan, np.nan]]])   # second sequence is padded
    >>> fw = FeatureWiseTransformer(MinMaxScaler()).fit(X)
    >>> fw.transform(X)
    array([[[0. , 0. ],
            [0.5, 0.5]],
    <BLANKLINE>
           [[1. , 1. ],
            [nan, nan]]])
    >>> fw.transformer_.data_max_
    array([ 10., 300.])
    """

    def __init__(self, transformer: Any):
        self.transformer = transformer

    def fit(self, X: Any, y: Any = None) -> FeatureWiseTransformer:
        """Fit a clone of ``transformer`` on every valid time step of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), list of arrays, or long-format DataFrame
            Sequences to learn from; NaN padding is skipped.
        y : None
            Ignored (see Notes).

        Returns
        -------
        self : FeatureWiseTransformer
            The fitted wrapper.
        """
        if not (hasattr(self.transformer, "fit") and hasattr(self.transformer, "transform")):
            raise TypeError(
                "FeatureWiseTransformer needs a scikit-learn transformer with fit and "
                f"transform methods; got {self.transformer!r}."
            )
        batch = _validate_batch(X, self, reset=True)
        rows = batch.rows()
        transformer = clone(self.transformer).fit(rows)
        self.transformer_ = transformer
        self.n_features_in_ = batch.n_features
        self.n_samples_seen_ = batch.n_samples
        # Catch a feature-count change at fit time, not at the first transform in
        # production; one row is enough to see the output width. It is a copy because
        # a transformer with copy=False would otherwise overwrite the caller's X.
        self._check_width(transformer.transform(rows[:1].copy()), "transform")
        return self

    def transform(self, X: Any) -> Any:
        """Transform every valid time step with the fitted transformer.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), list of arrays, or long-format DataFrame
            Sequences with the features seen in fit; any number of time steps.

        Returns
        -------
        X_tr : ndarray, list of ndarray or DataFrame
            Transformed data in the layout of ``X``, padding still NaN.
        """
        check_is_fitted(self)
        batch = _validate_batch(X, self, reset=False)
        return self._wrap_output(self._map(batch, self.transformer_.transform, "transform"), X)

    @available_if(_inner_has("inverse_transform"))
    def inverse_transform(self, X: Any) -> Any:
        """Apply the wrapped transformer's ``inverse_transform`` to every time step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), list of arrays, or long-format DataFrame
            Transformed sequences.

        Returns
        -------
        X_original : ndarray, list of ndarray or DataFrame
            Data in the original space, in the layout of ``X``.
        """
        check_is_fitted(self)
        batch = _validate_batch(X, self, reset=False)
        return self._map(batch, self.transformer_.inverse_transform, "inverse_transform")

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Feature names of the output, which are those of the input.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Names of the ``n_features_in_`` features; ``x0, x1, ...`` when None.

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per feature.
        """
        return _feature_names_out(self, input_features)

    def _map(self, batch: _Batch, method: Any, method_name: str) -> Any:
        out = self._check_width(method(batch.rows()), method_name)
        return batch.scatter(out)

    def _check_width(self, out: Any, method_name: str) -> np.ndarray:
        if sp.issparse(out):
            out = out.toarray()
        out = np.asarray(out)
        width = out.shape[1] if out.ndim == 2 else None
        if width != self.n_features_in_:
            got = f"{width} features" if width is not None else f"shape {out.shape}"
            raise ValueError(
                f"FeatureWiseTransformer needs a transformer that keeps the number of "
                f"features, but {self.transformer_!r}.{method_name} turned "
                f"{self.n_features_in_} features into {got}. Feature-wise transforms must "
                "map each time step's features one-to-one."
            )
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        # NaN is accepted as padding only; anything else is rejected in validation.
        tags.input_tags.allow_nan = True
        try:
            inner = get_tags(self.transformer).transformer_tags
        except (AttributeError, TypeError):
            inner = None
        if inner is not None:
            tags.transformer_tags.preserves_dtype = list(inner.preserves_dtype)
        return tags
