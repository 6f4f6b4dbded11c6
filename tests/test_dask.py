"""Pickled runtime models, scoring Dask arrays, and searches under the Dask backend.

Everything that needs workers runs on one loopback-only ``LocalCluster`` (two worker
processes of one thread each, as the README's "Scaling out" recommends), started
once for the module and torn down with timeouts.
"""

from __future__ import annotations

import gc
import logging
import pickle
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest
import torch

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer, runtime
from seqpipe._session_cache import SessionCache
from seqpipe.onnx import export

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
joblib = pytest.importorskip("joblib")

from dask.delayed import Delayed  # noqa: E402  (after the skips)

from seqpipe.dask import predict_dask  # noqa: E402

FAST = {"hidden_size": 4, "epochs": 2, "random_state": 0}
QUICK = {"verify_batch_sizes": (1, 3), "verify_lengths": (1, 8)}
N, T, F = 48, 6, 2


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    """(48, 6, 2) float32; every fourth sequence two steps shorter (NaN padding)."""
    X = np.random.default_rng(0).normal(size=(N, T, F)).astype(np.float32)
    X[::4, -2:] = np.nan
    return X


#: Every output kind the runtime serves: kind -> (how to fit, methods to score).
KINDS = {
    "single": (lambda X: LSTMRegressor(**FAST).fit(X, _last(X)), ["predict"]),
    "vector": (
        lambda X: LSTMRegressor(**FAST).fit(X, np.stack([_last(X), -_last(X)], 1)),
        ["predict"],
    ),
    "per_step": (lambda X: LSTMRegressor(**FAST).fit(X, X[:, :, :1] * 2), ["predict"]),
    "horizon": (
        lambda X: LSTMRegressor(head="seq2seq", **FAST).fit(X, np.repeat(_last(X)[:, None], 3, 1)),
        ["predict"],
    ),
    "classes": (
        lambda X: LSTMClassifier(**FAST).fit(X, np.where(_last(X) > 0, "up", "down")),
        ["predict", "predict_proba"],
    ),
    "features": (lambda X: LSTMTransformer(**FAST).fit(X), ["transform", "predict"]),
    "streaming": (lambda X: LSTMRegressor(num_layers=2, **FAST).fit(X, _last(X)), ["predict"]),
}


def _last(X: np.ndarray) -> np.ndarray:
    """Each sequence's last valid value of feature 0."""
    valid = ~np.isnan(X[:, :, 0])
    return X[np.arange(len(X)), valid.sum(axis=1) - 1, 0].astype(np.float64)


