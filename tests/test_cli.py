"""The ``seqpipe`` command: export -> info -> predict round trips and its errors."""

from __future__ import annotations

import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

import seqpipe
from seqpipe import LSTMClassifier, LSTMRegressor
from seqpipe.cli import main

FAST = {"hidden_size": 5, "epochs": 1, "random_state": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: 2 OpenMP threads only fight each other
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 5, 2))
    est = LSTMRegressor(**FAST).fit(X, 10 * X[:, :, 0].sum(axis=1))
    joblib.dump(est, folder / "model.joblib")
    assert main(["export", str(folder / "model.joblib"), str(folder / "model.onnx")]) == 0
    return est, folder, X


def _csv_values(text: str) -> np.ndarray:
    return np.array([[float(v) for v in line.split(",")] for line in text.strip().splitlines()])


def test_info_says_what_the_file_expects(exported, capsys):
    _, folder, _ = exported
    assert main(["info", str(folder / "model.onnx")]) == 0
    out = capsys.readouterr().out
    assert "task:          regression (single)" in out
    assert "X: float32 (batch, time, 2)" in out
    assert "y: float64 (batch)" in out
    assert "verified:      max abs diff" in out
    assert main(["info", "--json", str(folder / "model.onnx")]) == 0
    assert '"seqpipe.task": "regression"' in capsys.readouterr().out


def test_predict_npy_and_csv_match_the_estimator(exported, capsys, tmp_path):
    est, folder, X = exported
    np.save(tmp_path / "x.npy", X[:4])
    assert main(["predict", str(folder / "model.onnx"), str(tmp_path / "x.npy")]) == 0
    np.testing.assert_allclose(
        _csv_values(capsys.readouterr().out)[:, 0], est.predict(X[:4]), rtol=1e-5
    )
    # CSV: one sequence per row, features of a step together; ragged rows end early.
    rows = [X[0].ravel(), X[1, :3].ravel(), X[2, :1].ravel()]
    lines = ["a,b,c"] + [",".join(map(repr, row.tolist())) for row in rows]
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "y.npy"
    assert (
        main(["predict", str(folder / "model.onnx"), str(tmp_path / "x.csv"), "-o", str(out)]) == 0
    )
    expected = est.predict([X[0], X[1, :3], X[2, :1]])
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5)


def test_classifier_labels_and_probabilities(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 4, 1))
    clf = LSTMClassifier(**FAST).fit(X, np.where(X.sum(axis=(1, 2)) > 0, "up", "down"))
    joblib.dump(clf, tmp_path / "clf.joblib")
    assert main(["export", str(tmp_path / "clf.joblib"), str(tmp_path / "clf.onnx")]) == 0
    np.save(tmp_path / "x.npy", X[:3, :, 0])  # 2-D: one feature
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "clf.onnx"), str(tmp_path / "x.npy")]) == 0
    assert capsys.readouterr().out.split() == clf.predict(X[:3]).tolist()
    assert main(["predict", str(tmp_path / "clf.onnx"), str(tmp_path / "x.npy"), "--proba"]) == 0
    np.testing.assert_allclose(
        _csv_values(capsys.readouterr().out), clf.predict_proba(X[:3]), atol=1e-6
    )


def test_errors_exit_1_with_a_message(exported, tmp_path, capsys):
    _, folder, X = exported
    model = str(folder / "model.onnx")
    (tmp_path / "bad.csv").write_text("1,2,3\n")  # 3 values: not a multiple of 2 features
    joblib.dump(StandardScaler().fit(X[:, 0]), tmp_path / "scaler.joblib")
    (tmp_path / "x.txt").write_text("1")
    np.save(tmp_path / "x4.npy", np.zeros((2, 3, 4)))
    cases = [
        (["predict", model, str(tmp_path / "missing.npy")], "no such file"),
        (["predict", str(tmp_path / "missing.onnx"), str(tmp_path / "bad.csv")], "no ONNX model"),
        (["predict", model, str(tmp_path / "bad.csv")], "not a multiple of the model's 2"),
        (["predict", model, str(tmp_path / "x.txt")], "must be a .csv or .npy"),
        (["predict", model, str(tmp_path / "x4.npy")], "4 features per time step"),
        (["info", str(folder / "model.joblib")], "not a valid ONNX model"),
        (["export", str(tmp_path / "scaler.joblib"), str(tmp_path / "s.onnx")], "must be one of"),
        (["export", str(tmp_path / "x.txt"), str(tmp_path / "s.onnx")], "not a joblib/pickle"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("seqpipe: error:") and message in err, (argv, err)
    with pytest.raises(SystemExit) as usage:
        main(["frobnicate"])
    assert usage.value.code == 2


def test_console_entry_point_runs_as_a_program(exported):
    _, folder, _ = exported
    result = subprocess.run(
        [sys.executable, "-m", "seqpipe.cli", "info", str(folder / "model.onnx")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "regression" in result.stdout


def test_predict_and_info_need_no_torch(exported, tmp_path):
    est, folder, X = exported
    np.save(tmp_path / "x.npy", X[:3])
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['sklearn'] = None\n"
        "from seqpipe.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    model = str(folder / "model.onnx")
    result = subprocess.run(
        [sys.executable, "-c", script, "predict", model, str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(_csv_values(result.stdout)[:, 0], est.predict(X[:3]), rtol=1e-5)


def test_plugins_lists_every_architecture_and_its_plugin(capsys):
    from seqpipe import plugins
    from seqpipe.hookspecs import hookimpl

    class BrokenPlugin:
        @hookimpl
        def seqpipe_architectures(self):
            raise RuntimeError("boom")

    plugins.register_plugin(BrokenPlugin(), name="broken-demo")
    try:
        assert main(["plugins"]) == 0
    finally:
        plugins.unregister_plugin("broken-demo")
    out = capsys.readouterr().out
    for name in seqpipe.list_architectures():
        assert f"    {name} " in out
    assert "seqpipe.architectures.torch_rnn (built-in)" in out
    # A failing plugin is reported by name, the rest are still listed.
    assert "broken-demo" in out and "boom" in out
