"""Per-feature standardization of sequence batches, and the batch handling it shares.

scikit-learn's own scalers reject 3-D input, so users of sequence models end up
writing ``X.reshape(-1, F)`` by hand, usually forgetting that NaN padding must not
reach the statistics. The helpers here validate (through the package-wide
:mod:`seqpipe._sequence_rules`) and reshape once for every sequence-aware
transformer in :mod:`seqpipe.preprocessing`, and give results back in the layout
the caller passed: 3-D, 2-D, a list, or a long-format DataFrame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import FLOAT_DTYPES, _check_feature_names_in, check_is_fitted

from seqpipe._frames import LongFrame, read_long_frame
from seqpipe._output import SequenceOutputMixin
from seqpipe._sequence_rules import validate_sequences
from seqpipe._sequences import check_feature_names


@dataclass
class _Batch:
    """A validated batch, held as 3-D so every transformer needs a single code path.

    ``data`` is an ``(n, T, F)`` array, or for list input a list of ``(T_i, F)``
    arrays. ``lengths`` holds the number of valid (non-padding) steps per sequence,
    or is None for an array without any padding, which lets callers use cheap
    reshapes instead of boolean indexing. ``frame`` is the long-format DataFrame
    ``X`` was (its instances are ``data``, a list), so results go back into its rows.
    """

    data: np.ndarray | list[np.ndarray]
    lengths: np.ndarray | None
    squeeze: bool
    n_samples: int
    n_features: int
    frame: LongFrame | None = None

    @property
    def is_list(self) -> bool:
        return isinstance(self.data, list)

    def _valid_steps(self) -> np.ndarray:
        return np.arange(self.data.shape[1]) < self.lengths[:, None]

    def rows(self) -> np.ndarray:
        """Every valid time step as one row of an ``(n_valid_steps, F)`` matrix."""
        if self.is_list:
            return np.concatenate(
                [item[:length] for item, length in zip(self.data, self.lengths, strict=True)]
            )
        flat = self.data.reshape(-1, self.n_features)
        if self.lengths is None:
            return flat
        return flat[self._valid_steps().ravel()]

    def scatter(self, out_rows: np.ndarray) -> Any:
        """Put transformed rows back where :meth:`rows` took them, padding as NaN."""
        n_out = out_rows.shape[1]
        if self.lengths is not None and out_rows.dtype.kind != "f":
            # Padding has to be representable.
            out_rows = out_rows.astype(np.float64)
        if self.is_list:
            pieces = np.split(out_rows, np.cumsum(self.lengths)[:-1])
            out = []
            for piece, item in zip(pieces, self.data, strict=True):
                pad = item.shape[0] - piece.shape[0]
                if pad:
                    piece = np.concatenate([piece, np.full((pad, n_out), np.nan, piece.dtype)])
                out.append(piece)
            return self.restore(out)
        n, t = self.data.shape[:2]
        if self.lengths is None:
            return self.restore(out_rows.reshape(n, t, n_out))
        full = np.full((n * t, n_out), np.nan, dtype=out_rows.dtype)
        full[self._valid_steps().ravel()] = out_rows
        return self.restore(full.reshape(n, t, n_out))

    def apply(self, func: Callable[[np.ndarray], np.ndarray]) -> Any:
        """Run an element-wise, NaN-propagating ``func`` on the whole batch."""
        if self.is_list:
            return self.restore([func(item) for item in self.data])
        return self.restore(func(self.data))

    def restore(self, out: np.ndarray | list[np.ndarray]) -> Any:
        """Give 3-D results back in the layout the caller passed in."""
        if self.frame is not None:
            # Features map one-to-one, so the result keeps the input's column names.
            return self.frame.to_frame(out, self.frame.frame.columns)
        if not self.squeeze:
            return out
        if isinstance(out, list):
            return [item[:, 0] for item in out]
        return out[..., 0]


def _check_n_features(estimator: Any, n_features: int, reset: bool) -> None:
    if reset:
        return
    expected = estimator.n_features_in_
    if n_features != expected:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is expecting "
            f"{expected} features as input."
        )


def _validate_batch(
    X: Any,
    estimator: Any,
    *,
    reset: bool,
    copy: bool = False,
    writeable: bool = False,
) -> _Batch:
    """Validate sequence input for ``estimator`` and return it as a :class:`_Batch`.

    The rule and its messages are :func:`seqpipe._sequence_rules.validate_sequences`,
    shared with the estimators and the runtime; what is added here is scikit-learn's
    dtype policy (float32/float64 kept, anything else float64), list input kept as a
    list, a long-format frame kept for writing results back, feature names (set or
    checked) and the estimator-named feature-count message.
    """
    frame = read_long_frame(X)
    batch = validate_sequences(
        X if frame is None else frame.sequences,
        dtype=FLOAT_DTYPES,
        n_features=None if reset else estimator.n_features_in_,
        keep_list=True,
        copy=copy,
        writeable=writeable,
    )
    data = batch.data
    n_features = data[0].shape[1] if isinstance(data, list) else data.shape[2]
    check_feature_names(estimator, X, reset=reset)
    _check_n_features(estimator, n_features, reset)
    return _Batch(data, batch.lengths, batch.one_feature, len(data), n_features, frame)


def _feature_names_out(estimator: Any, input_features: Any) -> np.ndarray:
    check_is_fitted(estimator, "n_features_in_")
    # scikit-learn's rule: input_features, else feature_names_in_ (a long-format
    # frame's columns), else x0, x1, ...; checked against feature_names_in_.
    return _check_feature_names_in(estimator, input_features)


class _SequenceOutput(SequenceOutputMixin):
    """``set_output`` for the feature-wise transformers here.

    Their results have the input's layout, so the only 2-D result is one feature
    over time (a 2-D input): its columns are time steps, named as the input frame's
    columns (or numbered), not by ``get_feature_names_out``.
    """

    def _output_columns(self, X: Any) -> Any:
        return getattr(X, "columns", None)


class SequenceScaler(_SequenceOutput, TransformerMixin, BaseEstimator):
    """Standardize each feature of sequence data, pooling samples and time steps.

    The 3-D counterpart of :class:`~sklearn.preprocessing.StandardScaler`: every
    feature ``f`` is mapped to ``(X[..., f] - mean_[f]) / scale_[f]`` where the
    statistics are taken over all samples *and* all time steps. NaN padding
    (whole trailing time steps that are NaN in every feature) is left out of the
    statistics and stays NaN in the output.

    Accepted input: a 3-D array ``(n_samples, n_timesteps, n_features)``; a 2-D
    array or DataFrame ``(n_samples, n_timesteps)``, read as a single feature and
    returned 2-D; a list of 1-D ``(n_timesteps,)`` / 2-D
    ``(n_timesteps, n_features)`` sequences of different lengths, returned as a
    list of arrays with the same shapes; or a long-format DataFrame (row
    MultiIndex ``(instance, time)``, one column per feature), returned as a
    DataFrame with the same index and columns.

    Parameters
    ----------
    with_mean : bool, default=True
        Subtract the per-feature mean.
    with_std : bool, default=True
        Divide by the per-feature standard deviation.
    copy : bool, default=True
        If False, transform float ndarrays in place where possible (as
        ``StandardScaler`` does); a list or a non-float input is still copied.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        Per-feature mean over every valid time step of every sample.
    var_ : ndarray of shape (n_features,)
        Per-feature variance, pooled the same way.
    scale_ : ndarray of shape (n_features,) or None
        Per-feature standard deviation, with 1 for constant features so they map
        to 0 rather than NaN. None when ``with_std=False``.
    n_features_in_ : int
        Number of features: ``X.shape[2]`` for 3-D input, 1 for 2-D input.
    feature_names_in_ : ndarray of str objects of shape (n_features_in_,)
        The columns of a long-format DataFrame seen in ``fit``; only defined then.
    n_samples_seen_ : int
        Number of sequences seen in ``fit``.
    n_steps_seen_ : int
        Number of valid (non-padding) time steps pooled into the statistics.

    See Also
    --------
    FeatureWiseTransformer : Apply any 2-D scikit-learn transformer feature-wise.

    Notes
    -----
    NaN is only accepted as trailing padding; NaN inside a sequence, NaN in only
    some features of a step, and inf all raise ``ValueError``.

    ``set_output(transform="pandas")`` (or a Pipeline's) makes a 2-D result a
    DataFrame (its columns are time steps); a 3-D result, which pandas cannot
    hold, stays an array, a list stays a list, and a long-format frame is
    returned as one whatever the setting.

    Examples
    --------
    >>> import numpy as np
    >>> from seqpipe.preprocessing import SequenceScaler
    >>> X = np.array([[[1.0, 10.0], [3.0, 30.0]],
    ...               [[5.0, 50.0], [np.nan, np.nan]]])   # second sequence is padded
    >>> scaler = SequenceScaler().fit(X)
    >>> scaler.mean_
    array([ 3., 30.])
    >>> Xt = scaler.transform(X)
    >>> Xt[:, :, 0]
    array([[-1.22474487,  0.        ],
           [ 1.22474487,         nan]])
    >>> np.allclose(scaler.inverse_transform(Xt), X, equal_nan=True)
    True
    """

    def __init__(self, *, with_mean: bool = True, with_std: bool = True, copy: bool = True):
        self.with_mean = with_mean
        self.with_std = with_std
        self.copy = copy

    def fit(self, X: Any, y: Any = None) -> SequenceScaler:
        """Compute the per-feature mean and standard deviation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), list of arrays, or long-format DataFrame
            Sequences to learn from; NaN padding is ignored.
        y : None
            Ignored; present for pipeline compatibility.

        Returns
        -------
        self : SequenceScaler
            The fitted scaler.
        """
        batch = _validate_batch(X, self, reset=True)
        rows = batch.rows()
        mean = np.mean(rows, axis=0, dtype=np.float64)
        var = np.var(rows, axis=0, dtype=np.float64)
        self.n_features_in_ = batch.n_features
        self.n_samples_seen_ = batch.n_samples
        self.n_steps_seen_ = rows.shape[0]
        self.mean_ = mean
        self.var_ = var
        if self.with_std:
            n = rows.shape[0]
            eps = np.finfo(np.float64).eps
            # Scikit-learn's bound on the rounding error of a two-pass variance: a
            # feature within it is constant, and dividing by its tiny std would only
            # amplify noise.
            constant = var <= n * eps * var + (n * mean * eps) ** 2
            self.scale_ = np.where(constant, 1.0, np.sqrt(var))
        else:
            self.scale_ = None
        return self

    def transform(self, X: Any, copy: bool | None = None) -> Any:
        """Standardize ``X`` with the fitted statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), list of arrays, or long-format DataFrame
            Sequences to scale; any number of time steps, same features as in fit.
        copy : bool, default=None
            Overrides the ``copy`` parameter for this call.

        Returns
        -------
        X_tr : ndarray, list of ndarray or DataFrame
            Scaled data in the layout of ``X``, padding still NaN.
        """
        check_is_fitted(self)
        copy = self.copy if copy is None else copy
        batch = _validate_batch(X, self, reset=False, copy=copy, writeable=True)

        def scale(a: np.ndarray) -> np.ndarray:
            if self.with_mean:
                a -= self.mean_
            if self.with_std:
                a /= self.scale_
            return a

        return self._wrap_output(batch.apply(scale), X)

    def inverse_transform(self, X: Any, copy: bool | None = None) -> Any:
        """Undo :meth:`transform`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or \
(n_samples, n_timesteps), list of arrays, or long-format DataFrame
            Scaled sequences.
        copy : bool, default=None
            Overrides the ``copy`` parameter for this call.

        Returns
        -------
        X_original : ndarray, list of ndarray or DataFrame
            Data on the original scale, in the layout of ``X``.
        """
        check_is_fitted(self)
        copy = self.copy if copy is None else copy
        batch = _validate_batch(X, self, reset=False, copy=copy, writeable=True)

        def unscale(a: np.ndarray) -> np.ndarray:
            if self.with_std:
                a *= self.scale_
            if self.with_mean:
                a += self.mean_
            return a

        return batch.apply(unscale)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Feature names of the output, which are those of the input.

        Parameters
        ----------
        input_features : array-like of str, default=None
            Names of the ``n_features_in_`` features; ``x0, x1, ...`` when None.
            For 2-D input there is a single feature, whatever the number of time
            steps.

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per feature.
        """
        return _feature_names_out(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        # NaN is accepted as padding only; anything else is rejected in validation.
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