@pytest.fixture(scope="module")
def files(X, tmp_path_factory):
    """kind -> (fitted estimator, exported file)."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("dask_models")
    out = {}
    for kind, (fit, _) in KINDS.items():
        est = fit(X)
        path = export(est, folder / f"{kind}.onnx", streaming=kind == "streaming", **QUICK)
        out[kind] = est, path
    return out


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes on 127.0.0.1, torn down with the module."""
    # Functions defined here travel by value: the workers cannot import this test file.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
        silence_logs=logging.ERROR,
    )
    try:
        with distributed.Client(cluster, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            yield client
    finally:
        cluster.close(timeout=60)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _outputs(model, method, X):
    return getattr(model, method)(X)


# --- pickling ---------------------------------------------------------------------


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize("kind", KINDS)
def test_runtime_models_pickle_for_every_output_kind(kind, dumps, files, X, tmp_path):
    # A pickle holds the file's bytes, not its name: it works once the file is gone.
    path = tmp_path / "gone.onnx"
    path.write_bytes(files[kind][1].read_bytes())
    model = runtime.load(path)
    path.unlink()
    clone = pickle.loads(dumps(model))
    assert clone.session is model.session  # same bytes and options: one session here
    assert (clone.task, clone.output_kind, clone.metadata, clone.path) == (
        model.task,
        model.output_kind,
        model.metadata,
        model.path,
    )
    runtime.clear_session_cache()
    fresh = pickle.loads(dumps(model))  # a new session, as in another process
    assert fresh.session is not model.session
    for method in KINDS[kind][1]:
        want = _outputs(model, method, X)
        for got in (_outputs(clone, method, X), _outputs(fresh, method, X)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_pickles_carry_the_load_options(files, X):
    path = files["single"][1]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = runtime.load(path, "cpu", intra_op_num_threads=1, session_options=options)
    clone = pickle.loads(pickle.dumps(model))
    got = clone.session.get_session_options()
    assert got.intra_op_num_threads == 1
    assert got.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert got.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert clone.load_options["providers"] == "cpu"
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    # Unpickling again in this process reuses the session the first unpickle built.
    assert pickle.loads(pickle.dumps(model)).session is clone.session


def test_a_model_built_by_hand_says_how_to_get_a_picklable_one(files):
    loaded = runtime.load(files["single"][1])
    by_hand = runtime.OnnxSequenceModel(loaded.session, loaded.metadata, None)
    with pytest.raises(TypeError, match=r"sessions do not pickle.*seqpipe\.runtime\.load"):
        pickle.dumps(by_hand)
    with pytest.raises(TypeError, match="does not pickle, so Dask cannot send it"):
        predict_dask(by_hand, da.zeros((4, T, F), chunks=2))


def test_a_stream_pickles_with_its_state(files, X):
    stream = runtime.load(files["streaming"][1]).stream(batch_size=3)
    stream.feed(X[:3, :3])
    copy = pickle.loads(pickle.dumps(stream))
    np.testing.assert_array_equal(copy.feed(X[:3, 3:]), stream.feed(X[:3, 3:]))
    np.testing.assert_array_equal(copy.n_steps, stream.n_steps)


def test_session_cache_builds_once_per_key_and_stays_bounded():
    class Session:  # stands in for an InferenceSession: the cache needs weak references
        pass

    cache = SessionCache(max_idle=2)
    built = []

    def build():
        time.sleep(0.05)  # widen the window in which the threads below race
        built.append(Session())
        return built[-1]

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", build))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and all(r is built[0] for r in results)
    assert cache.info()[:3] == (7, 1, 1)
    # Unused sessions: only the two most recent stay alive; used ones are never rebuilt.
    held = cache.get("held", Session)
    for key in "abcde":
        cache.get(key, Session)
    built.clear()
    results.clear()
    gc.collect()
    assert cache.info().sessions == 3  # "held" (still used) + the two most recent
    assert cache.get("held", Session) is held
    with pytest.raises(ValueError, match="bad model"):
        cache.get("bad", lambda: (_ for _ in ()).throw(ValueError("bad model")))
    assert cache.get("bad", Session) is not None  # a failed build leaves nothing behind


# --- on the cluster ---------------------------------------------------------------


def _unpickle_many(payload: bytes, times: int, X: np.ndarray) -> tuple[int, int, int]:
    """In a worker: unpickle the model ``times`` times, predicting and dropping each."""
    runtime.clear_session_cache()
    first = pickle.loads(payload).predict(X)
    for _ in range(times - 1):
        np.testing.assert_array_equal(pickle.loads(payload).predict(X), first)
    gc.collect()
    info = runtime.session_cache_info()
    return info.misses, info.hits, info.sessions


def test_each_worker_process_builds_one_session(client, files, X):
    payload = pickle.dumps(runtime.load(files["classes"][1]))
    per_worker = client.run(_unpickle_many, payload, 40, X[:5])
    assert len(per_worker) == 2
    assert set(per_worker.values()) == {(1, 39, 1)}


def _map_blocks(model, method, dX, like):
    """A plain ``map_blocks(model.<method>)``, shaped like the local result ``like``."""
    chunks = (dX.chunks[0], *((size,) for size in like.shape[1:]))
    drop = [axis for axis in (1, 2) if axis >= like.ndim]
    return dX.map_blocks(
        getattr(model, method),
        drop_axis=drop,
        chunks=chunks,
        dtype=like.dtype,
        meta=np.empty((0,) * like.ndim, like.dtype),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_dask_scoring_equals_local_predict_bitwise(kind, client, files, X, capfd, caplog):
    model = runtime.load(files[kind][1])
    along_samples = da.from_array(X, chunks=(12, T, F))
    along_time = da.from_array(X, chunks=(12, 2, 1))  # the helper merges these blocks
    expected, lazy = [], []
    for method in KINDS[kind][1]:
        local = _outputs(model, method, X)
        for dX in (along_samples, along_time):
            y = predict_dask(model, dX, method=method)
            assert (y.shape, y.dtype, y.chunks[0]) == (local.shape, local.dtype, (12,) * 4)
            lazy.append(y)
            expected.append(local)
        lazy.append(_map_blocks(model, method, along_samples, local))
        expected.append(local)
    with caplog.at_level(logging.ERROR):
        computed = dask.compute(*lazy)
    for got, want in zip(computed, expected, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    # The model pickles, so Dask neither fails nor logs (it used to log a "Logging
    # error" from formatting its own graph, on top of the pickling error).
    assert "Logging error" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_predict_dask_takes_paths_bytes_and_estimators(client, files, X):
    est, path = files["classes"]
    dX = da.from_array(X, chunks=(12, 3, F))
    local = runtime.load(path).predict_proba(X)
    for source in (path, str(path), path.read_bytes()):
        np.testing.assert_array_equal(predict_dask(source, dX, method="predict_proba"), local)
    y = predict_dask(path, dX, method="predict_proba", providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(y, local)
    # An estimator: the layout is probed on the first sequence, labels keep classes_' dtype.
    y = predict_dask(est, dX)
    assert y.dtype == est.classes_.dtype and y.shape == (N,)
    blocks = [est.predict(X[i : i + 12]) for i in range(0, N, 12)]
    np.testing.assert_array_equal(y.compute(), np.concatenate(blocks))


class _ThreadProbe:
    """An "estimator" that reports, per sequence, the threads its task runs with."""

    def __init__(self, model):
        self.model = model

    def predict(self, X):
        onnx_threads = self.model.session.get_session_options().intra_op_num_threads
        return np.tile([torch.get_num_threads(), onnx_threads], (len(X), 1))


def _session_threads(model) -> int:
    return model.session.get_session_options().intra_op_num_threads


def test_tasks_see_one_torch_and_one_onnxruntime_thread(client, files, X):
    dX = da.from_array(X, chunks=(12, T, F))
    model = runtime.load(files["single"][1], intra_op_num_threads=1)
    seen = predict_dask(_ThreadProbe(model), dX).compute()
    np.testing.assert_array_equal(np.unique(seen, axis=0), [[1, 1]])
    # The helper gives a model loaded without a thread count (onnxruntime's one
    # per core, or here OMP_NUM_THREADS) one thread per task: find the model it
    # ships and ask it in a task.
    default = runtime.load(files["single"][1])
    assert default.load_options["intra_op_num_threads"] is None
    y = predict_dask(default, dX)
    graph = y.__dask_graph__()
    (key,) = [k for k in graph if str(k).startswith("seqpipe-model-")]
    shipped = dask.delayed(_session_threads)(Delayed(key, graph))
    assert shipped.compute() == 1
    # ... unless the caller says otherwise.
    y = predict_dask(default, dX, intra_op_num_threads=2)
    (key,) = [k for k in y.__dask_graph__() if str(k).startswith("seqpipe-model-")]
    node = Delayed(key, y.__dask_graph__())
    assert dask.delayed(_session_threads)(node).compute() == 2


def _search(kind, estimator, grid):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, RandomizedSearchCV

    if kind == "grid":
        return GridSearchCV(estimator, grid, cv=2)
    if kind == "randomized":
        return RandomizedSearchCV(estimator, grid, n_iter=3, cv=2, random_state=0)
    return HalvingGridSearchCV(estimator, grid, cv=2, factor=2, min_resources=24, random_state=0)


@pytest.mark.parametrize("search", ["grid", "randomized", "halving"])
def test_searches_under_the_dask_backend_equal_one_process(search, client, X):
    from sklearn.base import clone

    y = _last(X)
    grid = {"architecture": ["lstm", "gru"], "hidden_size": [3, 5]}
    estimator = LSTMRegressor(epochs=3, random_state=0)
    sequential = _search(search, clone(estimator), grid).set_params(n_jobs=1).fit(X, y)
    with joblib.parallel_backend("dask"):
        distributed_ = _search(search, clone(estimator), grid).fit(X, y)
    assert distributed_.best_params_ == sequential.best_params_
    for name, values in sequential.cv_results_.items():
        if "score" in name and "time" not in name:
            np.testing.assert_array_equal(distributed_.cv_results_[name], values, err_msg=name)
    # The refit ran here, in this process: same network as the sequential one.
    np.testing.assert_array_equal(
        distributed_.best_estimator_.predict(X), sequential.best_estimator_.predict(X)
    )


# --- errors -----------------------------------------------------------------------


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="needs a CPU-only client"
)
def test_a_path_is_loaded_on_the_workers_with_their_providers(files):
    # This client has no CUDA, yet the graph builds: the file is loaded where the
    # tasks run, and there (here too: same process) the missing provider is named.
    y = predict_dask(files["single"][1], da.zeros((4, T, F), chunks=2), providers="cuda")
    assert y.shape == (4,)
    with pytest.raises(ValueError, match="'CUDAExecutionProvider' was requested"):
        y.compute(scheduler="sync")


def test_predict_dask_errors_name_the_problem(files, monkeypatch):
    model = runtime.load(files["single"][1])
    with pytest.raises(
        ValueError, match="X has 3 features per time step, but this model expects 2"
    ):
        predict_dask(model, da.zeros((4, T, 3), chunks=2))
    with pytest.raises(AttributeError, match="predict_proba is only available for classifiers"):
        predict_dask(model, da.zeros((4, T, F), chunks=2), method="predict_proba")
    with pytest.raises(ValueError, match="method must be one of"):
        predict_dask(model, da.zeros((4, T, F), chunks=2), method="score")
    with pytest.raises(ValueError, match=r"must be \(n_samples, n_timesteps, n_features\)"):
        predict_dask(model, da.zeros((4, T, F, 1), chunks=2))
    with pytest.raises(ValueError, match="providers and allow_cpu_fallback apply to a model"):
        predict_dask(model, da.zeros((4, T, F), chunks=2), providers="cpu")
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ModuleNotFoundError, match=r'needs dask.*pip install "seqpipe-ml\[dask\]"'):
        predict_dask(model, np.zeros((4, T, F)))
