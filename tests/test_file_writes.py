"""Exported files a service can read, and no litter: permissions follow the umask,
temporary files of killed exports are removed by the next export, and a file
being replaced is always the old one or the new one, even under SIGKILL."""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from seqpipe import LSTMRegressor, _atomic, runtime
from seqpipe._atomic import STALE_AFTER_S, remove_stale_temps, write_atomic
from seqpipe.onnx import export
from seqpipe.preprocessing import SequenceScaler

FAST = {"hidden_size": 2, "epochs": 1, "random_state": 0}
POSIX = pytest.mark.skipif(os.name != "posix", reason="umask, fork and SIGKILL are POSIX")


@pytest.fixture(scope="module")
def models():
    """Two tiny fitted pipelines whose exports differ."""
    X = np.random.default_rng(0).normal(size=(8, 4, 1))
    return [
        make_pipeline(SequenceScaler(), LSTMRegressor(**FAST)).fit(X, X[:, -1, 0] * k)
        for k in (1.0, -3.0)
    ]


@pytest.fixture
def umask():
    """``os.umask``, with the process umask restored after the test."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def _temps(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _host() -> str:
    return _atomic._host()


@POSIX
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=oct)
def test_exported_files_get_what_open_gives_under_the_umask(models, tmp_path, umask, mask):
    umask(mask)
    expected = 0o666 & ~mask
    path = export(models[0], tmp_path / "m.onnx", verify=False)
    assert _mode(path) == expected
    with open(tmp_path / "plain.txt", "w"):
        pass
    assert _mode(tmp_path / "plain.txt") == expected
    # Replacing a file gives the new one the same permissions (not mkstemp's 0600).
    os.chmod(path, 0o600)
    export(models[1], path, verify=False)
    assert _mode(path) == expected
    assert _temps(tmp_path) == []


@POSIX
def test_next_export_removes_temporary_files_whose_writer_is_gone(models, tmp_path):
    folder = tmp_path
    dead, alive, host = _dead_pid(), os.getppid(), _host()
    stale = [
        f".m.onnx.{dead}@{host}.0123abcd.tmp",  # killed export, this host
        f".other.onnx.{dead}@{host}.89abcdef.tmp",  # killed export of another target
        f".m.onnx.{os.getpid()}@{host}.00000000.tmp",  # an earlier process with our id
    ]
    old_on_other_host = f".m.onnx.{alive}@elsewhere.11111111.tmp"
    old_style = ".m.onnx.a1b2_c3d.tmp"  # mkstemp's name, from seqpipe before this change
    kept = [
        f".m.onnx.{alive}@{host}.22222222.tmp",  # a live process may be writing it
        f".m.onnx.{dead}@elsewhere.33333333.tmp",  # another host's: only age tells
        ".m.onnx.a1b2_c3e.tmp",  # old style, recent
        ".m.onnx.notours.tmp",
        "m.onnx.tmp",
        f".m.onnx.{dead}@{host}.0123abcd.tmp.bak",
    ]
    for name in [*stale, old_on_other_host, old_style, *kept]:
        (folder / name).write_bytes(b"partial")
    long_ago = time.time() - STALE_AFTER_S - 60
    for name in (old_on_other_host, old_style):
        os.utime(folder / name, (long_ago, long_ago))
    export(models[0], folder / "m.onnx", verify=False)
    assert sorted(os.listdir(folder)) == sorted([*kept, "m.onnx"])
    runtime.load(folder / "m.onnx")


def test_a_temporary_file_being_written_is_never_removed(tmp_path):
    """Threads of one process (same pid) writing into one folder: each check sees
    the other's temporary file and leaves it alone."""
    seen = []
    release = threading.Event()

    def slow_check(tmp):
        seen.append(os.path.basename(tmp))
        release.wait(10)

    writer = threading.Thread(target=write_atomic, args=(tmp_path / "a.bin", b"a", slow_check))
    writer.start()
    for _ in range(1000):
        if seen:
            break
        time.sleep(0.01)
    assert seen, "the first write never reached its check"
    assert remove_stale_temps(tmp_path, "b.bin") == []
    write_atomic(tmp_path / "b.bin", b"b")
    assert _temps(tmp_path) == seen
    release.set()
    writer.join()
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.bin"]
    assert (tmp_path / "a.bin").read_bytes() == b"a"


