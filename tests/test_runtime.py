"""seqpipe.runtime: torch-free loading, validation, providers, threads, streaming."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer, runtime
from seqpipe.onnx import export
from seqpipe.onnx.graph import GraphBuilder

FAST = {"hidden_size": 5, "epochs": 1, "random_state": 0}
QUICK = {"verify_batch_sizes": (1, 3), "verify_lengths": (1, 8)}
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: 2 OpenMP threads only fight each other
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 6, 2))
    return X, 50 + 10 * X[:, :, 0].sum(axis=1)


@pytest.fixture(scope="module")
def regressor(data, tmp_path_factory):
    est = LSTMRegressor(**FAST).fit(*data)
    path = export(est, tmp_path_factory.mktemp("reg") / "reg.onnx", **QUICK)
    return est, path


@pytest.fixture(scope="module")
def classifier(data, tmp_path_factory):
    X, y = data
    clf = LSTMClassifier(**FAST).fit(X, np.where(y > 50, "up", "down"))
    return clf, export(clf, tmp_path_factory.mktemp("clf") / "clf.onnx", **QUICK)


@pytest.fixture(scope="module")
def streaming(data, tmp_path_factory):
    est = LSTMRegressor(num_layers=2, **FAST).fit(*data)
    path = export(est, tmp_path_factory.mktemp("stream") / "s.onnx", streaming=True, **QUICK)
    return est, path


def test_runtime_works_without_torch_sklearn_or_onnx(regressor, data):
    est, path = regressor
    X = data[0][:4]
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        for blocked in ("torch", "sklearn", "onnx", "scipy"):
            sys.modules[blocked] = None  # any import of these now fails
        from seqpipe import runtime
        model = runtime.load({str(path)!r})
        X = np.array(json.loads(sys.stdin.read()))
        print(json.dumps(model.predict(X).tolist()))
        assert "seqpipe.regressor" not in sys.modules
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(X.tolist()),
        capture_output=True,
        text=True,
        check=True,
    )
    np.testing.assert_allclose(json.loads(out.stdout), est.predict(X), rtol=1e-5)


def test_predict_matches_estimator_in_every_accepted_layout(regressor, data, classifier):
    est, path = regressor
    model = runtime.load(path)
    X = data[0][:5]
    expected = est.predict(X)
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict(X.astype(np.float32)), expected, rtol=1e-5)
    np.testing.assert_allclose(model.predict(X.tolist()), expected, rtol=1e-5)
    ragged = [X[0], X[1, :3], X[2, :1]]
    np.testing.assert_allclose(model.predict(ragged), est.predict(ragged), rtol=1e-5)
    model_bytes = runtime.load(path.read_bytes())
    np.testing.assert_allclose(model_bytes.predict(X), expected, rtol=1e-5)
    clf, clf_path = classifier
    clf_model = runtime.load(clf_path)
    assert clf_model.predict(X).dtype == clf.predict(X).dtype
    np.testing.assert_array_equal(clf_model.classes_, clf.classes_)
    np.testing.assert_allclose(clf_model.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    assert "LSTMRegressor" in repr(model)


def test_one_feature_models_take_2d_input(tmp_path):
    X = np.arange(10, 200, 10.0)[np.arange(12)[:, None] + np.arange(3)]
    est = LSTMRegressor(**FAST).fit(X, X[:, -1] + 10)
    model = runtime.load(export(est, tmp_path / "uni.onnx", **QUICK))
    np.testing.assert_allclose(model.predict([[70.0, 80.0, 90.0]]), est.predict([[70.0, 80, 90]]))
    with pytest.raises(ValueError, match=r"3-D array .* 2-D array .*reshape\(1, -1\)"):
        model.predict([70.0, 80.0, 90.0])


def test_transform_keeps_the_estimators_dtype_rule(data, tmp_path):
    tr = LSTMTransformer(**FAST).fit(data[0])
    model = runtime.load(export(tr, tmp_path / "t.onnx", **QUICK))
    X = data[0][:3]
    assert model.transform(X).dtype == tr.transform(X).dtype == np.float64
    assert model.transform(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(model.transform(X), tr.transform(X), atol=1e-6)
    with pytest.raises(AttributeError, match="only available for classifiers"):
        model.predict_proba(X)


BAD_INPUTS = {
    "wrong feature count": (np.zeros((2, 4, 3)), ValueError, "3 features per time step.*expects 2"),
    "2-D for 2 features": (np.zeros((2, 4)), ValueError, "2-D .* one feature, but 2 features"),
    "1-D": (np.zeros(4), ValueError, "1 dimension"),
    "4-D": (np.zeros((1, 2, 3, 2)), ValueError, "4 dimension"),
    "strings": (np.full((1, 3, 2), "a"), TypeError, "must hold numbers"),
    "objects": (np.array([[[{}, 1.0]]], dtype=object), TypeError, "must hold numbers"),
    # None in an object array is a missing value (NaN), as in scikit-learn and pandas.
    "None": (np.array([[[None, 1.0]]], dtype=object), ValueError, "only some features"),
    "empty": (np.zeros((0, 3, 2)), ValueError, "at least 1 sequence"),
    "inf": (np.array([[[1.0, np.inf]]]), ValueError, "infinity"),
    "overflow": (np.array([[[1e300, 1.0]]]), ValueError, "too large for float32.*infinity"),
    "NaN in one feature": (np.array([[[1.0, np.nan]]]), ValueError, "only some features"),
    "NaN gap": (np.array([[[np.nan] * 2, [1.0, 2.0]]]), ValueError, "inside sample 0"),
    "all NaN": (np.full((1, 2, 2), np.nan), ValueError, "NaN everywhere"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_a_clear_error(regressor, case):
    X, error, message = BAD_INPUTS[case]
    with pytest.raises(error, match=message):
        runtime.load(regressor[1]).predict(X)


def test_files_that_are_not_seqpipe_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        runtime.load(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not protobuf")
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        runtime.load(junk)
    g = GraphBuilder()
    g.output(g.op("Identity", [g.input("x", np.float32, [1])]), np.float32, [1], name="y")
    plain = tmp_path / "plain.onnx"
    onnx.save(g.build(), plain)
    with pytest.raises(ValueError, match="not written by seqpipe"):
        runtime.load(plain)


def _with_metadata(path, tmp_path, **entries):
    model = onnx.load(path)
    for entry in model.metadata_props:
        if entry.key in entries:
            entry.value = entries.pop(entry.key)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    out = tmp_path / "edited.onnx"
    onnx.save(model, out)
    return out


def test_newer_format_is_refused(regressor, tmp_path):
    with pytest.raises(ValueError, match="newer than this runtime"):
        runtime.load(_with_metadata(regressor[1], tmp_path, **{"seqpipe.format": "99"}))


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_provider_selection(regressor, monkeypatch, tmp_path):
    path = regressor[1]
    assert runtime.load(path, "cpu").session.get_providers() == ["CPUExecutionProvider"]
    assert runtime.load(path, ["CPUExecutionProvider"]).predict(np.zeros((1, 2, 2))).shape == (1,)
    with pytest.raises(ValueError, match="'NoSuchExecutionProvider' was requested"):
        runtime.load(path, ["NoSuchExecutionProvider"])
    if not HAS_CUDA:
        with pytest.raises(ValueError, match=r"CUDAExecutionProvider.*onnxruntime-gpu"):
            runtime.load(path, "cuda")
    # Pretend CUDA is there: files CUDA would compute wrongly are refused, or run on
    # the CPU with a warning when asked.
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    peephole = _with_metadata(
        path, tmp_path, **{"seqpipe.cuda_unsupported": json.dumps(["LSTM peepholes (P)"])}
    )
    with pytest.raises(ValueError, match=r"LSTM peepholes \(P\).*wrong numbers.*providers='cpu'"):
        runtime.load(peephole, "cuda")
    with pytest.warns(RuntimeWarning, match="on the CPU instead"):
        model = runtime.load(peephole, "cuda", allow_cpu_fallback=True)
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    if not HAS_CUDA:
        with pytest.raises(ValueError, match="could not start it"):
            runtime.load(path, "cuda")


@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a GPU")
def test_cuda_matches_cpu(regressor, data):  # pragma: no cover - no GPU in CI
    est, path = regressor
    model = runtime.load(path, "cuda")
    assert "CUDAExecutionProvider" in model.session.get_providers()
    np.testing.assert_allclose(model.predict(data[0]), est.predict(data[0]), rtol=1e-4)


def test_threads_share_one_model(regressor, classifier, data):
    rng = np.random.default_rng(1)
    batches = [
        rng.normal(size=(int(rng.integers(1, 6)), int(rng.integers(1, 9)), 2)) for _ in range(40)
    ]
    for _, path in (regressor, classifier):
        model = runtime.load(path)
        method = model.predict_proba if model.task == "classification" else model.predict
        expected = [method(X) for X in batches]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(method, batches * 8))
        for got, want in zip(results, expected * 8, strict=True):
            np.testing.assert_array_equal(got, want)


def test_stream_steps_chunks_and_ragged_chunks(streaming, data):
    est, path = streaming
    model = runtime.load(path)
    X = data[0][:4]
    stream = model.stream(batch_size=4)
    for t in range(X.shape[1]):
        out = stream.step(X[:, t])
    np.testing.assert_allclose(out, est.predict(X), atol=1e-5)
    assert stream.n_steps.tolist() == [6] * 4
    stream.reset()
    stream.feed(X[:, :2])
    saved = stream.state
    np.testing.assert_allclose(stream.feed(X[:, 2:]), est.predict(X), atol=1e-5)
    assert any(not np.array_equal(saved[k], v) for k, v in stream.state.items())
    # Streams advance by different amounts: NaN-pad the shorter chunks.
    stream.reset()
    chunk = X[:, :4].copy()
    chunk[1, 2:] = np.nan
    stream.feed(chunk)
    assert stream.n_steps.tolist() == [4, 2, 4, 4]
    rest = np.full_like(X[:, :4], np.nan)
    rest[:, :2] = X[:, 4:]
    rest[1, :] = X[1, 2:]
    out = stream.feed(rest)
    np.testing.assert_allclose(out, est.predict(X), atol=1e-5)
    # The batch API on a streaming file starts from zero state.
    np.testing.assert_allclose(model.predict(X), est.predict(X), atol=1e-5)


def test_stream_errors(streaming, regressor, data):
    model = runtime.load(streaming[1])
    stream = model.stream(batch_size=2)
    with pytest.raises(ValueError, match="holds 2 sequences but got a chunk of 3"):
        stream.feed(data[0][:3, :2])
    with pytest.raises(ValueError, match="one time step of shape"):
        stream.step(data[0][:2, :2])
    with pytest.raises(ValueError, match="streaming=True"):
        runtime.load(regressor[1]).stream()
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.stream(batch_size=0)
    single = model.stream()
    assert single.step(data[0][0, 0]).shape == (1,)
