"""Every code block in README.md and docs/ runs, the way a reader would run it.

The rules, for whoever writes the docs:

* The fenced ``python`` blocks of one Markdown file run in order in one namespace,
  like the cells of a notebook, in a fresh temporary working directory (files they
  write land there). A block whose first line starts with ``>>>`` runs as a doctest
  (``ELLIPSIS`` on) in that namespace.
* A ``python`` block whose first line is a comment naming a file (``# conftest.py``,
  ``# my_package/plugin.py``) is a file of an example project: it is written to that
  path under the working directory instead of being run. If ``test_*.py`` files are
  among them, pytest runs that project in a subprocess, as the reader would.
* ``toml`` blocks must parse; ``bash``, ``console``, ``text`` and unlabelled blocks are
  not run.
* A block that cannot run in a test is skipped only by a marker the reader sees, an
  HTML comment on the line before its fence: ``<!-- docs-test: skip (reason) -->``.
  Each one is listed as a skipped test with its reason.
* Every ``seqpipe_architectures`` hook implementation the docs define (in a block, an
  example file or ``docs/*.py``) is registered, and each architecture it returns is
  fitted in an ``LSTMRegressor`` and exported with :func:`seqpipe.onnx.export`, which
  verifies the file at other batch sizes and lengths than it traced: a plugin example
  that only works at one shape fails here.
* ``docs/*.py`` files are imported as modules and their doctests run (from the
  repository root, the directory their docstrings are written for).
"""

from __future__ import annotations

import doctest
import importlib.util
import inspect
import io
import os
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

import seqpipe
from seqpipe.hookspecs import PROJECT_NAME
from seqpipe.onnx import export

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS_PY = sorted((ROOT / "docs").glob("*.py"))

