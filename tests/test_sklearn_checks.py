"""scikit-learn's own estimator checks, run over every estimator and transformer.

A check that cannot pass by design is listed with its reason in
``seqpipe.testing.SKLEARN_EXPECTED_FAILED_CHECKS`` (the same table plugin authors'
conformance runs use); nothing is skipped silently. The classifier's and
transformer's score assertions skipped there are covered by
tests/test_estimators.py::test_learns_sklearn_toy_problems, and the sample-weight
equivalence (which needs full-batch training to hold) by tests/test_sample_weight.py.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer
from seqpipe.testing import sklearn_expected_failed_checks

# Small, quick models that still learn scikit-learn's toy problems.
FAST = {"hidden_size": 8, "epochs": 20, "lr": 0.01, "random_state": 0}

ESTIMATORS = [
    LSTMRegressor(**{**FAST, "hidden_size": 16, "epochs": 60}),
    LSTMClassifier(**FAST),
    LSTMTransformer(**{**FAST, "epochs": 3}),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=sklearn_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
