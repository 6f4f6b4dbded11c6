"""Thread control: the estimators' ``torch_num_threads`` and the runtime's default.

The estimators set torch's intra-op threads for the length of each call and give
the caller's setting back, also when the call raises. ``runtime.load`` follows
``OMP_NUM_THREADS`` unless told a number.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from seqpipe import LSTMClassifier, LSTMRegressor, LSTMTransformer, runtime
from seqpipe.callbacks import Callback
from seqpipe.onnx import export

QUICK = {"verify_batch_sizes": (1,), "verify_lengths": (4,)}
#: Neither torch's count on a 2-core machine nor the estimators' default: a count
#: seen inside a call can only have come from the parameter under test.
CALLER = 3
TINY = {"hidden_size": 3, "epochs": 2, "batch_size": 8, "random_state": 0}


@pytest.fixture
def caller_threads():
    """The test's "caller" runs torch with CALLER threads; the suite's setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(CALLER)
    yield CALLER
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 4, 2))
    return X, X[:, -1, 0]


class _RecordThreads(Callback):
    """Records torch's thread count when training starts and after every epoch."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    def on_train_begin(self, estimator):
        self.seen = [torch.get_num_threads()]

    def on_epoch_end(self, estimator, record):
        self.seen.append(torch.get_num_threads())
        if self.fail:
            raise RuntimeError("callback failed on purpose")


def _record_forward(module: torch.nn.Module) -> list[int]:
    """Thread counts seen by every submodule's forward (``encode`` included)."""
    seen: list[int] = []
    for sub in module.modules():
        sub.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    return seen


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_trains_with_the_parameter_and_restores_the_caller(data, caller_threads, threads):
    X, y = data
    est = LSTMRegressor(torch_num_threads=threads, callbacks=[_RecordThreads()], **TINY)
    est.fit(X, y)
    assert est.callbacks_[0].seen == [threads] * (1 + TINY["epochs"])
    assert torch.get_num_threads() == caller_threads


def test_failing_fit_restores_the_caller(data, caller_threads):
    X, y = data
    est = LSTMRegressor(torch_num_threads=1, callbacks=[_RecordThreads(fail=True)], **TINY)
    with pytest.raises(RuntimeError, match="on purpose"):
        est.fit(X, y)
    assert torch.get_num_threads() == caller_threads


def test_none_leaves_torch_alone(data, caller_threads):
    X, y = data
    est = LSTMRegressor(torch_num_threads=None, callbacks=[_RecordThreads()], **TINY).fit(X, y)
    assert set(est.callbacks_[0].seen) == {caller_threads}
    seen = _record_forward(est.module_)
    est.predict(X)
    assert seen and set(seen) == {caller_threads}


@pytest.mark.parametrize(
    "make, methods",
    [
        (lambda: LSTMRegressor(**TINY), ["predict", "score"]),
        (lambda: LSTMClassifier(**TINY), ["predict", "predict_proba", "score"]),
        (lambda: LSTMTransformer(**TINY), ["transform"]),
    ],
    ids=["regressor", "classifier", "transformer"],
)
def test_inference_runs_with_the_parameter_and_restores_the_caller(
    data, caller_threads, make, methods
):
    X, y = data
    est = make()
    if isinstance(est, LSTMClassifier):
        y = np.where(y > 0, "up", "down")
    est.fit(X, None if isinstance(est, LSTMTransformer) else y)
    assert est.torch_num_threads == 1  # the default
    for threads in (1, 2):
        est.set_params(torch_num_threads=threads)
        for method in methods:
            seen = _record_forward(est.module_)
            args = (X, y) if method == "score" else (X,)
            getattr(est, method)(*args)
            assert seen and set(seen) == {threads}, method
            assert torch.get_num_threads() == caller_threads, method


def test_failing_predict_restores_the_caller(data, caller_threads):
    X, y = data
    est = LSTMRegressor(torch_num_threads=1, **TINY).fit(X, y)

    def boom(*_):
        raise RuntimeError("forward failed on purpose")

    est.module_.register_forward_pre_hook(boom)
    with pytest.raises(RuntimeError, match="on purpose"):
        est.predict(X)
    assert torch.get_num_threads() == caller_threads


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_thread_counts_are_refused_before_fitting(data, bad):
    X, y = data
    est = LSTMRegressor(torch_num_threads=bad, **TINY)
    with pytest.raises(InvalidParameterError, match="torch_num_threads"):
        est.fit(X, y)
    assert not hasattr(est, "module_")


def test_clone_and_pickle_keep_the_parameter(data):
    X, y = data
    est = LSTMClassifier(torch_num_threads=2)
    assert clone(est).get_params()["torch_num_threads"] == 2
    fitted = LSTMRegressor(torch_num_threads=2, **TINY).fit(X, y)
    again = pickle.loads(pickle.dumps(fitted))
    assert again.torch_num_threads == 2
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))


# --- the runtime ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(data, tmp_path_factory):
    X, y = data
    est = LSTMRegressor(**TINY).fit(X, y)
    return export(est, tmp_path_factory.mktemp("threads") / "model.onnx", **QUICK)


def _threads(model: runtime.OnnxSequenceModel) -> int:
    return model.session.get_session_options().intra_op_num_threads


def test_runtime_default_follows_omp_num_threads(model_file, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    three = runtime.load(model_file)
    assert _threads(three) == 3
    # What the caller said is what travels: None, read again where it is unpickled.
    assert three.load_options["intra_op_num_threads"] is None
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert _threads(pickle.loads(pickle.dumps(three))) == 2
    # The thread count is part of the session cache's key: a new count, a new session.
    assert runtime.load(model_file).session is not three.session
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested levels: the outer one counts
    assert _threads(runtime.load(model_file)) == 4


def test_runtime_explicit_threads_win_over_omp_num_threads(model_file, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _threads(runtime.load(model_file, intra_op_num_threads=2)) == 2
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    assert _threads(runtime.load(model_file, session_options=options)) == 2
    # A SessionOptions that leaves the count to onnxruntime (0) gets the default.
    assert _threads(runtime.load(model_file, session_options=ort.SessionOptions())) == 3


def test_runtime_without_usable_omp_num_threads_keeps_onnxruntime_default(model_file, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert _threads(runtime.load(model_file)) == 0  # onnxruntime's "one per core"
    for bad in ("many", "0", "²"):  # "²" is a digit to str.isdigit, not to int()
        monkeypatch.setenv("OMP_NUM_THREADS", bad)
        with pytest.warns(RuntimeWarning, match=f"OMP_NUM_THREADS='{bad}' is not a positive"):
            model = runtime.load(model_file)
        assert _threads(model) == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_partial_fit_trains_with_the_parameter_and_restores_the_caller(
    data, caller_threads, threads
):
    X, y = data
    est = LSTMRegressor(torch_num_threads=threads, callbacks=[_RecordThreads()], **TINY)
    for _ in range(2):  # the first call builds the network, the second continues it
        est.partial_fit(X, y)
        assert torch.get_num_threads() == caller_threads
    assert set(_partial_fit_threads(est, X, y)) == {threads}


def _partial_fit_threads(est, X, y) -> list[int]:
    seen = _record_forward(est.module_)
    est.partial_fit(X, y)
    return seen
