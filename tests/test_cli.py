"""The ``seqpipe`` command: export -> info -> predict round trips and its errors."""

from __future__ import annotations

import builtins
import errno
import os
import re
import subprocess
import sys
from pathlib import Path

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


# --- user errors: one line on stderr, exit 1, never a traceback ----------------------
def _one_line_error(capsys, argv: list[str]) -> str:
    """Run ``argv``; assert the one-line error contract and return the line."""
    assert main(argv) == 1, argv
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.startswith("seqpipe: error: ") and err.count("\n") == 1, err
    return err.strip()


def test_output_into_a_missing_folder_or_onto_a_folder(exported, tmp_path, capsys):
    _, folder, X = exported
    model = str(folder / "model.onnx")
    np.save(tmp_path / "x.npy", X[:2])
    (tmp_path / "taken.csv").mkdir()
    (tmp_path / "taken.npy").mkdir()
    for name in ("missing/y.csv", "missing/y.npy"):
        err = _one_line_error(
            capsys, ["predict", model, str(tmp_path / "x.npy"), "-o", str(tmp_path / name)]
        )
        assert f"cannot write {tmp_path / name}: folder {tmp_path / 'missing'} does not" in err
    for name in ("taken.csv", "taken.npy"):
        err = _one_line_error(
            capsys, ["predict", model, str(tmp_path / "x.npy"), "-o", str(tmp_path / name)]
        )
        assert f"cannot write {tmp_path / name}: it is a folder" in err
    assert not (tmp_path / "missing").exists()


def test_export_into_a_missing_folder_or_onto_a_folder(exported, tmp_path, capsys):
    _, folder, _ = exported
    joblib_file = str(folder / "model.joblib")
    err = _one_line_error(capsys, ["export", joblib_file, str(tmp_path / "no" / "m.onnx")])
    assert f"folder {tmp_path / 'no'} does not exist" in err
    err = _one_line_error(capsys, ["export", joblib_file, str(tmp_path)])
    assert f"{tmp_path} is a folder" in err


def test_csv_must_be_utf8_and_a_byte_order_mark_is_not_a_header(exported, tmp_path, capsys):
    est, folder, X = exported
    model = str(folder / "model.onnx")
    rows = "\n".join(",".join(map(repr, x.ravel().tolist())) for x in X[:2])
    (tmp_path / "latin1.csv").write_bytes(b"temp\xe9rature\n" + rows.encode() + b"\n")
    err = _one_line_error(capsys, ["predict", model, str(tmp_path / "latin1.csv")])
    assert "latin1.csv, line 1: not UTF-8 text (byte 0xe9); save the file as UTF-8" in err
    # Spreadsheets' "CSV UTF-8" starts with a BOM: the first row is data, not a header.
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + rows.encode() + b"\n")
    assert main(["predict", model, str(tmp_path / "bom.csv")]) == 0
    out = _csv_values(capsys.readouterr().out)[:, 0]
    np.testing.assert_allclose(out, est.predict(X[:2]), rtol=1e-5)


