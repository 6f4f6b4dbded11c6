"""One window passed alone: a 2-D X is (n_sequences, n_timesteps) for one feature, so
``X[0]`` of a multivariate batch is refused with the fix (``X[None]``), and ``X[0]``
of a univariate batch, shape (n, 1), is read as n one-step sequences with a warning
naming the fix. The estimators and the runtime say the same words."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from sklearn.pipeline import make_pipeline

from seqpipe import LSTMClassifier, LSTMRegressor, SingleWindowWarning, runtime
from seqpipe import _format as fmt
from seqpipe.onnx import export
from seqpipe.preprocessing import SequenceScaler

FAST = {"hidden_size": 3, "epochs": 1, "random_state": 0}
QUICK = {"verify_batch_sizes": (1,), "verify_lengths": (2,)}


@pytest.fixture(scope="module")
def multivariate(tmp_path_factory):
    X = np.random.default_rng(0).normal(size=(16, 10, 3))
    folder = tmp_path_factory.mktemp("multi")
    reg = LSTMRegressor(**FAST).fit(X, X[:, -1, 0])
    pipe = make_pipeline(SequenceScaler(), LSTMRegressor(**FAST)).fit(X, X[:, -1, 0])
    clf = LSTMClassifier(**FAST).fit(X, X[:, 0, 0] > 0)
    files = [
        runtime.load(export(m, folder / f"{type(m).__name__}.onnx", **QUICK)) for m in (reg, clf)
    ]
    return X, reg, pipe, clf, files


@pytest.fixture(scope="module")
def univariate(tmp_path_factory):
    X = np.random.default_rng(1).normal(size=(16, 10, 1))
    est = LSTMRegressor(**FAST).fit(X, X[:, -1, 0])
    path = export(est, tmp_path_factory.mktemp("uni") / "u.onnx", **QUICK)
    return X, est, path


def test_a_multivariate_window_alone_names_the_convention_and_the_fix(multivariate):
    X, reg, pipe, clf, (reg_file, clf_file) = multivariate
    window = X[0]  # (10, 3): one sequence of 10 steps with 3 features
    calls = {
        "LSTMRegressor.predict": reg.predict,
        "Pipeline.predict": pipe.predict,
        "LSTMClassifier.predict_proba": clf.predict_proba,
        "runtime.predict": reg_file.predict,
        "runtime.predict_proba": clf_file.predict_proba,
    }
    messages = set()
    for name, call in calls.items():
        with pytest.raises(ValueError) as error:
            call(window)
        messages.add(str(error.value))
        assert "(n_samples, n_timesteps) with one feature" in str(error.value), name
        assert "X[None], of shape (1, 10, 3)" in str(error.value), name
    assert len(messages) == 1  # the same words everywhere
    # The fix works, and gives what the window gives inside a batch.
    np.testing.assert_allclose(reg.predict(window[None]), reg.predict(X[:1]))
    np.testing.assert_allclose(reg_file.predict(window[None]), reg.predict(X[:1]), atol=1e-5)


def test_a_2d_x_of_another_width_gets_no_window_hint(multivariate):
    X, reg, *_ = multivariate
    with pytest.raises(ValueError, match="pass a 3-D array") as error:
        reg.predict(X[:4, :, 0])  # (4, 10): four univariate sequences, for a 3-feature model
    assert "X[None]" not in str(error.value)


def test_a_univariate_window_alone_warns_and_keeps_the_convention(univariate):
    X, est, path = univariate
    model = runtime.load(path)
    window = X[0]  # (10, 1): read as 10 sequences of one step
    for call in (est.predict, model.predict):
        with pytest.warns(SingleWindowWarning) as record:
            predictions = call(window)
        assert len(predictions) == 10  # the 2-D convention stays
        message = str(record[0].message)
        assert "10 sequences of 1 time step each" in message
        assert "fitted on sequences of at least 10 time steps" in message
        assert "pass X[None], of shape (1, 10, 1)" in message
        assert record[0].filename == __file__  # points at the caller's line
    np.testing.assert_allclose(model.predict(window[None]), est.predict(X[:1]), atol=1e-5)


def test_no_warning_where_one_step_sequences_are_meant(univariate, tmp_path):
    X, est, path = univariate
    model = runtime.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingleWindowWarning)
        for call in (est.predict, model.predict):
            call(X[:3, :, 0])  # (3, 10): three sequences
            call(X[0, :1].T)  # (1, 1): one value
            call(X[:, :1])  # (16, 1, 1): 3-D one-step sequences, as the warning advises
        # A model fitted on one-step sequences (among others) expects them.
        ragged = [X[0, :1, 0], *X[1:, :, 0]]
        short = LSTMRegressor(**FAST).fit(ragged, X[:, -1, 0])
        assert len(short.predict(X[:, :1, 0])) == 16
        # Files from before the shortest-fit key: nothing to compare with.
        proto = onnx.load(path)
        kept = [p for p in proto.metadata_props if p.key != fmt.KEY_SHORTEST_FIT]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        assert len(runtime.load(proto.SerializeToString()).predict(X[:, :1, 0])) == 16


def test_exported_files_record_the_shortest_training_sequence(univariate):
    X, _, path = univariate
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert meta[fmt.KEY_SHORTEST_FIT] == "10"
    padded = X.copy()
    padded[3, 4:] = np.nan  # sample 3 has 4 steps
    refit = LSTMRegressor(**FAST).fit(padded, X[:, -1, 0])
    with pytest.warns(SingleWindowWarning, match="at least 4 time steps"):
        refit.predict(X[0])
