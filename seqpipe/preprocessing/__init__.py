"""Preprocessing for sequence data: scalers that understand 3-D input and windowing.

* :class:`SequenceScaler` standardizes each feature over samples and time steps.
* :class:`FeatureWiseTransformer` lifts any 2-D scikit-learn transformer to 3-D.
* :func:`make_windows` turns a time series into supervised ``(X, y)`` windows.

All three understand the package's layout: ``(n_samples, n_timesteps, n_features)``,
2-D ``(n_samples, n_timesteps)`` for one feature, and NaN padding at the end of the
time axis (or a list of sequences of different lengths) for ragged batches.
"""

from seqpipe.preprocessing._featurewise import FeatureWiseTransformer
from seqpipe.preprocessing._scaler import SequenceScaler
from seqpipe.preprocessing._windows import make_windows

__all__ = ["FeatureWiseTransformer", "SequenceScaler", "make_windows"]
