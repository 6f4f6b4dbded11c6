"""Every import points down: contracts -> data rules -> bodies and registry ->
estimators -> export -> tools.

Read from the source (every ``import`` statement, module level or inside a function),
so a lazy import that points up is caught too. Package ``__init__`` files are
facades and are not layered.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seqpipe"

#: Layer of each module; a module may import modules of its own layer or below.
#: A new module must be added here (the test says so).
LAYERS: dict[str, int] = {
    # 0 contracts: what plugins, files and everything else agree on
    "seqpipe._version": 0,
    "seqpipe._install": 0,
    "seqpipe._format": 0,
    "seqpipe.hookspecs": 0,
    "seqpipe.architectures.spec": 0,
    "seqpipe.architectures.layout": 0,
    "seqpipe.architectures.options": 0,
    # 1 data rules: validation, targets, devices; the torch-free runtime sits on them
    "seqpipe._chunks": 1,
    "seqpipe._frames": 1,
    "seqpipe._sequence_rules": 1,
    "seqpipe._sequences": 1,
    "seqpipe._runtime_checks": 1,
    "seqpipe._session_cache": 1,
    "seqpipe._targets": 1,
    "seqpipe._devices": 1,
    "seqpipe._local_scaling": 1,
    "seqpipe._atomic": 1,
    "seqpipe._file_contract": 1,
    "seqpipe._scaling": 1,
    "seqpipe.runtime": 1,
    # 2 bodies and the registry
    "seqpipe.architectures.padding": 2,
    "seqpipe.architectures.initialization": 2,
    "seqpipe.architectures.activations": 2,
    "seqpipe.architectures.recurrences": 2,
    "seqpipe.architectures.cells": 2,
    "seqpipe.architectures.native_onnx": 2,
    "seqpipe.architectures.torch_rnn": 2,
    "seqpipe.architectures.lstm_variants": 2,
    "seqpipe.architectures.fcn": 2,
    "seqpipe.architectures.fcn_onnx": 2,
    "seqpipe.plugins": 2,
    "seqpipe._network": 2,
    "seqpipe._training": 2,
    "seqpipe.callbacks": 2,
    # 3 estimators and what works on them
    "seqpipe._base": 3,
    "seqpipe._output": 3,
    "seqpipe.regressor": 3,
    "seqpipe.classifier": 3,
    "seqpipe.transformer": 3,
    "seqpipe.preprocessing._scaler": 3,
    "seqpipe.preprocessing._featurewise": 3,
    "seqpipe.preprocessing._windows": 3,
    "seqpipe.keras_weights": 3,
    "seqpipe.forecasting": 3,
    "seqpipe.datasets": 3,
    # 4 export
    "seqpipe.onnx.graph": 4,
    "seqpipe.onnx._steps": 4,
    "seqpipe.onnx._fallback": 4,
    "seqpipe.onnx._gpu": 4,
    "seqpipe.onnx._verify": 4,
    "seqpipe.onnx._quantize": 4,
    "seqpipe.onnx._assemble": 4,
    "seqpipe.onnx._export": 4,
    "seqpipe.onnx._skl2onnx": 4,
    # 5 tools
    "seqpipe.plugin_report": 5,
    "seqpipe.testing": 5,
    "seqpipe.cli": 5,
    "seqpipe.demo": 5,
    "seqpipe.dask": 5,
}

#: Private modules another package module may import by design (a documented seam).
SEAMS = {"seqpipe._format": "the file format: keys and names both the exporter and runtime use"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, imported names, line)`` of every seqpipe import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("seqpipe"):
                    found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("seqpipe"):
                found.append((node.module, [a.name for a in node.names], node.lineno))
    return found


def _is_type_checking_only(path: Path, line: int) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            if node.lineno <= line <= max(n.lineno for n in ast.walk(node) if hasattr(n, "lineno")):
                return True
    return False


def _target(module: str, name: str, known: dict[str, Path]) -> str:
    """What ``from module import name`` imports: a submodule, or module itself."""
    return f"{module}.{name}" if f"{module}.{name}" in known else module


def test_every_module_has_a_layer():
    facades = {m for m, p in _modules().items() if p.name == "__init__.py"}
    missing = sorted(set(_modules()) - set(LAYERS) - facades)
    assert not missing, f"add these modules to LAYERS in {__file__}: {missing}"


def test_every_import_points_down():
    known = _modules()
    upward = []
    for module, path in known.items():
        if module not in LAYERS:
            continue
        for imported, names, line in _imports(path):
            if _is_type_checking_only(path, line):
                continue
            targets = [_target(imported, n, known) for n in names] or [imported]
            for target in targets:
                layer = LAYERS.get(target)
                if layer is not None and layer > LAYERS[module]:
                    upward.append(
                        f"{module}:{line} imports {target} (layer {layer} > {LAYERS[module]})"
                    )
    assert not upward, "imports that point up:\n" + "\n".join(upward)


def test_architectures_import_nothing_from_onnx():
    for module, path in _modules().items():
        if module.startswith("seqpipe.architectures"):
            bad = [(m, line) for m, _, line in _imports(path) if m.startswith("seqpipe.onnx")]
            assert not bad, f"{module} imports {bad}"


def test_no_private_names_across_modules():
    """``from seqpipe.x import _name`` only for a private module that is a seam (or a
    sibling inside one subpackage, whose modules share its internals), and never
    ``other_module._name`` on an imported seqpipe module."""
    known = _modules()
    problems = []
    for module, path in known.items():
        package = module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules: dict[str, str] = {}  # local name -> seqpipe module it is bound to
        for imported, names, line in _imports(path):
            if not names:
                modules[imported.rsplit(".", 1)[-1]] = imported
            for name in names:
                target = _target(imported, name, known)
                is_module = target == f"{imported}.{name}"
                if is_module:
                    modules[name] = target
                if not name.startswith("_") or name == "__version__":
                    continue
                inside_subpackage = package != "seqpipe" and imported.startswith(package)
                if inside_subpackage or (is_module and target in SEAMS):
                    continue
                what = "private module" if is_module else "private name"
                problems.append(f"{module}:{line} imports {what} {imported}.{name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                problems.append(
                    f"{module}:{node.lineno} reads {modules[node.value.id]}.{node.attr}"
                )
    assert not problems, "\n".join(problems)


def test_runtime_imports_nothing_that_imports_torch():
    code = (
        "import sys\n"
        "for name in ('torch', 'sklearn', 'onnx', 'pluggy', 'scipy'):\n"
        "    sys.modules[name] = None  # any import of them now fails\n"
        "import seqpipe.runtime\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.parametrize("pattern", [" is NATIVE_RECURRENT", " is TORCH_EXPORT", "is lower_"])
def test_no_identity_test_on_lowerings(pattern):
    hits = [
        f"{_module_name(p)}: {line.strip()}"
        for p in PACKAGE.rglob("*.py")
        for line in p.read_text(encoding="utf-8").splitlines()
        if pattern in line
    ]
    assert not hits, f"the exporter must read declarations, not identities: {hits}"