def test_object_labels_go_to_npy_as_strings(tmp_path, capsys):
    # A classifier fitted on an object array (pandas strings) returns object labels,
    # which np.save refuses without pickle.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 4, 1))
    y = np.where(X.sum(axis=(1, 2)) > 0, "up", "down").astype(object)
    clf = LSTMClassifier(**FAST).fit(X, y)
    joblib.dump(clf, tmp_path / "clf.joblib")
    assert main(["export", str(tmp_path / "clf.joblib"), str(tmp_path / "clf.onnx")]) == 0
    np.save(tmp_path / "x.npy", X[:5])
    out = tmp_path / "labels.npy"
    argv = ["predict", str(tmp_path / "clf.onnx"), str(tmp_path / "x.npy"), "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    labels = np.load(out, allow_pickle=False)
    assert labels.dtype.kind == "U" and labels.tolist() == clf.predict(X[:5]).tolist()


def test_object_values_that_are_not_strings_are_refused_for_npy(tmp_path):
    from seqpipe.cli import CommandError, write_output

    with pytest.raises(CommandError, match=r"Python objects \(dict\).*write a \.csv instead"):
        write_output(np.array([{}, {}], dtype=object), str(tmp_path / "y.npy"))
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_an_unwritable_file_system_is_one_line(exported, tmp_path, capsys, monkeypatch, code):
    _, folder, X = exported
    np.save(tmp_path / "x.npy", X[:2])
    (tmp_path / "old.csv").write_text("kept\n")
    real_open = builtins.open

    def refusing_open(file, mode="r", *args, **kwargs):
        if set(mode) & set("wax+") and Path(file).parent == tmp_path:
            exc_type = PermissionError if code == errno.EACCES else OSError
            raise exc_type(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    for name in ("y.npy", "old.csv"):
        argv = ["predict", str(folder / "model.onnx"), str(tmp_path / "x.npy")]
        err = _one_line_error(capsys, [*argv, "-o", str(tmp_path / name)])
        assert err.endswith(f"cannot write {tmp_path / name}: {os.strerror(code)}")
    assert (tmp_path / "old.csv").read_text() == "kept\n"  # never opened: left alone


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_one_line_and_leaves_no_partial_file(exported, tmp_path, capsys):
    _, folder, X = exported
    np.save(tmp_path / "x.npy", X[:2])
    for name in ("y.csv", "y.npy"):
        (tmp_path / name).symlink_to("/dev/full")  # every write: ENOSPC, a real full disk
        argv = ["predict", str(folder / "model.onnx"), str(tmp_path / "x.npy")]
        err = _one_line_error(capsys, [*argv, "-o", str(tmp_path / name)])
        assert err.endswith(f"cannot write {tmp_path / name}: {os.strerror(errno.ENOSPC)}")
        assert not os.path.lexists(tmp_path / name)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_export_on_a_full_or_read_only_disk_is_one_line(
    exported, tmp_path, capsys, monkeypatch, code
):
    import seqpipe.onnx

    def failing_export(model, path, **kwargs):  # what the write meets on such a disk
        raise OSError(code, os.strerror(code), str(Path(path).parent / ".m.onnx.x.tmp"))

    monkeypatch.setattr(seqpipe.onnx, "export", failing_export)
    _, folder, _ = exported
    target = tmp_path / "m.onnx"
    err = _one_line_error(capsys, ["export", str(folder / "model.joblib"), str(target)])
    assert err == f"seqpipe: error: cannot write {target}: {os.strerror(code)}"


def test_an_unreadable_input_is_one_line(exported, tmp_path, capsys, monkeypatch):
    _, folder, X = exported
    np.save(tmp_path / "x.npy", X[:2])

    def refusing_load(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "x.npy"))

    monkeypatch.setattr(np, "load", refusing_load)
    err = _one_line_error(capsys, ["predict", str(folder / "model.onnx"), str(tmp_path / "x.npy")])
    assert err.endswith(f"cannot read {tmp_path / 'x.npy'}: Permission denied")


def test_ctrl_c_and_other_os_errors_are_quiet_real_bugs_keep_their_traceback(monkeypatch, capsys):
    from seqpipe import cli

    def interrupted(args):
        raise KeyboardInterrupt

    def broken(args):
        raise ModuleNotFoundError("No module named 'nonexistent'", name="nonexistent")

    def disk_trouble(args):  # an OSError no command foresaw is still the environment's
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/mnt/model.onnx")

    monkeypatch.setitem(cli.COMMANDS, "plugins", (cli.COMMANDS["plugins"][0], interrupted))
    assert main(["plugins"]) == 130
    assert capsys.readouterr().err == ""
    monkeypatch.setitem(cli.COMMANDS, "plugins", (cli.COMMANDS["plugins"][0], disk_trouble))
    assert _one_line_error(capsys, ["plugins"]).endswith("Input/output error: '/mnt/model.onnx'")
    # A missing module that no install provides is a bug, not a user error.
    monkeypatch.setitem(cli.COMMANDS, "plugins", (cli.COMMANDS["plugins"][0], broken))
    with pytest.raises(ModuleNotFoundError, match="nonexistent"):
        main(["plugins"])


def test_commands_of_the_full_install_say_what_to_install(exported):
    _, folder, _ = exported
    script = (
        "import sys\n"
        "for name in ('torch', 'sklearn', 'onnx', 'pluggy'):\n"
        "    sys.modules[name] = None  # the runtime-only install\n"
        "from seqpipe.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    commands = {
        "plugins": ["plugins"],
        "export": ["export", str(folder / "model.joblib"), str(folder / "again.onnx")],
    }
    for command, argv in commands.items():
        result = subprocess.run(
            [sys.executable, "-c", script, *argv], capture_output=True, text=True
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert re.fullmatch(
            f"seqpipe: error: 'seqpipe {command}' needs (torch|scikit-learn|onnx|pluggy), "
            r'which the runtime-only install leaves out: pip install "seqpipe-ml\[train\]"\n',
            result.stderr,
        ), result.stderr
    assert not (folder / "again.onnx").exists()


def test_the_python_api_says_which_install_brings_the_estimators():
    script = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import seqpipe\n"
        "try:\n"
        "    from seqpipe import LSTMRegressor\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc, exc.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout == (
        "seqpipe.LSTMRegressor needs torch, which the runtime-only install leaves out: "
        'pip install "seqpipe-ml[train]" torch\n'
    ), result.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"seqpipe {seqpipe.__version__}\n"


def test_export_help_says_pickles_run_code(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "loaded with joblib/pickle, which runs code stored in it" in help_text
    assert "export only files from a source you trust" in help_text


# --- info prints only printable text -------------------------------------------------
def test_info_escapes_control_characters_in_metadata(exported, tmp_path, capsys):
    import onnx

    _, folder, _ = exported
    proto = onnx.load(str(folder / "model.onnx"))
    evil = "LSTMRegressor\x1b[2J\x1b]0;owned\x07\r\nfake: line\x9b31m"
    for entry in proto.metadata_props:
        if entry.key == "seqpipe.model":
            entry.value = evil
    crafted = tmp_path / "crafted\x1b[5m.onnx"
    onnx.save(proto, str(crafted))
    # The file contract refuses non-printable metadata text; the refusal quotes it
    # escaped, never raw.
    err = _one_line_error(capsys, ["info", str(crafted)])
    assert err.isprintable() and "LSTMRegressor\\x1b[2J" in err and "crafted\\x1b[5m" in err
    # A valid file under a crafted name: shown escaped, in text and JSON.
    renamed = tmp_path / "renamed\x1b[5m.onnx"
    renamed.write_bytes((folder / "model.onnx").read_bytes())
    assert main(["info", str(renamed)]) == 0
    out = capsys.readouterr().out
    assert all(line.isprintable() for line in out.splitlines()), out
    assert "file:          " + str(renamed).replace("\x1b", "\\x1b") in out
    assert main(["info", "--json", str(renamed)]) == 0
    out = capsys.readouterr().out
    assert out.isascii() and all(line.isprintable() for line in out.splitlines())
    # The error line too: a crafted file name is shown, not obeyed.
    err = _one_line_error(capsys, ["info", str(tmp_path / "gone\x1b[2J.onnx")])
    assert err.isprintable() and "gone\\x1b[2J.onnx" in err
