"""Long-format frames: (instance, time) MultiIndex rows, one column per feature.

The layout sktime and aeon call "pd-multiindex". Each estimator and transformer must
read it as the sequences it holds (never as n_rows one-feature sequences), take the
feature names from its columns and check them at predict, and refuse every other
MultiIndex with a message naming the expected layout.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer, runtime
from seqpipe.onnx import export
from seqpipe.preprocessing import FeatureWiseTransformer, SequenceScaler

FAST = {"hidden_size": 4, "epochs": 2, "batch_size": 8, "random_state": 0}
FEATURES = ["temperature", "pressure"]
LAYOUT = re.escape("two-level row MultiIndex (instance, time) and one flat column per feature")


def long_frame(sequences, labels=None, columns=FEATURES) -> pd.DataFrame:
    """The long-format frame of ``sequences`` (a 3-D array or a list of (T_i, F))."""
    labels = [f"id{i}" for i in range(len(sequences))] if labels is None else labels
    pieces = [
        pd.DataFrame(
            np.asarray(seq),
            index=pd.MultiIndex.from_product([[label], range(len(seq))], names=["id", "t"]),
            columns=columns,
        )
        for label, seq in zip(labels, sequences, strict=True)
    ]
    return pd.concat(pieces)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 5, 2))
    return X, X.sum(axis=(1, 2))


def _ragged(rng, lengths=(5, 2, 4, 1, 3, 5, 2, 4)):
    return [rng.normal(size=(n, 2)) for n in lengths]


ESTIMATORS = {
    "regressor": (lambda: LSTMRegressor(**FAST), "predict", lambda y: y),
    "classifier": (lambda: LSTMClassifier(**FAST), "predict_proba", lambda y: y > 0),
    "transformer": (lambda: LSTMTransformer(**FAST), "transform", lambda y: y),
}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_long_frame_fits_and_predicts_like_the_3d_array(data, name):
    make, method, target = ESTIMATORS[name]
    X, y = data
    frame = long_frame(X)
    on_array = make().fit(X, target(y))
    on_frame = make().fit(frame, target(y))
    assert on_frame.n_features_in_ == 2
    assert_allclose(getattr(on_frame, method)(frame), getattr(on_array, method)(X), rtol=1e-6)


def test_ragged_long_frame_equals_ragged_list():
    rng = np.random.default_rng(1)
    sequences = _ragged(rng)
    y = np.array([s.sum() for s in sequences])
    on_list = LSTMRegressor(**FAST).fit(sequences, y)
    on_frame = LSTMRegressor(**FAST).fit(long_frame(sequences), y)
    queries = _ragged(rng, (3, 1, 6))
    assert_allclose(on_frame.predict(long_frame(queries)), on_list.predict(queries), rtol=1e-6)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        assert_allclose(on_frame.predict(queries), on_list.predict(queries), rtol=1e-6)


def test_instances_in_first_appearance_order_rows_need_not_be_grouped(data):
    X, y = data
    model = LSTMRegressor(**FAST).fit(X, y)
    labels = ["z", "a", "m"]  # not sorted: order is that of first appearance
    frame = long_frame(X[:3], labels)
    interleaved = frame.sort_index(level="t", sort_remaining=False)  # z0 a0 m0 z1 a1 ...
    assert interleaved.index[:3].get_level_values("id").tolist() == labels
    with pytest.warns(UserWarning, match="X has feature names"):  # fitted on the array
        assert_allclose(model.predict(interleaved), model.predict(X[:3]), rtol=1e-6)


def test_y_has_one_entry_per_instance(data):
    X, _ = data
    frame = long_frame(X)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LSTMRegressor(**FAST).fit(frame, np.zeros(len(frame)))  # one per row: wrong


def test_time_must_increase_within_an_instance(data):
    X, _ = data
    frame = long_frame(X[:3])
    shuffled = frame.iloc[[0, 2, 1, *range(3, len(frame))]]
    with pytest.raises(ValueError, match=r"instance 'id0' has time 2 \(row 1\) followed by 1"):
        LSTMRegressor(**FAST).fit(shuffled, np.zeros(3))
    repeated = pd.concat([frame.iloc[:1], frame])
    with pytest.raises(ValueError, match=r"time 0 \(row 0\) followed by 0 .*X.sort_index\(\)"):
        SequenceScaler().fit(repeated)
    # Sorting is the fix the message gives, and then the frame reads as before.
    assert_allclose(SequenceScaler().fit(shuffled.sort_index()).mean_, X[:3].mean(axis=(0, 1)))


def test_feature_names_come_from_the_columns_and_are_checked_at_predict(data):
    X, y = data
    frame = long_frame(X)
    model = LSTMRegressor(**FAST).fit(frame, y)
    assert model.feature_names_in_.tolist() == FEATURES
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- humidity"):
        model.predict(frame.rename(columns={"pressure": "humidity"}))
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        model.predict(frame[FEATURES[::-1]])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        model.predict(X)
    # A 2-D frame's columns are time steps, not features: no names, so a refit on one
    # forgets the long frame's names.
    model.fit(pd.DataFrame(X[..., 0], columns=[f"t{i}" for i in range(5)]), y)
    assert not hasattr(model, "feature_names_in_")


@pytest.mark.parametrize(
    "transformer", [SequenceScaler(), FeatureWiseTransformer(MinMaxScaler())], ids=repr
)
def test_preprocessors_return_a_long_frame_for_a_long_frame(transformer):
    rng = np.random.default_rng(2)
    sequences = _ragged(rng)
    frame = long_frame(sequences)
    # Rows interleaved (id0 t0, id1 t0, ..., id0 t1, ...): results must go back to them.
    frame = frame.iloc[np.argsort(frame.index.get_level_values("t"), kind="stable")]
    out = transformer.fit(frame).transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(frame.index) and out.columns.tolist() == FEATURES
    assert transformer.feature_names_in_.tolist() == FEATURES
    assert transformer.get_feature_names_out().tolist() == FEATURES
    # Row by row the same numbers as the list of the frame's instances gives.
    instances = [group.to_numpy() for _, group in frame.groupby(level="id", sort=False)]
    expected = transformer.fit(instances).transform(instances)
    by_instance = [group.to_numpy() for _, group in out.groupby(level="id", sort=False)]
    for got, want in zip(by_instance, expected, strict=True):
        assert_allclose(got, want)
    restored = transformer.fit(frame).inverse_transform(out)
    assert isinstance(restored, pd.DataFrame)
    assert_allclose(restored.to_numpy(), frame.to_numpy())
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing"):
        transformer.transform(frame.rename(columns={"temperature": "t"}))


def test_pipeline_on_a_long_frame_equals_the_3d_array(data):
    X, y = data
    on_array = make_pipeline(SequenceScaler(), LSTMRegressor(**FAST)).fit(X, y)
    on_frame = make_pipeline(SequenceScaler(), LSTMRegressor(**FAST)).fit(long_frame(X), y)
    assert_allclose(on_frame.predict(long_frame(X)), on_array.predict(X), rtol=1e-6)
    assert on_frame[-1].feature_names_in_.tolist() == FEATURES  # the frame reached it


def test_export_and_runtime_take_a_long_frame(data, tmp_path):
    X, y = data
    frame = long_frame(X)
    model = make_pipeline(SequenceScaler(), LSTMRegressor(**FAST)).fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verification feeds arrays: no names warning
        served = runtime.load(export(model, tmp_path / "m.onnx"))
    assert_allclose(served.predict(frame), model.predict(frame), rtol=1e-4, atol=1e-4)
    assert_allclose(served.predict(frame), served.predict(X))


def _three_levels(X):
    frame = long_frame(X)
    return frame.set_index(pd.Index(np.zeros(len(frame), int), name="site"), append=True)


def _column_multiindex(X):
    frame = long_frame(X)
    frame.columns = pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")])
    return frame


REFUSED = {
    "three row levels": (_three_levels, "3-level row MultiIndex \\['id', 't', 'site'\\]"),
    "MultiIndex columns": (_column_multiindex, "MultiIndex columns \\(2 levels\\)"),
    "MultiIndex Series": (lambda X: long_frame(X)["pressure"], "Series with a 2-level"),
    "wide frame, MultiIndex columns": (
        lambda X: pd.DataFrame(
            X.reshape(len(X), -1),
            columns=pd.MultiIndex.from_product([range(5), FEATURES]),
        ),
        "MultiIndex columns",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_other_multiindex_layouts_are_refused(data, case):
    X, y = data
    make, match = REFUSED[case]
    bad = make(X)
    fitted = LSTMRegressor(**FAST).fit(X, y)
    scaler = SequenceScaler().fit(X)
    calls = {
        "fit": lambda: LSTMRegressor(**FAST).fit(bad, y),
        "predict": lambda: fitted.predict(bad),
        "scaler.fit": lambda: SequenceScaler().fit(bad),
        "scaler.transform": lambda: scaler.transform(bad),
    }
    for where, call in calls.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the error comes alone, without a names warning
            with pytest.raises(ValueError, match=match) as info:
                call()
        assert re.search(LAYOUT, str(info.value)), (where, str(info.value))


def test_warm_start_refuses_reordered_columns_and_keeps_the_model(data):
    X, y = data
    frame = long_frame(X)
    model = LSTMRegressor(hidden_size=4, epochs=1, warm_start=True, random_state=0).fit(frame, y)
    before = model.predict(frame)
    with pytest.raises(ValueError, match="same order"):
        model.fit(frame[FEATURES[::-1]], y)
    assert list(model.feature_names_in_) == FEATURES
    assert_allclose(model.predict(frame), before)


def test_score_with_per_step_targets_on_a_long_frame_does_not_warn(data):
    X, _ = data
    frame, y = long_frame(X), X[:, :, :1]
    model = LSTMRegressor(hidden_size=4, epochs=1, random_state=0).fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert np.isfinite(model.score(frame, y))
