"""lstm_fcn / mlstm_fcn: padding, the length bound, options, ONNX lowering, search."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.model_selection import GridSearchCV

from seqpipe import BodyConfig, LSTMClassifier, LSTMRegressor, LSTMTransformer, runtime
from seqpipe import testing as kit
from seqpipe.architectures.fcn import FCNBody, FCNOptions, MaskedBatchNorm1d
from seqpipe.onnx import export
from seqpipe.plugins import get_architecture

TINY = {"filters": (8, 8, 8)}
FAST = {"hidden_size": 4, "epochs": 2, "batch_size": 16, "random_state": 0}
T = 12  # training length: the shuffle's default bound
ARCHS = ("lstm_fcn", "mlstm_fcn")
SHUFFLE = (True, False)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(n: int = 30, t: int = T, f: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, t, f))


def _options(shuffle: bool, **extra) -> dict:
    return {**TINY, "dimension_shuffle": shuffle, **extra}


# --- padding never changes a result ---------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("shuffle", SHUFFLE)
def test_ragged_batch_equals_each_sequence_alone(arch, shuffle):
    X = _data()
    model = LSTMRegressor(arch, architecture_options=_options(shuffle), **FAST)
    model.fit(X, X[:, :, 0].sum(axis=1))
    rng = np.random.default_rng(1)
    sequences = [rng.normal(size=(length, 2)) for length in (T, 3, 7, 1, 11)]
    together = model.predict(sequences)
    alone = np.array([model.predict(seq[None])[0] for seq in sequences])
    assert_allclose(together, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(
    "shuffle, bidirectional, recurrent", [(True, False, "lstm"), (False, True, "gru")]
)
def test_body_outputs_in_a_ragged_batch_equal_alone(arch, shuffle, bidirectional, recurrent):
    config = BodyConfig(
        input_size=3,
        hidden_size=5,
        num_layers=2,
        bidirectional=bidirectional,
        max_timesteps=9,
        options=_options(shuffle, recurrent=recurrent),
    )
    torch.manual_seed(0)
    body = get_architecture(arch).build(config)
    body.train()
    x = torch.randn(8, 9, 3)
    body(x, torch.tensor([9, 4, 1, 6, 9, 2, 8, 5]))  # moves the running statistics
    body.eval()
    lengths = torch.tensor([9, 4, 1, 6])
    x = x[:4]
    for i, length in enumerate(lengths.tolist()):
        x[i, length:] = 0.0
    with torch.no_grad():
        sequence, summary = body(x, lengths)
        for i, length in enumerate(lengths.tolist()):
            alone_sequence, alone_summary = body(x[i : i + 1, :length], None)
            assert_allclose(sequence[i, :length], alone_sequence[0], atol=1e-5)
            assert_allclose(summary[i], alone_summary[0], atol=1e-5)
    assert body.output_size == 5 * (2 if bidirectional else 1) + 8


def test_masked_batch_norm_ignores_padding_values():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 6)
    lengths = torch.tensor([6, 2, 5, 3])
    mask = (torch.arange(6) < lengths[:, None]).unsqueeze(1).float()
    junk = torch.where(mask.bool(), x, torch.full_like(x, 1e3))
    reference = torch.nn.BatchNorm1d(3)
    valid = torch.cat([x[i, :, :n] for i, n in enumerate(lengths.tolist())], dim=1)
    expected = reference(valid.unsqueeze(0))  # every valid step, no padding at all
    norm = MaskedBatchNorm1d(3)
    out = norm(junk, mask)
    got = torch.cat([out[i, :, :n] for i, n in enumerate(lengths.tolist())], dim=1)
    assert_allclose(got.detach(), expected[0].detach(), atol=1e-5)
    assert_allclose(norm.running_mean, reference.running_mean, atol=1e-6)
    assert_allclose(norm.running_var, reference.running_var, atol=1e-6)
    assert int(norm.num_batches_tracked) == 1


def test_batch_norm_training_statistics_ignore_junk_length_padding():
    # The same sequences, once as an equal-length array and once NaN-padded far
    # past their end: training must see the same data, so the same statistics.
    X = _data(n=20, t=10)
    y = X[:, :, 0].sum(axis=1)
    padded = np.concatenate([X, np.full((20, 25, 2), np.nan)], axis=1)
    params = {**FAST, "architecture_options": _options(False)}
    plain = LSTMRegressor("mlstm_fcn", **params).fit(X, y)
    ragged = LSTMRegressor("mlstm_fcn", **params).fit(padded, y)
    for a, b in zip(plain.module_.body.blocks, ragged.module_.body.blocks, strict=True):
        assert_allclose(a.norm.running_mean, b.norm.running_mean, rtol=1e-5, atol=1e-6)
        assert_allclose(a.norm.running_var, b.norm.running_var, rtol=1e-5, atol=1e-6)
    assert_allclose(plain.predict(X), ragged.predict(X), rtol=1e-5, atol=1e-6)


# --- the dimension shuffle's length bound ----------------------------------------------


def test_shuffle_sizes_the_lstm_by_the_training_length_and_refuses_longer():
    X = _data()
    model = LSTMClassifier("lstm_fcn", architecture_options=TINY, **FAST)
    model.fit(X, np.arange(30) % 3)
    body = model.module_.body
    assert model.max_timesteps_ == body.max_timesteps == T
    assert body.recurrent.rnn.input_size == T  # the series is the LSTM's input
    assert body.output_size == 4 + 8
    with pytest.raises(ValueError, match=rf"max_timesteps={T}.*dimension_shuffle'\]=False"):
        model.predict(_data(n=2, t=T + 1))
    # Trailing NaN columns past every sequence's end are padding, not length.
    longer = np.concatenate([_data(n=2), np.full((2, 5, 2), np.nan)], axis=1)
    assert_allclose(model.predict_proba(longer), model.predict_proba(_data(n=2)))


@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_runtime_keeps_the_bound_like_python(tmp_path, cls):
    """Served from ONNX, a batch wider than max_timesteps is fine while the extra steps
    are padding, and a longer sequence gets a message naming the bound, as in Python."""
    X = _data()
    y = np.arange(30) % 3 if cls is LSTMClassifier else X[:, 0, 0]
    model = cls("lstm_fcn", architecture_options=TINY, **FAST).fit(X, y)
    served = runtime.load(export(model, tmp_path / "m.onnx"))
    assert served.max_timesteps == T
    longer = np.concatenate([_data(n=3), np.full((3, 5, 2), np.nan)], axis=1)
    longer[1, T - 2 :] = np.nan  # a ragged row too
    assert_allclose(served.predict(longer), model.predict(longer), rtol=1e-4, atol=1e-5)
    too_long = _data(n=2, t=T + 1)
    for predict in (model.predict, served.predict):
        with pytest.raises(ValueError, match=rf"max_timesteps={T}.*dimension_shuffle'\]=False"):
            predict(too_long)


def test_max_timesteps_option_lifts_the_bound_and_survives_warm_start():
    X = _data()
    options = {**TINY, "max_timesteps": 40}
    model = LSTMRegressor("mlstm_fcn", architecture_options=options, warm_start=True, **FAST)
    model.fit(X, X[:, 0, 0])
    assert model.module_.body.max_timesteps == 40 and model.max_timesteps_ == T
    assert model.predict(_data(n=3, t=40)).shape == (3,)
    body = model.module_.body
    model.fit(X, X[:, 0, 0])  # warm start reuses the same body
    assert model.module_.body is body
    without = LSTMRegressor("lstm_fcn", architecture_options=_options(False), **FAST)
    assert without.fit(X, X[:, 0, 0]).module_.body.max_timesteps is None
    assert without.predict(_data(n=2, t=100)).shape == (2,)


def test_transformer_and_per_step_heads():
    X = _data()
    features = LSTMTransformer("lstm_fcn", architecture_options=TINY, **FAST).fit(X)
    assert features.transform(X).shape == (30, 12)
    per_step = LSTMRegressor("mlstm_fcn", architecture_options=_options(False), **FAST)
    assert per_step.fit(X, np.cumsum(X[:, :, :1], axis=1)).predict(X).shape == (30, T, 1)


def test_the_kit_keeps_to_a_bounded_body():
    # Without a max_timesteps option the bound is the kit's training length (6), below
    # the lengths it predicts at: the kit and export verification must cap them.
    params = {"hidden_size": 4, "architecture_options": TINY}
    for check in (kit.check_regressor_single, kit.check_ragged_batch_matches_alone):
        check("lstm_fcn", params)
    kit.check_body_contract("mlstm_fcn", params)


# --- options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"filter": (8,)}, r"unknown architecture_options \['filter'\].*kernel_sizes"),
        ({"filters": 8}, r"architecture_options\['filters'\] must be tuple of positive ints"),
        ({"filters": (8, 0, 8)}, r"'filters'\] must be"),
        ({"filters": (8, 8)}, "one entry per conv block"),
        ({"dimension_shuffle": 1}, r"'dimension_shuffle'\] must be bool"),
        ({"lstm_dropout": 1.0}, r"'lstm_dropout'\] must be float in \[0, 1\)"),
        ({"recurrent": "rnn"}, r"'recurrent'\] must be 'lstm' or 'gru'"),
        ({"se_reduction": 4}, "se_reduction applies only with squeeze_excitation=True"),
        ({"squeeze_excitation": True, "se_reduction": True}, r"'se_reduction'\] must be"),
        ({"dimension_shuffle": False, "max_timesteps": 30}, "only with dimension_shuffle=True"),
        ({"max_timesteps": 5}, r"max_timesteps'\]=5 is shorter than the longest training"),
    ],
)
def test_bad_options_are_value_errors(options, message):
    model = LSTMRegressor("lstm_fcn", architecture_options=options, **FAST)
    with pytest.raises(ValueError, match=message):
        model.fit(_data(n=4), np.zeros(4))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"activation": "relu"}, "supports only activation='tanh'"),
        ({"recurrent_activation": "hard_sigmoid"}, "supports only recurrent_activation"),
        ({"bidirectional": True}, "bidirectional=True needs dimension_shuffle=False"),
    ],
)
def test_unsupported_knobs_are_value_errors(params, message):
    model = LSTMRegressor("mlstm_fcn", architecture_options=TINY, **{**FAST, **params})
    with pytest.raises(ValueError, match=message):
        model.fit(_data(n=4), np.zeros(4))


def test_defaults_are_the_papers():
    lstm_fcn = FCNOptions.parse("lstm_fcn", {}, squeeze_excitation=False)
    assert (lstm_fcn.filters, lstm_fcn.kernel_sizes) == ((128, 256, 128), (8, 5, 3))
    assert lstm_fcn.dimension_shuffle and lstm_fcn.lstm_dropout == 0.8
    assert lstm_fcn.recurrent == "lstm" and not lstm_fcn.squeeze_excitation
    body = FCNBody(BodyConfig(2, 8, max_timesteps=30), lstm_fcn)
    assert body.output_size == 8 + 128
    assert [b.se for b in body.blocks] == [None] * 3
    mlstm = get_architecture("mlstm_fcn").build(BodyConfig(2, 8, max_timesteps=30))
    widths = [b.se.squeeze.out_features for b in mlstm.blocks[:2]]
    assert widths == [128 // 16, 256 // 16] and mlstm.blocks[2].se is None
    with pytest.raises(ValueError, match=r"BodyConfig\.max_timesteps is None"):
        get_architecture("lstm_fcn").build(BodyConfig(2, 8))


# --- ONNX ----------------------------------------------------------------------------


def _onnx_inputs(bound: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    cases = [rng.normal(size=(b, t, 2)) for b in (1, 4, 16) for t in (1, 5, bound)]
    ragged = rng.normal(size=(6, bound, 2))
    for i, length in enumerate((bound, 1, 4, bound - 1, 2, 7)):
        ragged[i, length:] = np.nan
    return [*cases, ragged]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("shuffle", SHUFFLE)
@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_onnx_parity(tmp_path, arch, shuffle, task):
    X = _data() * [1.0, 10.0] + [0.0, 50.0]
    options = _options(shuffle, filters=(8, 16, 8))
    if task == "classifier":
        model = LSTMClassifier(arch, architecture_options=options, **FAST)
        model.fit(X, np.array(["a", "b", "c"])[np.arange(30) % 3])
    else:
        model = LSTMRegressor(arch, architecture_options=options, **FAST)
        model.fit(X, 100 + 10 * X[:, :, 0].sum(axis=1))
    # The exporter verifies at its default lengths (1, 9, 120), capped at the bound.
    path = export(model, tmp_path / "model.onnx")
    graph = onnx.load(str(path)).graph
    ops = {node.op_type for node in graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops  # BatchNorm folded
    assert "LSTM" in ops  # the native recurrent node
    served = runtime.load(path, intra_op_num_threads=1)
    inputs = _onnx_inputs(T) + ([] if shuffle else [_data(n=3, t=40) * 10 + 50])
    for batch in inputs:
        if task == "classifier":
            expected = model.predict_proba(batch)
            assert_allclose(served.predict_proba(batch), expected, atol=1e-4)
            clear = np.ptp(np.sort(expected, axis=1)[:, -2:], axis=1) > 1e-3
            assert (served.predict(batch)[clear] == model.predict(batch)[clear]).all()
        else:
            expected = model.predict(batch)
            assert_allclose(served.predict(batch), expected, rtol=1e-4, atol=1e-4)


def test_onnx_gru_branch_and_kit_parity_with_the_default_bound(tmp_path):
    kit.check_onnx_parity("lstm_fcn", {"hidden_size": 3, "architecture_options": TINY})
    X = _data()
    options = _options(True, recurrent="gru")
    model = LSTMRegressor("lstm_fcn", architecture_options=options, **FAST).fit(X, X[:, 0, 0])
    path = export(model, tmp_path / "gru.onnx")
    assert "GRU" in {node.op_type for node in onnx.load(str(path)).graph.node}


# --- search ---------------------------------------------------------------------------


def test_grid_search_over_architectures():
    X = _data(n=24)
    y = np.where(X[:, :, 0].mean(axis=1) > 0, "up", "down")
    grid = [
        {"architecture": ["lstm"]},
        {"architecture": ["lstm_fcn", "mlstm_fcn"], "architecture_options": [TINY]},
    ]
    search = GridSearchCV(LSTMClassifier(**FAST), grid, cv=2).fit(X, y)
    tried = [p["architecture"] for p in search.cv_results_["params"]]
    assert tried == ["lstm", "lstm_fcn", "mlstm_fcn"]
    assert search.best_estimator_.predict(X).shape == (24,)


@pytest.mark.parametrize("arch", ["lstm_fcn", "mlstm_fcn"])
def test_streaming_export_is_refused_with_a_clear_message(tmp_path, arch):
    from seqpipe.onnx import UnsupportedModelError

    model = LSTMRegressor(arch, architecture_options=TINY, **FAST).fit(_data(n=8), np.zeros(8))
    with pytest.raises(UnsupportedModelError, match=rf"{arch}.*does not"):
        export(model, tmp_path / "s.onnx", streaming=True)
    # A default classifier scales each series too; the architecture is what to
    # report, as refitting with local_scaling=None would not make it stream.
    clf = LSTMClassifier(arch, architecture_options=TINY, **FAST)
    clf.fit(_data(n=8), np.arange(8) % 2)
    with pytest.raises(UnsupportedModelError, match=rf"{arch}.*does not"):
        export(clf, tmp_path / "c.onnx", streaming=True)
    assert not list(tmp_path.iterdir())
