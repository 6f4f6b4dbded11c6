"""``set_output``: scikit-learn's pandas output wherever a result is a table.

``make_pipeline(SequenceScaler(), LSTMTransformer()).set_output(transform="pandas")``
must work; 2-D results become DataFrames (``LSTMTransformer``'s named by
``get_feature_names_out``), while 3-D results, which pandas cannot hold, lists of
sequences and long-format frames keep their layout.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sklearn import config_context
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import check_set_output_transform

from seqpipe import LSTMTransformer
from seqpipe.preprocessing import FeatureWiseTransformer, SequenceScaler

FAST = {"hidden_size": 3, "epochs": 2, "random_state": 0}
NAMES = ["lstmtransformer0", "lstmtransformer1", "lstmtransformer2"]
PREPROCESSORS = [SequenceScaler(), FeatureWiseTransformer(MinMaxScaler())]


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(loc=5.0, size=(12, 6, 2))


def _long(X):
    index = pd.MultiIndex.from_product([[f"s{i}" for i in range(len(X))], range(X.shape[1])])
    return pd.DataFrame(X.reshape(-1, X.shape[2]), index=index, columns=["a", "b"])


def test_pipeline_set_output_pandas_end_to_end(X):
    y = X[:, -1, 0]
    plain = make_pipeline(SequenceScaler(), LSTMTransformer(**FAST))
    pipe = clone(plain).set_output(transform="pandas")
    features = pipe.fit_transform(X)
    assert isinstance(features, pd.DataFrame)
    assert features.columns.tolist() == NAMES
    assert features.index.tolist() == list(range(len(X)))
    assert_allclose(features.to_numpy(), plain.fit_transform(X))
    assert pipe.transform(X[:4]).columns.tolist() == NAMES
    # A model behind it gets the names.
    model = make_pipeline(SequenceScaler(), LSTMTransformer(**FAST), Ridge())
    model.set_output(transform="pandas").fit(X, y)
    assert model[-1].feature_names_in_.tolist() == NAMES
    assert model.predict(X).shape == (len(X),)


def test_long_frame_input_gives_one_row_per_instance(X):
    pipe = make_pipeline(SequenceScaler(), LSTMTransformer(**FAST)).set_output(transform="pandas")
    features = pipe.fit_transform(_long(X))
    assert features.index.tolist() == [f"s{i}" for i in range(len(X))]
    assert features.columns.tolist() == NAMES
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        on_array = pipe.transform(X)  # fitted on the frame's names; same numbers
    assert_allclose(features.to_numpy(), on_array, rtol=1e-6)


def test_global_transform_output_config(X):
    encoder = LSTMTransformer(**FAST).fit(X)
    with config_context(transform_output="pandas"):
        assert isinstance(encoder.transform(X), pd.DataFrame)
        assert isinstance(SequenceScaler().fit_transform(X), np.ndarray)  # 3-D passes
    assert isinstance(encoder.transform(X), np.ndarray)


@pytest.mark.parametrize("transformer", PREPROCESSORS, ids=repr)
def test_three_d_results_pass_through_unchanged(X, transformer):
    default = clone(transformer).fit_transform(X)
    pandas = clone(transformer).set_output(transform="pandas")
    out = pandas.fit_transform(X)
    assert type(out) is np.ndarray and out.shape == X.shape
    assert_allclose(out, default)
    assert_allclose(pandas.transform(X), default)
    ragged = [X[0, :4], X[1]]
    listed = pandas.transform(ragged)
    assert isinstance(listed, list) and [a.shape for a in listed] == [(4, 2), (6, 2)]


@pytest.mark.parametrize("transformer", PREPROCESSORS, ids=repr)
def test_two_d_results_become_frames_with_time_step_columns(X, transformer):
    frame = pd.DataFrame(X[..., 0], columns=[f"t{i}" for i in range(6)], index=range(100, 112))
    transformer = clone(transformer).set_output(transform="pandas")
    out = transformer.fit_transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(frame.index) and out.columns.equals(frame.columns)
    default = clone(transformer).set_output(transform="default").fit_transform(X[..., 0])
    assert_allclose(out.to_numpy(), default)
    numbered = transformer.fit_transform(X[..., 0])  # an array: columns numbered
    assert isinstance(numbered, pd.DataFrame) and numbered.columns.tolist() == list(range(6))


@pytest.mark.parametrize("transformer", PREPROCESSORS, ids=repr)
@pytest.mark.parametrize("output", ["default", "pandas"])
def test_long_frames_stay_long_frames(X, transformer, output):
    frame = _long(X)
    out = clone(transformer).set_output(transform=output).fit_transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(frame.index) and out.columns.tolist() == ["a", "b"]


@pytest.mark.parametrize(
    "transformer", [*PREPROCESSORS, LSTMTransformer(**FAST)], ids=lambda t: type(t).__name__
)
def test_sklearn_set_output_check(transformer):
    check_set_output_transform(type(transformer).__name__, transformer)


def test_configuration_survives_clone_and_bad_values_are_refused():
    scaler = SequenceScaler().set_output(transform="pandas")
    assert clone(scaler)._sklearn_output_config == {"transform": "pandas"}
    assert scaler.set_output() is scaler and scaler._sklearn_output_config["transform"] == "pandas"
    with pytest.raises(ValueError, match=r"output config must be in .*got parquet"):
        SequenceScaler().set_output(transform="parquet")


def test_polars_output(X):
    pl = pytest.importorskip("polars")
    pipe = make_pipeline(SequenceScaler(), LSTMTransformer(**FAST)).set_output(transform="polars")
    features = pipe.fit_transform(X)
    assert isinstance(features, pl.DataFrame) and features.columns == NAMES
    assert type(pipe[0].transform(X)) is np.ndarray  # 3-D still passes through
