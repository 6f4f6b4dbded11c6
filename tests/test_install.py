"""The runtime-only install, as a service gets it: the wheel built from this
repository, installed into a fresh virtual environment that has numpy and
onnxruntime and nothing else (no torch, scikit-learn, onnx or pluggy), serves a
file exported here; the commands of the full install say what to install.

numpy and onnxruntime (and what they require) are not downloaded: the fresh
environment gets links to this environment's installed copies, dist-info
included, so pip sees them as installed. pip then installs the seqpipe wheel with
``--no-index``: had the wheel required torch or scikit-learn, pip would fail to
find them. The test runs offline and is skipped only when a virtual environment,
pip or the wheel build (setuptools) is not available.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from seqpipe import LSTMRegressor
from seqpipe._install import DISTRIBUTION, FULL_INSTALL, TRAIN_MODULES
from seqpipe.onnx import export

ROOT = Path(__file__).resolve().parents[1]

#: What the runtime-only install depends on (pyproject.toml's [project] dependencies).
SERVING = ("numpy", "onnxruntime")


def _clean_env() -> dict[str, str]:
    """The environment without what would let the fresh venv see this checkout, or
    let pip find packages anywhere but the folder the test gives it (pip's
    configuration files and PIP_* variables: find-links, extra index, constraints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env.pop("VIRTUAL_ENV", None)
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(argv: list[str | Path], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``argv`` in ``cwd`` (never this checkout: ``python -c`` imports from the
    current folder) without PYTHON* variables."""
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=_clean_env(), cwd=cwd
    )


def _installed_closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """``names`` and everything they require (markers evaluated, no extras), installed here."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        found[name] = dist = importlib.metadata.distribution(name)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def _link_installed(dists: list[importlib.metadata.Distribution], site_packages: Path) -> None:
    """Make ``dists`` installed in ``site_packages`` by linking their top-level entries."""
    for dist in dists:
        if not dist.files:
            pytest.skip(f"{dist.metadata['Name']} has no RECORD to link it from")
        tops = {f.parts[0] for f in dist.files} - {"..", "__pycache__"}
        for top in tops:
            source = Path(dist.locate_file(top))
            target = site_packages / top
            if source.exists() and not target.exists():
                target.symlink_to(source)


@pytest.fixture(scope="module")
def runtime_only_venv(tmp_path_factory) -> Path:
    """A fresh venv with numpy, onnxruntime and the seqpipe wheel; returns its bin folder."""
    work = tmp_path_factory.mktemp("install")
    # Build from a copy: the build writes build/ and *.egg-info next to its sources.
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "seqpipe", source / "seqpipe", ignore=shutil.ignore_patterns("__py*"))
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip"]
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    build = _run([*pip, "wheel", *offline, "-w", wheels, source], cwd=work)
    if build.returncode != 0 and "setuptools" in build.stderr + build.stdout:
        pytest.skip(f"cannot build the wheel offline (setuptools): {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith(DISTRIBUTION.replace("-", "_") + "-")

    venv = work / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work)
    if made.returncode != 0:
        pytest.skip(f"cannot create a virtual environment: {made.stderr[-300:]}")
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = _run([python, "-c", purelib], cwd=work)
    _link_installed(_installed_closure(SERVING), Path(site.stdout.strip()))

    # pip of this environment installs into the fresh one (--python, pip >= 22.3).
    install = _run(
        [*pip, "--python", python, "install", "--no-index", "--find-links", wheels, DISTRIBUTION],
        cwd=work,
    )
    if install.returncode != 0 and "no such option: --python" in install.stderr:
        pytest.skip("this pip cannot install into another environment (needs pip >= 22.3)")
    assert install.returncode == 0, install.stdout + install.stderr
    return bin_dir


@pytest.fixture(scope="module")
def exported_here(tmp_path_factory):
    """A tiny regressor exported with the full install (this environment)."""
    folder = tmp_path_factory.mktemp("served")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 6, 2))
    est = LSTMRegressor(hidden_size=4, epochs=2, random_state=0).fit(X, X[:, :, 0].sum(axis=1))
    export(est, folder / "model.onnx")
    joblib.dump(est, folder / "model.joblib")
    np.save(folder / "x.npy", X[:5])
    return est, folder, X[:5]


def test_the_runtime_only_install_has_no_training_stack(runtime_only_venv):
    modules = sorted(TRAIN_MODULES)
    probe = (
        "import importlib.util, seqpipe, seqpipe.cli, seqpipe.runtime\n"
        f"print(seqpipe.__file__, [importlib.util.find_spec(m) is not None for m in {modules}])"
    )
    result = _run([runtime_only_venv / "python", "-c", probe], cwd=runtime_only_venv)
    assert result.returncode == 0, result.stderr
    where, found = result.stdout.split(" ", 1)
    assert Path(where).is_relative_to(runtime_only_venv.parent)  # the wheel, not this checkout
    assert found.strip() == str([False] * len(modules)), f"importable there: {modules} {found}"


def test_the_runtime_only_install_serves_an_exported_file(runtime_only_venv, exported_here):
    est, folder, X = exported_here
    expected = est.predict(X)
    # The command, through the console script the wheel installs.
    seqpipe = runtime_only_venv / "seqpipe"
    cli = _run([seqpipe, "predict", folder / "model.onnx", folder / "x.npy"], cwd=folder)
    assert cli.returncode == 0, cli.stderr
    np.testing.assert_allclose(
        np.array(cli.stdout.split(), dtype=float), expected, rtol=1e-4, atol=1e-6
    )
    info = _run([seqpipe, "info", folder / "model.onnx"], cwd=folder)
    assert info.returncode == 0 and "task:          regression (single)" in info.stdout
    # The Python API.
    code = (
        "import sys, numpy as np\n"
        "from seqpipe import runtime\n"
        "model = runtime.load(sys.argv[1])\n"
        "np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))\n"
    )
    out = folder / "y.npy"
    python = runtime_only_venv / "python"
    api = _run([python, "-c", code, folder / "model.onnx", folder / "x.npy", out], cwd=folder)
    assert api.returncode == 0, api.stderr
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-4, atol=1e-6)


def test_the_full_install_commands_say_what_to_install(runtime_only_venv, exported_here):
    _, folder, _ = exported_here
    for argv in (["export", folder / "model.joblib", folder / "again.onnx"], ["plugins"]):
        result = _run([runtime_only_venv / "seqpipe", *argv], cwd=folder)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"seqpipe: error: 'seqpipe {argv[0]}' needs ")
        assert result.stderr.endswith(f"the runtime-only install leaves out: {FULL_INSTALL}\n")
        assert result.stderr.count("\n") == 1
    assert not (folder / "again.onnx").exists()