def test_concurrent_exports_to_one_target_all_succeed(models, tmp_path):
    path = tmp_path / "m.onnx"
    expected = set()
    for i, model in enumerate(models):
        expected.add(export(model, tmp_path / f"ref{i}.onnx", verify=False).read_bytes())
    errors = []

    def run(model):
        try:
            for _ in range(3):
                export(model, path, verify=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(m,)) for m in models * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert path.read_bytes() in expected
    assert _temps(tmp_path) == []


def _export_until_killed(models, target, first: int) -> tuple[int, int]:
    """Fork a process that exports the two models in turn until it is killed; it
    writes one byte to the returned pipe after each export."""
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(done_r)
            for i in itertools.count(first):
                export(models[i % 2], target, verify=False)
                os.write(done_w, b"x")
        finally:
            os._exit(1)
    os.close(done_w)
    return pid, done_r


@POSIX
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_exports_killed_at_random_moments_never_damage_the_target(models, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "m.onnx"
    # Each model's export byte for byte (exports are deterministic).
    versions = [export(m, tmp_path / f"ref{i}.onnx", verify=False) for i, m in enumerate(models)]
    versions = [path.read_bytes() for path in versions]
    assert versions[0] != versions[1]
    export(models[0], target, verify=False)
    seed = int.from_bytes(os.urandom(2), "big")  # new moments each run, reported on failure
    rng = random.Random(seed)
    leftovers = []
    for trial in range(20):
        # Forked rather than started afresh: a new interpreter would spend seconds
        # importing torch before its first export.
        pid, done = _export_until_killed(models, target, trial)
        # Killed at a random moment of the child's steady state (the duration of its
        # own second export, measured here, scales the moment): a busy machine slows
        # the child down, which a duration measured beforehand would not follow.
        os.read(done, 1)
        start = time.perf_counter()
        os.read(done, 1)
        time.sleep(rng.uniform(0, 2 * (time.perf_counter() - start)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(done)
        # The target is a whole old or new file, loadable.
        data = target.read_bytes()
        assert data in versions, f"seed {seed}, trial {trial}: a damaged target"
        runtime.load(data)
        leftovers.append(_temps(folder))
    # Some kills landed mid-write (about half do), so the cleanup below has work. A
    # kill leaves at most the temporary file of the export it interrupted (older ones
    # were removed by the exports since), and the next export removes it.
    assert any(leftovers), f"seed {seed}: no kill landed while a file was being written"
    assert all(len(names) <= 1 for names in leftovers), (seed, leftovers)
    for name in {n for names in leftovers for n in names}:
        match = _atomic._NEW_STYLE.match(name)
        assert match and match["target"] == "m.onnx" and match["host"] == _host(), name
    export(models[0], target, verify=False)
    assert os.listdir(folder) == ["m.onnx"], (seed, leftovers)


def test_a_failing_check_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def refuse(tmp):
        raise ValueError("not good")

    with pytest.raises(ValueError, match="not good"):
        write_atomic(path, b"new", refuse)
    assert os.listdir(tmp_path) == ["f.bin"] and path.read_bytes() == b"old"


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("db-1", "db-1"),
        ("node.example.org", "node-example-org"),
        ("", "host"),
        ("é" * 80, "-" * 63),
    ],
)
def test_host_names_are_made_safe_for_temp_names(monkeypatch, tmp_path, hostname, expected):
    monkeypatch.setattr(socket, "gethostname", lambda: hostname)
    assert _host() == expected
    seen = []
    write_atomic(tmp_path / "f.bin", b"x", lambda tmp: seen.append(os.path.basename(tmp)))
    assert _atomic._NEW_STYLE.match(seen[0])["host"] == expected
