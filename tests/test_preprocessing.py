"""SequenceScaler and FeatureWiseTransformer: statistics, layouts, padding, validation."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    PowerTransformer,
    QuantileTransformer,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.estimator_checks import parametrize_with_checks

from seqpipe.preprocessing import FeatureWiseTransformer, SequenceScaler

# Both estimators read a 2-D X as (n_samples, n_timesteps) with one feature, and
# accept NaN only as trailing padding; these generic checks assume otherwise.
_TWO_D_IS_TIME = (
    "2-D X is (n_samples, n_timesteps) with one feature, so n_features_in_ is 1, not X.shape[1]"
)
EXPECTED_FAILED_CHECKS = {
    "check_n_features_in": _TWO_D_IS_TIME,
    "check_n_features_in_after_fitting": _TWO_D_IS_TIME,
    "check_transformer_general": (
        "its last step expects an error for a 2-D X with fewer columns, which is the same "
        "single feature over fewer time steps and therefore valid"
    ),
    "check_estimators_pickle": (
        "allow_nan means trailing NaN padding only; the check puts NaN at random "
        "positions, which is rejected as a gap (pickling is tested separately)"
    ),
}


@parametrize_with_checks(
    [SequenceScaler(), FeatureWiseTransformer(MinMaxScaler())],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
    xfail_strict=True,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _data(n=6, t=5, f=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(loc=[1.0, -20.0, 300.0][:f], scale=[1.0, 5.0, 50.0][:f], size=(n, t, f))


def _pad(X, lengths):
    """NaN-pad sequence i after lengths[i] steps."""
    X = X.copy()
    for i, length in enumerate(lengths):
        X[i, length:] = np.nan
    return X


LENGTHS = [5, 3, 1, 4, 5, 2]


# --- SequenceScaler -------------------------------------------------------------


def test_scaler_pools_samples_and_time_per_feature():
    X = _data()
    scaler = SequenceScaler().fit(X)
    flat = X.reshape(-1, 3)
    np.testing.assert_allclose(scaler.mean_, flat.mean(axis=0))
    np.testing.assert_allclose(scaler.var_, flat.var(axis=0))
    np.testing.assert_allclose(scaler.scale_, flat.std(axis=0))
    assert scaler.n_features_in_ == 3
    assert scaler.n_samples_seen_ == 6
    assert scaler.n_steps_seen_ == 30
    Xt = scaler.transform(X)
    assert Xt.shape == X.shape
    np.testing.assert_allclose(Xt.reshape(-1, 3).mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Xt.reshape(-1, 3).std(axis=0), 1)
    np.testing.assert_allclose(Xt.reshape(-1, 3), StandardScaler().fit_transform(flat))


def test_scaler_ignores_and_keeps_padding():
    X = _data()
    Xp = _pad(X, LENGTHS)
    valid = ~np.isnan(Xp[..., 0])
    scaler = SequenceScaler().fit(Xp)
    np.testing.assert_allclose(scaler.mean_, X[valid].mean(axis=0))
    np.testing.assert_allclose(scaler.scale_, X[valid].std(axis=0))
    assert scaler.n_steps_seen_ == sum(LENGTHS)
    Xt = scaler.transform(Xp)
    np.testing.assert_array_equal(np.isnan(Xt), np.isnan(Xp))
    np.testing.assert_allclose(Xt[valid], (X[valid] - scaler.mean_) / scaler.scale_)


def test_scaler_2d_is_one_feature_and_stays_2d():
    X = _data(f=1)
    X2 = X[..., 0]
    scaler = SequenceScaler().fit(X2)
    assert scaler.n_features_in_ == 1
    Xt = scaler.transform(X2)
    assert Xt.shape == X2.shape
    np.testing.assert_allclose(Xt, SequenceScaler().fit_transform(X)[..., 0])
    # A different number of time steps is the same feature, so it is accepted.
    assert scaler.transform(X2[:, :2]).shape == (6, 2)


def test_scaler_accepts_dataframe_as_2d():
    pd = pytest.importorskip("pandas")
    X2 = _data(f=1)[..., 0]
    df = pd.DataFrame(X2, columns=[f"t{i}" for i in range(X2.shape[1])])
    Xt = SequenceScaler().fit_transform(df)
    assert isinstance(Xt, np.ndarray)
    np.testing.assert_allclose(Xt, SequenceScaler().fit_transform(X2))


@pytest.mark.parametrize("one_d", [False, True], ids=["2d-items", "1d-items"])
def test_scaler_ragged_list_matches_padded_array(one_d):
    X = _data(f=1) if one_d else _data()
    Xp = _pad(X, LENGTHS)
    seqs = [x[:length] for x, length in zip(X, LENGTHS, strict=True)]
    if one_d:
        seqs = [s[:, 0] for s in seqs]
    scaler = SequenceScaler().fit(seqs)
    padded = SequenceScaler().fit(Xp)
    np.testing.assert_allclose(scaler.mean_, padded.mean_)
    np.testing.assert_allclose(scaler.scale_, padded.scale_)
    out = scaler.transform(seqs)
    assert isinstance(out, list)
    assert [o.shape for o in out] == [s.shape for s in seqs]
    expected = padded.transform(Xp)
    for i, (o, length) in enumerate(zip(out, LENGTHS, strict=True)):
        np.testing.assert_allclose(o, expected[i, :length, 0] if one_d else expected[i, :length])


def test_scaler_nested_ragged_lists_and_padded_list_items():
    seqs = [[1.0, 2.0, 3.0], [4.0, 5.0]]
    out = SequenceScaler().fit_transform(seqs)
    assert [o.shape for o in out] == [(3,), (2,)]
    np.testing.assert_allclose(
        np.concatenate(out), StandardScaler().fit_transform(np.arange(1.0, 6.0)[:, None])[:, 0]
    )
    # Items may carry their own trailing padding; it is kept.
    out = SequenceScaler().fit_transform([np.array([1.0, 2.0, np.nan]), np.array([3.0])])
    assert np.isnan(out[0][2]) and out[0].shape == (3,)


@pytest.mark.parametrize(
    "make_input",
    [
        lambda X: X,
        lambda X: X[..., 0],
        lambda X: _pad(X, LENGTHS),
        lambda X: [x[:length] for x, length in zip(X, LENGTHS, strict=True)],
    ],
    ids=["3d", "2d", "padded", "list"],
)
@pytest.mark.parametrize(
    "kwargs", [{}, {"with_mean": False}, {"with_std": False}], ids=["both", "no-mean", "no-std"]
)
def test_scaler_inverse_transform_round_trip(make_input, kwargs):
    X = make_input(_data())
    scaler = SequenceScaler(**kwargs).fit(X)
    back = scaler.inverse_transform(scaler.transform(X))
    if isinstance(X, list):
        for b, x in zip(back, X, strict=True):
            np.testing.assert_allclose(b, x)
    else:
        np.testing.assert_allclose(back, X, equal_nan=True)


def test_scaler_with_mean_false_and_with_std_false():
    X = _data()
    flat = X.reshape(-1, 3)
    np.testing.assert_allclose(
        SequenceScaler(with_mean=False).fit_transform(X).reshape(-1, 3), flat / flat.std(axis=0)
    )
    no_std = SequenceScaler(with_std=False).fit(X)
    assert no_std.scale_ is None
    np.testing.assert_allclose(no_std.transform(X).reshape(-1, 3), flat - flat.mean(axis=0))


def test_scaler_constant_feature_gets_unit_scale():
    X = _data()
    X[..., 1] = 0.1  # 0.1 is inexact in binary, so the computed variance is not exactly 0
    scaler = SequenceScaler().fit(X)
    assert scaler.scale_[1] == 1.0
    np.testing.assert_allclose(scaler.transform(X)[..., 1], 0, atol=1e-12)


def test_scaler_dtype_and_copy():
    X = _data().astype(np.float32)
    assert SequenceScaler().fit_transform(X).dtype == np.float32
    original = X.copy()
    scaler = SequenceScaler().fit(X)
    scaler.transform(X)
    np.testing.assert_array_equal(X, original)
    out = SequenceScaler(copy=False).fit(X).transform(X)
    assert np.shares_memory(out, X)
    # Integer input cannot be scaled in place, so it is converted (and copied).
    assert SequenceScaler().fit_transform(np.arange(12).reshape(2, 3, 2)).dtype == np.float64


def test_scaler_feature_names_out():
    scaler = SequenceScaler().fit(_data())
    assert list(scaler.get_feature_names_out()) == ["x0", "x1", "x2"]
    assert list(scaler.get_feature_names_out(["a", "b", "c"])) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="length equal to number of features"):
        scaler.get_feature_names_out(["a", "b"])
    assert list(SequenceScaler().fit(_data()[..., 0]).get_feature_names_out()) == ["x0"]


def _flatten(X):
    return X.reshape(len(X), -1)


def test_scaler_in_pipeline_clone_and_pickle():
    X = _data(n=20)
    y = X[:, -1, 0]
    pipe = make_pipeline(SequenceScaler(), FunctionTransformer(_flatten), Ridge())
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (20,)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_allclose(restored.predict(X), pipe.predict(X))
    fresh = clone(pipe)
    assert not hasattr(fresh[0], "mean_")
    assert fresh.get_params()["sequencescaler__with_mean"] is True


# --- validation (shared by both estimators) --------------------------------------

ESTIMATORS = [SequenceScaler(), FeatureWiseTransformer(MinMaxScaler())]
EST_IDS = ["SequenceScaler", "FeatureWiseTransformer"]


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.arange(5.0), r"shape \(5,\); expected a 3-D array .*\. Reshape your data"),
        (np.zeros((2, 3, 4, 5)), r"shape \(2, 3, 4, 5\); expected a 3-D array"),
        (np.zeros((0, 4, 2)), r"Found array with 0 sample\(s\)"),
        (np.zeros((3, 0)), r"0 feature\(s\) .*2-D X is \(n_samples, n_timesteps\)"),
        (np.zeros((3, 0, 2)), r"0 time step\(s\) \(shape=\(3, 0, 2\)\)"),
        ([], "empty list"),
        (np.array([[[1.0, np.inf]]]), "X contains infinity at sample 0, step 0, feature 1"),
        (
            np.array([[[1.0, 2.0], [np.nan, 3.0]]]),
            "X contains NaN in only some features at sample 0, step 1",
        ),
        (
            np.array([[[1.0], [np.nan], [2.0]]]),
            "X contains NaN inside sample 0: step 1 is all NaN but later steps hold data",
        ),
        (np.array([[[1.0], [2.0]], [[np.nan], [np.nan]]]), "X contains NaN everywhere in sample 1"),
        ([np.zeros((3, 2)), np.zeros((2, 3))], r"X\[1\] has 3 features but X\[0\] has 2"),
        ([np.zeros((3, 2)), np.zeros(2)], r"X\[1\] is 1-D but X\[0\] is 2-D"),
        ([np.zeros((3, 2)), np.zeros((0, 2))], r"X\[1\] has 0 time steps"),
        ([np.zeros((3, 2)), np.zeros((1, 2, 2))], r"Sequence X\[1\] has shape \(1, 2, 2\)"),
        (
            [np.zeros((3, 1)), np.array([[1.0], [np.nan], [2.0]])],
            # A list item is reported as its sample, as in the padded array.
            "X contains NaN inside sample 1: step 1 is all NaN",
        ),
    ],
    ids=[
        "1d",
        "4d",
        "no-samples",
        "2d-no-steps",
        "3d-no-steps",
        "empty-list",
        "inf",
        "partial-nan",
        "nan-gap",
        "all-padding",
        "list-features",
        "list-ndim",
        "list-empty-item",
        "list-3d-item",
        "list-nan-gap",
    ],
)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=EST_IDS)
def test_invalid_input_raises_clear_error(estimator, X, match):
    with pytest.raises(ValueError, match=match):
        clone(estimator).fit(X)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=EST_IDS)
@pytest.mark.parametrize("method", ["transform", "inverse_transform"])
def test_feature_count_mismatch_message(estimator, method):
    est = clone(estimator).fit(_data(f=2))
    msg = f"X has 3 features, but {type(est).__name__} is expecting 2 features as input."
    with pytest.raises(ValueError, match=re.escape(msg)):
        getattr(est, method)(_data(f=3))
    with pytest.raises(ValueError, match=r"X is 2-D .* one feature, but 2 features per time"):
        getattr(est, method)(_data(f=1)[..., 0])


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=EST_IDS)
def test_sparse_input_is_a_type_error(estimator):
    with pytest.raises(TypeError, match=r"[Ss]parse"):
        clone(estimator).fit(sp.csr_matrix(np.eye(3)))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=EST_IDS)
def test_transform_before_fit(estimator):
    with pytest.raises(NotFittedError):
        clone(estimator).transform(_data())


# --- FeatureWiseTransformer -----------------------------------------------------

INNER = [
    MinMaxScaler(),
    RobustScaler(),
    PowerTransformer(),
    QuantileTransformer(n_quantiles=10),
    StandardScaler(),
]


@pytest.mark.parametrize("inner", INNER, ids=lambda t: type(t).__name__)
def test_featurewise_matches_inner_on_valid_rows(inner):
    X = _data()
    Xp = _pad(X, LENGTHS)
    valid = ~np.isnan(Xp[..., 0])
    fw = FeatureWiseTransformer(inner).fit(Xp)
    reference = clone(inner).fit(X[valid])
    Xt = fw.transform(Xp)
    assert Xt.shape == Xp.shape
    np.testing.assert_array_equal(np.isnan(Xt), np.isnan(Xp))
    np.testing.assert_allclose(Xt[valid], reference.transform(X[valid]))
    np.testing.assert_allclose(fw.inverse_transform(Xt), Xp, equal_nan=True, atol=1e-9)
    assert fw.n_features_in_ == 3
    assert not hasattr(inner, "n_features_in_")  # the parameter itself is never fitted


def test_featurewise_standard_scaler_equals_sequence_scaler():
    Xp = _pad(_data(), LENGTHS)
    np.testing.assert_allclose(
        FeatureWiseTransformer(StandardScaler()).fit_transform(Xp),
        SequenceScaler().fit_transform(Xp),
        equal_nan=True,
    )


def test_featurewise_2d_and_list_layouts():
    X = _data(f=1)
    fw = FeatureWiseTransformer(MinMaxScaler())
    out2 = fw.fit_transform(X[..., 0])
    assert out2.shape == (6, 5)
    np.testing.assert_allclose(out2, fw.fit_transform(X)[..., 0])
    seqs = [x[:length] for x, length in zip(_data(), LENGTHS, strict=True)]
    out = fw.fit(seqs).transform(seqs)
    assert isinstance(out, list)
    assert [o.shape for o in out] == [s.shape for s in seqs]
    np.testing.assert_allclose(np.concatenate(out).min(axis=0), 0)
    np.testing.assert_allclose(np.concatenate(out).max(axis=0), 1)
    padded = [np.vstack([seqs[0], np.full((2, 3), np.nan)]), seqs[1]]
    out = fw.transform(padded)
    assert out[0].shape == (7, 3) and np.isnan(out[0][5:]).all()


@pytest.mark.parametrize(
    "inner", [PCA(n_components=1), OneHotEncoder()], ids=["PCA", "OneHotEncoder"]
)
def test_featurewise_rejects_feature_count_change(inner):
    name = type(inner).__name__
    with pytest.raises(ValueError, match=rf"keeps the number of features, but {name}"):
        FeatureWiseTransformer(inner).fit(np.arange(12.0).reshape(2, 3, 2))


def test_featurewise_inverse_transform_only_if_inner_has_it():
    assert hasattr(FeatureWiseTransformer(MinMaxScaler()), "inverse_transform")
    fw = FeatureWiseTransformer(Normalizer())
    assert not hasattr(fw, "inverse_transform")
    X = np.abs(_data()) + 1
    np.testing.assert_allclose(
        fw.fit_transform(X).reshape(-1, 3), Normalizer().fit_transform(X.reshape(-1, 3))
    )


def test_featurewise_rejects_non_transformer():
    with pytest.raises(TypeError, match="needs a scikit-learn transformer"):
        FeatureWiseTransformer(Ridge()).fit(_data())


def test_featurewise_pickle_clone_pipeline():
    X = _data(n=20)
    y = X[:, -1, 0]
    pipe = make_pipeline(
        FeatureWiseTransformer(QuantileTransformer(n_quantiles=10)),
        FunctionTransformer(_flatten),
        Ridge(),
    ).fit(X, y)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_allclose(restored.predict(X), pipe.predict(X))
    fresh = clone(pipe[0])
    assert not hasattr(fresh, "transformer_")
    assert fresh.get_params()["transformer__n_quantiles"] == 10
