"""sample_weight (all estimators) and class_weight (LSTMClassifier), issue 11 items 1-2.

The equivalences are exact in arithmetic for full-batch training without
shuffling: the weighted mean loss of a batch equals the mean over the batch with
duplicated (or dropped) rows, and the scaling statistics are weighted the same
way. What is left is float32 summation order, hence the 1e-5 tolerances.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer
from seqpipe.preprocessing import SequenceScaler

#: Tiny full-batch models: every epoch is one step over all rows, in order.
FULL_BATCH = {"hidden_size": 4, "epochs": 15, "batch_size": 256, "shuffle": False, "lr": 0.01}
#: Weight 0 for two rows, 2 for two others, 1 for the rest (12 rows).
WEIGHTS = np.array([1, 0, 2, 1, 0, 1, 1, 2, 1, 1, 1, 1], dtype=float)
REPEATED = np.repeat(np.arange(len(WEIGHTS)), WEIGHTS.astype(int))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(len(WEIGHTS), 5, 2)) + np.array([3.0, -1.0])
    y = X[:, :, 0].sum(axis=1)
    return X, y


def _pair(estimator, X, y, method, **fit_params):
    """``method`` output of a weighted fit and of a fit on repeated rows."""
    weighted = sklearn.clone(estimator).fit(X, y, sample_weight=WEIGHTS, **fit_params)
    repeated = sklearn.clone(estimator).fit(
        X[REPEATED], None if y is None else y[REPEATED], **fit_params
    )
    return getattr(weighted, method)(X), getattr(repeated, method)(X), weighted, repeated


def test_regressor_weights_equal_dropped_and_duplicated_rows(data):
    X, y = data
    weighted, repeated, a, b = _pair(LSTMRegressor(**FULL_BATCH, random_state=0), X, y, "predict")
    np.testing.assert_allclose(weighted, repeated, atol=1e-5)
    # The scaling statistics are the weighted ones (zero-weight rows excluded).
    np.testing.assert_allclose(a.x_mean_, b.x_mean_, rtol=1e-12)
    np.testing.assert_allclose(a.x_scale_, b.x_scale_, rtol=1e-12)
    np.testing.assert_allclose(a.y_mean_, b.y_mean_, rtol=1e-12)
    np.testing.assert_allclose(a.y_scale_, b.y_scale_, rtol=1e-12)
    np.testing.assert_allclose(a.history_[-1]["train_loss"], b.history_[-1]["train_loss"], 1e-5)
    # The weights matter: unweighted training gives another model.
    plain = LSTMRegressor(**FULL_BATCH, random_state=0).fit(X, y).predict(X)
    assert np.abs(plain - weighted).max() > 1e-3


def test_classifier_weights_equal_dropped_and_duplicated_rows(data):
    X, y = data
    labels = np.where(y > np.median(y), "high", "low")
    clf = LSTMClassifier(**FULL_BATCH, random_state=0)
    weighted, repeated, _, _ = _pair(clf, X, labels, "predict_proba")
    np.testing.assert_allclose(weighted, repeated, atol=1e-5)


def test_per_step_weights_cover_every_valid_step(data):
    X, _ = data
    X = X.copy()
    X[2, 3:] = np.nan  # ragged: a duplicated row counts its 3 valid steps twice
    X[5, 4:] = np.nan
    y = np.nancumsum(X[:, :, :1], axis=1)
    reg = LSTMRegressor(**FULL_BATCH, random_state=0)
    weighted, repeated, _, _ = _pair(reg, X, y, "predict")
    np.testing.assert_allclose(weighted, repeated, atol=1e-5)
    # The self-supervised transformer's per-step (next step) loss too.
    weighted, repeated, _, _ = _pair(
        LSTMTransformer(**FULL_BATCH, random_state=0), X, None, "transform"
    )
    np.testing.assert_allclose(weighted, repeated, atol=1e-5)


def test_validation_loss_is_weighted(data):
    X, y = data
    params = {**FULL_BATCH, "epochs": 3, "validation_fraction": 0.25, "random_state": 0}
    # Weights on the validation rows (the last 3) change only the validation loss.
    w = np.ones(len(X))
    w[-3:] = [1.0, 0.0, 5.0]
    weighted = LSTMRegressor(**params).fit(X, y, sample_weight=w)
    plain = LSTMRegressor(**params).fit(X, y)
    assert weighted.history_[0]["train_loss"] == pytest.approx(plain.history_[0]["train_loss"])
    assert weighted.history_[0]["valid_loss"] != pytest.approx(plain.history_[0]["valid_loss"])
    with pytest.raises(ValueError, match="zero for all 3 validation rows"):
        LSTMRegressor(**params).fit(X, y, sample_weight=np.r_[np.ones(9), np.zeros(3)])


def test_balanced_class_weight_equals_matching_sample_weights(data):
    X, y = data
    labels = np.where(y > np.quantile(y, 0.75), 1, 0)  # 3 against 9
    balanced = LSTMClassifier(**FULL_BATCH, class_weight="balanced", random_state=0)
    explicit = LSTMClassifier(**FULL_BATCH, random_state=0)
    a = balanced.fit(X, labels).predict_proba(X)
    b = explicit.fit(X, labels, sample_weight=compute_sample_weight("balanced", labels))
    np.testing.assert_allclose(a, b.predict_proba(X), atol=1e-6)
    # A dict multiplies into sample_weight; labels it leaves out weigh 1.
    weighted = LSTMClassifier(**FULL_BATCH, class_weight={1: 3.0}, random_state=0)
    c = weighted.fit(X, labels, sample_weight=WEIGHTS).predict_proba(X)
    d = explicit.fit(X, labels, sample_weight=WEIGHTS * np.where(labels == 1, 3.0, 1.0))
    np.testing.assert_allclose(c, d.predict_proba(X), atol=1e-6)
    assert np.abs(a - explicit.fit(X, labels).predict_proba(X)).max() > 1e-3


@pytest.mark.parametrize(
    ("sample_weight", "match"),
    [
        (-WEIGHTS, "Negative values"),
        (np.ones(5), r"shape == \(5,\), expected \(12,\)"),
        (np.ones((12, 2)), "1D array"),
        (np.zeros(12), "non-zero"),
        (np.r_[np.nan, np.ones(11)], "NaN"),
    ],
)
def test_bad_weights_are_refused_and_the_model_is_unchanged(data, sample_weight, match):
    X, y = data
    model = LSTMRegressor(**FULL_BATCH, random_state=0).fit(X, y)
    before = model.predict(X)
    state = dict(vars(model))
    with pytest.raises(ValueError, match=match):
        model.fit(X, y, sample_weight=sample_weight)
    np.testing.assert_array_equal(model.predict(X), before)
    assert vars(model).keys() == state.keys()
    assert all(vars(model)[key] is value for key, value in state.items())


def test_classifier_refuses_weights_that_leave_one_class(data):
    X, y = data
    labels = (y > np.median(y)).astype(int)
    with pytest.raises(ValueError, match=r"at least 2 classes with a positive weight.*\[1\]"):
        LSTMClassifier(**FULL_BATCH).fit(X, labels, sample_weight=labels)
    with pytest.raises(ValueError, match="class_weight must give every class a non-negative"):
        LSTMClassifier(**FULL_BATCH, class_weight={0: -1.0}).fit(X, labels)
    with pytest.raises(ValueError, match="class_weight"):
        LSTMClassifier(class_weight="weird").fit(X, labels)


def test_caller_weights_are_not_modified(data):
    X, y = data
    w = WEIGHTS.copy()
    LSTMClassifier(**FULL_BATCH, class_weight="balanced").fit(X, y > np.median(y), sample_weight=w)
    np.testing.assert_array_equal(w, WEIGHTS)


def test_score_with_sample_weight_is_sklearns_weighted_metric(data):
    X, y = data
    reg = LSTMRegressor(**FULL_BATCH, random_state=0).fit(X, y)
    expected = r2_score(y, reg.predict(X), sample_weight=WEIGHTS)
    assert reg.score(X, y, sample_weight=WEIGHTS) == pytest.approx(expected)
    assert reg.score(X, y, sample_weight=WEIGHTS) != pytest.approx(reg.score(X, y))
    labels = (y > np.median(y)).astype(int)
    clf = LSTMClassifier(**{**FULL_BATCH, "epochs": 2}, random_state=0).fit(X, labels)
    expected = accuracy_score(labels, clf.predict(X), sample_weight=WEIGHTS)
    assert clf.score(X, labels, sample_weight=WEIGHTS) == pytest.approx(expected)
    horizon = np.stack([y, 2 * y], axis=1)
    s2s = LSTMRegressor(**FULL_BATCH, head="seq2seq", random_state=0).fit(X, horizon)
    expected = r2_score(horizon, s2s.predict(X), sample_weight=WEIGHTS)
    assert s2s.score(X, horizon, sample_weight=WEIGHTS) == pytest.approx(expected)


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def test_metadata_routing_through_grid_search_of_a_pipeline(data, routing):
    X, y = data
    model = LSTMRegressor(**FULL_BATCH, random_state=0)
    # SequenceScaler takes no sample_weight, so the pipeline does not route it there.
    pipe = Pipeline(
        [
            ("scale", SequenceScaler()),
            (
                "model",
                model.set_fit_request(sample_weight=True).set_score_request(sample_weight=True),
            ),
        ]
    )
    search = GridSearchCV(pipe, {"model__hidden_size": [3, 4]}, cv=KFold(2)).fit(
        X, y, sample_weight=WEIGHTS
    )
    # The refit reached the model with the weights: the same as fitting it directly.
    inputs = SequenceScaler().fit_transform(X)
    direct = LSTMRegressor(
        **{**FULL_BATCH, "hidden_size": search.best_params_["model__hidden_size"]}
    )
    direct.set_params(random_state=0).fit(inputs, y, sample_weight=WEIGHTS)
    np.testing.assert_allclose(search.predict(X), direct.predict(inputs), atol=1e-6)
    # Without the request the weights are refused rather than silently dropped.
    unrequested = Pipeline([("scale", SequenceScaler()), ("model", LSTMRegressor(**FULL_BATCH))])
    with pytest.raises(Exception, match="sample_weight"):
        GridSearchCV(unrequested, {"model__hidden_size": [4]}, cv=KFold(2)).fit(
            X, y, sample_weight=WEIGHTS
        )


def test_metadata_routing_through_cross_validate(data, routing):
    X, y = data
    labels = (y > np.median(y)).astype(int)
    clf = LSTMClassifier(**{**FULL_BATCH, "epochs": 3}, random_state=0)
    clf.set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
    cv = KFold(2)
    scores = cross_validate(clf, X, labels, params={"sample_weight": WEIGHTS}, cv=cv)
    for (train, test), score in zip(cv.split(X), scores["test_score"], strict=True):
        fold = sklearn.clone(clf).fit(X[train], labels[train], sample_weight=WEIGHTS[train])
        expected = accuracy_score(labels[test], fold.predict(X[test]), sample_weight=WEIGHTS[test])
        assert score == pytest.approx(expected)


def test_partial_fit_refuses_class_weight_rather_than_ignoring_it(data):
    X, y = data
    labels = (y > np.median(y)).astype(int)
    clf = LSTMClassifier(**FULL_BATCH, class_weight="balanced")
    with pytest.raises(ValueError, match="class_weight='balanced' applies to fit only"):
        clf.partial_fit(X, labels, classes=[0, 1])
    assert not hasattr(clf, "module_")


@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMTransformer])
def test_weights_with_per_step_targets_and_a_validation_split(cls):
    # The target statistics use the training rows' weights only (a shape bug once).
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 5, 1)), rng.normal(size=(10, 5, 1))
    X[0, 3:] = np.nan  # ragged too
    params = {"hidden_size": 4, "epochs": 1, "validation_fraction": 0.2, "random_state": 0}
    if cls is LSTMTransformer:
        params["task"] = "regression"
    weights = np.arange(1.0, 11.0)
    model = cls(**params).fit(X, y, sample_weight=weights)
    assert np.isfinite(model.history_[-1]["valid_loss"])
    if cls is LSTMRegressor:  # the transformer keeps no target statistics
        steps = np.isfinite(X[:8, :, 0])
        per_step = np.broadcast_to(weights[:8, None], (8, 5))[steps]
        expected = np.average(y[:8, :, 0][steps], weights=per_step)
        assert model.y_mean_[0] == pytest.approx(expected)


def test_balanced_class_weight_with_a_zero_weight_class_does_not_warn():
    y = np.array(list("aabbccaabbcc"))
    X = np.random.default_rng(0).normal(size=(12, 4, 1))
    weights = np.where(y == "c", 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        LSTMClassifier(hidden_size=4, epochs=1, class_weight="balanced").fit(
            X, y, sample_weight=weights
        )
