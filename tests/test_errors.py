"""Bad input gets a clear error naming the problem and what was expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer

FAST = {"hidden_size": 4, "epochs": 1, "random_state": 0}


@pytest.fixture
def fitted(rng):
    X = rng.normal(size=(10, 4, 2))
    return LSTMRegressor(**FAST).fit(X, X.sum(axis=(1, 2)))


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (np.zeros(5), ValueError, "1 dimension.*Reshape your data"),
        (np.zeros((2, 3, 4, 5)), ValueError, "4 dimensions.*expected a 3-D array"),
        (np.zeros((0, 4, 2)), ValueError, "0 sample"),
        (np.zeros((3, 0, 2)), ValueError, "0 time step"),
        (
            np.array([[[np.nan, 1.0], [1.0, 1.0]]]),
            ValueError,
            "NaN in only some features at sample 0, step 0",
        ),
        (
            np.array([[[1.0, 1.0], [np.nan, np.nan], [1.0, 1.0]]]),
            ValueError,
            "NaN inside sample 0: step 1",
        ),
        (np.array([[[np.inf, 1.0]]]), ValueError, "infinity at sample 0, step 0, feature 0"),
        (np.full((1, 3, 2), np.nan), ValueError, "NaN everywhere in sample 0"),
        (np.array([["a", "b"]]), TypeError, "must hold numbers"),
    ],
)
def test_bad_X(X, error, match):
    with pytest.raises(error, match=match):
        LSTMRegressor(**FAST).fit(X, np.zeros(len(X)))


def test_feature_count_mismatch_at_predict(fitted, rng):
    with pytest.raises(ValueError, match="X has 3 features, but LSTMRegressor is expecting 2"):
        fitted.predict(rng.normal(size=(2, 4, 3)))


def test_predict_before_fit():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LSTMRegressor().predict(np.zeros((1, 3, 1)))


def test_sparse_input_is_a_type_error():
    import scipy.sparse as sp

    with pytest.raises(TypeError, match="Sparse data"):
        LSTMRegressor(**FAST).fit(sp.csr_matrix(np.eye(3)), np.zeros(3))


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.array([1.0, np.nan, 2.0]), "y contains NaN"),
        (np.array([1.0, np.inf, 2.0]), "y contains infinity"),
        (np.zeros(2), "inconsistent numbers of samples"),
        (np.zeros((3, 2, 2, 2)), "4 dimensions"),
        (np.zeros((3, 5, 1)), r"must have as many steps as X.*head='seq2seq'"),
        (None, "requires y"),
    ],
)
def test_bad_y(y, match, rng):
    with pytest.raises(ValueError, match=match):
        LSTMRegressor(**FAST).fit(rng.normal(size=(3, 4, 1)), y)


def test_unknown_architecture_lists_registered():
    with pytest.raises(ValueError, match=r"Unknown architecture 'lsmt'.*gru.*lstm.*rnn"):
        LSTMRegressor(architecture="lsmt", **FAST).fit(np.zeros((3, 2, 1)), np.zeros(3))


def test_classifier_rejects_continuous_target(rng):
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        LSTMClassifier(**FAST).fit(rng.normal(size=(5, 3, 1)), rng.normal(size=5))


def test_classifier_needs_two_classes(rng):
    with pytest.raises(ValueError, match="at least 2 classes"):
        LSTMClassifier(**FAST).fit(rng.normal(size=(5, 3, 1)), ["a"] * 5)


def test_forecast_transformer_needs_two_steps(rng):
    with pytest.raises(ValueError, match="at least 2 time steps"):
        LSTMTransformer(**FAST).fit(rng.normal(size=(5, 1, 2)))


@pytest.mark.parametrize(
    "params",
    [{"hidden_size": 0}, {"lr": -1.0}, {"optimizer": "adamx"}, {"validation_fraction": 1.5}],
)
def test_invalid_hyperparameters(params):
    with pytest.raises(InvalidParameterError):
        LSTMRegressor(**{**FAST, **params}).fit(np.zeros((3, 2, 1)), np.zeros(3))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"head_layers": (0,)}, r"head_layers must hold positive integers.*\(0,\)"),
        ({"head_layers": (2.5,)}, r"head_layers must hold positive integers"),
        ({"head_layers": (-3,)}, r"head_layers must hold positive integers"),
        ({"head_layers": (True,)}, r"head_layers must hold positive integers"),
        ({"optimizer": dict}, r"optimizer must be one of .* torch.optim.Optimizer subclass"),
    ],
)
@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier, LSTMTransformer])
def test_specs_the_constraint_table_cannot_express(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**{**FAST, **params}).fit(np.zeros((4, 2, 1)), np.array([0.0, 1.0, 0.0, 1.0]))


def test_an_optimizer_class_is_accepted():
    model = LSTMRegressor(**{**FAST, "optimizer": torch.optim.SGD})
    assert isinstance(model.fit(np.zeros((4, 2, 1)), np.zeros(4)).optimizer_, torch.optim.SGD)


def test_rnn_rejects_gated_activation():
    with pytest.raises(ValueError, match="'rnn' supports activation in"):
        LSTMRegressor(architecture="rnn", activation="sigmoid", **FAST).fit(
            np.zeros((3, 2, 1)), np.zeros(3)
        )


def test_validation_fraction_too_large_for_data():
    with pytest.raises(ValueError, match="validation_fraction"):
        LSTMRegressor(validation_fraction=0.9, **FAST).fit(np.zeros((1, 2, 1)), np.zeros(1))