SKIP_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*skip\s*\((?P<reason>.+)\)\s*-->\s*$")
ANY_MARKER = re.compile(r"docs-test:")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)[^`]*$")
FILE_COMMENT = re.compile(r"^# (?P<path>[\w./-]+\.py)\s*$")
PYTHON = {"python", "py"}
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Tiny models: the docs' own examples are the subject here, not training quality.
torch.set_num_threads(1)


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the first code line in the file
    lang: str
    code: str
    skip_reason: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def file_name(self) -> str | None:
        first = self.code.split("\n", 1)[0]
        match = FILE_COMMENT.match(first)
        return match["path"] if match and self.lang in PYTHON else None

    @property
    def is_doctest(self) -> bool:
        return self.code.lstrip().startswith(">>>")


@dataclass
class Hook:
    where: str
    function: Callable[[], list[seqpipe.ArchitectureSpec]]


@dataclass
class Run:
    hooks: list[Hook] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def code_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The fenced blocks of a Markdown file, dedented, with their skip markers."""
    lines = (path.read_text() if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, lang = opening["indent"], opening["lang"].lower()
        marker = SKIP_MARKER.match(lines[i - 1]) if i else None
        if i and ANY_MARKER.search(lines[i - 1]) and not marker:
            raise ValueError(
                f"{path.name}:{i}: malformed marker {lines[i - 1].strip()!r}; "
                "write <!-- docs-test: skip (reason) -->"
            )
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end]
        ]
        blocks.append(
            Block(path, i + 2, lang, "\n".join(body) + "\n", marker["reason"] if marker else None)
        )
        i = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in MARKDOWN for block in code_blocks(path)]


def _is_hookimpl(obj: object) -> bool:
    return callable(obj) and hasattr(obj, f"{PROJECT_NAME}_impl")


def _run_python(block: Block, module: types.ModuleType) -> None:
    if block.is_doctest:
        test = doctest.DocTestParser().get_doctest(
            block.code, module.__dict__, block.where, str(block.path), block.line - 1
        )
        report = io.StringIO()
        runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
        runner.run(test, out=report.write, clear_globs=False)
        assert not runner.failures, f"doctest at {block.where} failed:\n{report.getvalue()}"
        return
    # Pad with blank lines so tracebacks point at the Markdown file's own line numbers.
    code = "\n" * (block.line - 1) + block.code
    exec(compile(code, str(block.path), "exec"), module.__dict__)


def run_markdown(path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run a Markdown file's blocks in order; return the hooks and files it defined."""
    monkeypatch.chdir(workdir)
    module = types.ModuleType(f"docs_example_{path.stem.lower()}")
    # Importable by its name, as a notebook's or script's __main__ is.
    monkeypatch.setitem(sys.modules, module.__name__, module)
    run = Run()
    for block in code_blocks(path):
        if block.skip_reason:
            continue
        if block.lang == "toml":
            tomllib = pytest.importorskip("tomllib")
            tomllib.loads(block.code)
        elif block.file_name:
            target = workdir / block.file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
            run.files.append(block.file_name)
            if not _is_test_file(block.file_name):
                imported = _import_file(target, f"{module.__name__}_{len(run.files)}")
                run.hooks += _hooks(imported, block.where)
        elif block.lang in PYTHON:
            before = module.__dict__.get("seqpipe_architectures")
            _run_python(block, module)
            after = module.__dict__.get("seqpipe_architectures")
            if after is not before:
                run.hooks += _hooks(module, block.where)
    return run


def _is_test_file(name: str) -> bool:
    base = Path(name).name
    return base == "conftest.py" or base.startswith("test_")


def _import_file(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hooks(module: types.ModuleType, where: str) -> list[Hook]:
    hook = getattr(module, "seqpipe_architectures", None)
    return [Hook(where, hook)] if _is_hookimpl(hook) else []


def fit_and_export(hook: Hook, workdir: Path) -> None:
    """Register the hook, fit every architecture it returns, export it (verified)."""
    plugin = types.ModuleType("docs_hook")
    plugin.seqpipe_architectures = hook.function
    name = seqpipe.register_plugin(plugin, name=f"docs-hook-{hook.where}")
    try:
        X = np.random.default_rng(0).normal(size=(24, 7, 2))
        for spec in hook.function():
            params = {**spec.test_params[0], "epochs": 2, "random_state": 0}
            model = seqpipe.LSTMRegressor(spec.name, **params).fit(X, X[:, -1, 0])
            try:
                export(model, workdir / f"{spec.name}.onnx")
            except Exception as error:
                raise AssertionError(
                    f"the architecture {spec.name!r} of the plugin example at {hook.where} "
                    f"fits but does not export: {error}"
                ) from error
    finally:
        seqpipe.unregister_plugin(name)


def run_example_project(workdir: Path, run: Run, source: Path) -> None:
    """pytest on the example project the file blocks make up, in a subprocess."""
    if not any(Path(name).name.startswith("test_") for name in run.files):
        return
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # This checkout's seqpipe, whatever is installed in the environment.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={workdir}"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"the example project of {source.name} ({', '.join(run.files)}) fails its tests:\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    )


@pytest.fixture
def clean_registry():
    """Leave the plugin registry as found, whatever a docs block registered."""
    before = set(seqpipe.list_plugins())
    yield
    for name in set(seqpipe.list_plugins()) - before:
        seqpipe.unregister_plugin(name)


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_code_blocks_run(path, tmp_path, monkeypatch, clean_registry):
    run = run_markdown(path, tmp_path, monkeypatch)
    for hook in run.hooks:
        fit_and_export(hook, tmp_path)
    run_example_project(tmp_path, run, path)


@pytest.mark.parametrize("path", DOCS_PY, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_python_files_run(path, tmp_path, monkeypatch, clean_registry):
    monkeypatch.chdir(ROOT)
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # importable by name, as once installed
    spec.loader.exec_module(module)
    tests = doctest.DocTestFinder().find(module)
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    assert not runner.failures, report.getvalue()
    for hook in _hooks(module, str(path.relative_to(ROOT))):
        fit_and_export(hook, tmp_path)


SKIPPED = [block for block in all_blocks() if block.skip_reason]


@pytest.mark.parametrize("block", SKIPPED or [None], ids=lambda b: b.where if b else "none-skipped")
def test_skipped_blocks_are_listed(block):
    if block is not None:
        pytest.skip(f"{block.where}: {block.skip_reason}")


def test_block_parser_finds_every_kind():
    """The rules above see what they should (guards against a parser that finds nothing)."""
    blocks = all_blocks()
    assert any(b.is_doctest for b in blocks)
    assert any(b.file_name == "conftest.py" for b in blocks)
    assert any(b.lang in PYTHON and not b.file_name and not b.is_doctest for b in blocks)
    sample = textwrap.dedent(
        """\
        <!-- docs-test: skip (needs a GPU) -->
          ```python
          x = 1
          ```
        """
    )
    parsed = code_blocks(ROOT / "README.md", sample)
    assert [(b.lang, b.code, b.skip_reason, b.line) for b in parsed] == [
        ("python", "x = 1\n", "needs a GPU", 3)
    ]


def test_plugin_report_sample_matches_the_code():
    """docs/plugins.md shows the built-ins' lines of `seqpipe plugins` as printed now."""
    from seqpipe.plugin_report import format_plugin_report

    text = (ROOT / "docs" / "plugins.md").read_text()
    builtin = False
    for line in format_plugin_report().splitlines():
        if line.startswith("  ") and not line.startswith("    "):
            builtin = line.endswith("(built-in)")
        if builtin:
            assert line in text, f"docs/plugins.md's `seqpipe plugins` sample lacks {line!r}"


# --- the estimators' numpydoc ----------------------------------------------------------

ESTIMATORS = [seqpipe.LSTMRegressor, seqpipe.LSTMClassifier, seqpipe.LSTMTransformer]


def numpydoc_names(doc: str, section: str) -> set[str]:
    """Names documented in a numpydoc section (``a, b : type`` documents both)."""
    text = textwrap.dedent(doc.split("\n", 1)[1])
    match = re.search(rf"^{section}\n-+\n(.*?)(?=^\w[\w ]*\n-+\n|\Z)", text, flags=re.M | re.S)
    assert match, f"no {section} section"
    entries = re.findall(r"^(\w[\w, ]*?) :", match.group(1), flags=re.M)
    return {name.strip() for entry in entries for name in entry.split(",")}


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_init_parameter_is_documented(cls):
    documented = numpydoc_names(cls.__doc__, "Parameters")
    actual = set(inspect.signature(cls.__init__).parameters) - {"self"}
    assert not actual - documented, f"{cls.__name__} does not document {actual - documented}"
    assert not documented - actual, f"{cls.__name__} documents stale {documented - actual}"


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_documented_attribute_exists_after_fit(cls):
    import pandas as pd

    X = np.random.default_rng(0).normal(size=(12, 5, 2))
    y = None if cls is seqpipe.LSTMTransformer else (X[:, -1, 0] > 0).astype(int)
    # A long-format frame, so that feature_names_in_ (set only by one) exists too.
    index = pd.MultiIndex.from_product([range(12), range(5)])
    frame = pd.DataFrame(X.reshape(60, 2), index=index, columns=["a", "b"])
    model = cls(hidden_size=4, epochs=1, random_state=0).fit(frame, y)
    missing = {a for a in numpydoc_names(cls.__doc__, "Attributes") if not hasattr(model, a)}
    assert not missing, f"{cls.__name__} documents attributes it does not set: {missing}"
