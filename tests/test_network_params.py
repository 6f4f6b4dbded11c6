"""``network_params_``: a fitted model describes, exports and trains the network it
built, whatever ``set_params`` changed since; more training refuses a change."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from sklearn.base import clone

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer, runtime
from seqpipe.onnx import export

FCN = {"filters": (4, 4, 4)}  # tiny conv blocks: fast, and still the FCN lowering

#: One change per parameter that shapes the network, from LSTMClassifier(epochs=1).
CHANGES = [
    {"architecture": "gru"},
    {"architecture": "lstm_fcn", "architecture_options": FCN},
    {"hidden_size": 5},
    {"num_layers": 2},
    {"bidirectional": True},
    {"dropout": 0.5},
    {"activation": "relu"},
    {"recurrent_activation": "hard_sigmoid"},
    {"architecture_options": {"gate_bias_init": "torch"}},
    {"head_layers": (4,)},
    {"head_activation": "tanh"},
]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 10, 2))
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


def parameters(model) -> list[np.ndarray]:
    return [p.detach().clone().numpy() for p in model.module_.parameters()]


def network_metadata(path) -> dict:
    session = runtime.load(path)
    return {
        "architecture": session.metadata["seqpipe.architecture"],
        **json.loads(session.metadata["seqpipe.network"]),
    }


def test_fit_records_the_network_built(data):
    X, y = data
    model = LSTMClassifier("lstm_fcn", architecture_options=FCN, epochs=1).fit(X, y)
    assert model.network_params_ == {
        "architecture": "lstm_fcn",
        "hidden_size": 8,  # "auto", resolved for lstm_fcn
        "num_layers": 1,
        "bidirectional": False,
        "dropout": 0.0,
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "architecture_options": FCN,
        "head_layers": (),
        "head_activation": "relu",
    }
    # A copy: changing the parameter's dict afterwards does not rewrite the record.
    model.architecture_options["filters"] = (2, 2, 2)
    assert model.network_params_["architecture_options"] == {"filters": (4, 4, 4)}


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: "+".join(c))
def test_export_describes_the_fitted_network_after_set_params(data, tmp_path, change):
    X, y = data
    model = LSTMClassifier(epochs=1, random_state=0).fit(X, y)
    before = model.predict_proba(X)
    model.set_params(**change)
    np.testing.assert_array_equal(model.predict_proba(X), before)
    path = export(model, tmp_path / "m.onnx")  # verified against predict_proba
    network = network_metadata(path)
    assert network["architecture"] == "lstm"
    assert (network["hidden_size"], network["num_layers"]) == (32, 1)
    assert (network["activation"], network["head_layers"]) == ("tanh", [])
    assert network["lowering"] == "native recurrent nodes"
    np.testing.assert_allclose(runtime.load(path).predict_proba(X), before, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: "+".join(c))
def test_warm_start_refuses_a_changed_network(data, change):
    X, y = data
    model = LSTMClassifier(epochs=1, warm_start=True, random_state=0).fit(X, y)
    weights, history = parameters(model), list(model.history_)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"was built with {name}=.*now ask for {name}="):
        model.set_params(**change).fit(X, y)
    # Nothing already trained is lost.
    assert model.history_ == history
    assert all(np.array_equal(a, b) for a, b in zip(weights, parameters(model), strict=True))
    # Set back, the warm start continues the same network.
    model.set_params(**clone(LSTMClassifier(epochs=1)).get_params() | {"warm_start": True})
    assert model.fit(X, y).n_epochs_ == 2


@pytest.mark.parametrize("change", CHANGES[:4], ids=lambda c: "+".join(c))
def test_partial_fit_refuses_a_changed_network(data, change):
    X, y = data
    model = LSTMRegressor(epochs=1, random_state=0).fit(X, y.astype(float))
    weights = parameters(model)
    with pytest.raises(ValueError, match="partial_fit continues training the fitted network"):
        model.set_params(**change).partial_fit(X, y.astype(float))
    assert all(np.array_equal(a, b) for a, b in zip(weights, parameters(model), strict=True))


def test_a_fresh_fit_builds_the_new_network(data):
    X, _ = data
    model = LSTMTransformer(epochs=1, random_state=0).fit(X)
    model.set_params(architecture="gru", hidden_size=6).fit(X)
    assert model.network_params_["architecture"] == "gru"
    assert model.transform(X).shape == (len(X), 6)


def test_auto_width_equal_to_the_built_one_is_no_change(data):
    X, y = data
    model = LSTMClassifier(hidden_size=32, epochs=1, warm_start=True).fit(X, y)
    model.set_params(hidden_size="auto").fit(X, y)  # "auto" is 32 for lstm
    assert model.n_epochs_ == 2
    with pytest.raises(ValueError, match=r"hidden_size='auto' for architecture 'lstm_fcn'"):
        model.set_params(architecture="lstm_fcn").fit(X, y)


def test_models_pickled_before_network_params_existed(data, tmp_path):
    X, y = data
    model = LSTMClassifier(num_layers=2, epochs=1).fit(X, y)
    del model.network_params_  # as a pickle of an older seqpipe holds it
    old = pickle.loads(pickle.dumps(model))
    assert old.network_params_ == LSTMClassifier(num_layers=2).fit(X, y).network_params_
    assert network_metadata(export(old, tmp_path / "o.onnx"))["num_layers"] == 2
    with pytest.raises(ValueError, match="built with num_layers=2"):
        old.set_params(num_layers=1, warm_start=True).fit(X, y)
    old.set_params(num_layers=2).fit(X, y)  # the warm start records what it continued
    assert old.network_params_["num_layers"] == 2


@pytest.mark.parametrize(
    "built, same",
    [
        ({"activation": None}, {"activation": "linear"}),
        (
            {"architecture": "lstm_fcn", "architecture_options": {"filters": [4, 4, 4]}},
            {"architecture": "lstm_fcn", "architecture_options": {"filters": (4, 4, 4)}},
        ),
    ],
)
def test_another_spelling_of_the_same_network_is_no_change(data, built, same):
    X, y = data
    model = LSTMClassifier(epochs=1, warm_start=True, random_state=0, **built).fit(X, y)
    assert model.set_params(**same).fit(X, y).n_epochs_ == 2


def test_the_file_describes_options_dropout_and_head(data, tmp_path):
    X, y = data
    options = {"filters": (4, 4, 4), "lstm_dropout": 0.0}
    model = LSTMClassifier(
        "lstm_fcn", architecture_options=options, head_layers=(3,), head_activation="tanh", epochs=1
    ).fit(X, y)
    network = network_metadata(export(model, tmp_path / "m.onnx"))
    assert network["architecture_options"] == {"filters": [4, 4, 4], "lstm_dropout": 0.0}
    assert (network["dropout"], network["head_activation"]) == (0.0, "tanh")
