"""Meta-tests that keep the plugin API honest, plus the docs' template and report.

Every hook in ``seqpipe.hookspecs`` must have a test (its name appears in a test
module other than this one) and an entry in ``docs/plugins.md`` (a ``### `name```
heading in the hook reference, with its signature and a runnable example).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
import sys
import types
from pathlib import Path

import pytest

import seqpipe
from seqpipe import hookspecs, plugins, testing
from seqpipe.plugin_report import collect_plugin_info, format_plugin_report

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"
TEMPLATE = ROOT / "docs" / "plugin_template.py"
TESTS = Path(__file__).resolve().parent


def hook_names() -> list[str]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"  # what pluggy's HookspecMarker sets
    return sorted(
        name
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, marker)
    )


def hook_section(name: str) -> str:
    """The docs section of one hook: from its heading to the next heading."""
    text = DOCS.read_text()
    match = re.search(rf"^### `{name}`\n(.*?)(?=^#{{2,3}} )", text, flags=re.M | re.S)
    assert match, f"docs/plugins.md has no '### `{name}`' section for hook {name}"
    return match.group(1)


def test_hookspecs_module_declares_hooks():
    assert hook_names(), "seqpipe.hookspecs declares no hook: the meta-tests would be vacuous"


@pytest.mark.parametrize("name", hook_names())
def test_hook_is_well_formed(name):
    hook = getattr(hookspecs, name)
    assert name.startswith("seqpipe_"), f"hook {name} must be prefixed seqpipe_"
    assert (hook.__doc__ or "").strip(), f"hook {name} needs a docstring stating its contract"
    assert inspect.signature(hook).return_annotation is not inspect.Signature.empty


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_has_a_test(name):
    users = [
        path.name
        for path in TESTS.glob("test_*.py")
        if path.name != Path(__file__).name and name in path.read_text()
    ]
    assert users, f"no test module under tests/ mentions hook {name}; add a test for it"


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_documented_with_signature_and_example(name):
    section = hook_section(name)
    signature = inspect.signature(getattr(hookspecs, name))
    assert f"def {name}(" in section, f"docs entry of {name} lacks its signature"
    for parameter in signature.parameters:
        assert parameter in section, f"docs entry of {name} does not mention {parameter!r}"
    assert "**Contract.**" in section and "**Example.**" in section, name
    assert "```python" in section.split("**Example.**", 1)[1], f"{name}: no example code"


@pytest.mark.parametrize("name", hook_names())
def test_hook_examples_in_the_docs_register(name):
    """Each documented example runs and registers as a plugin (pluggy validates it)."""
    module = _example_module(name)
    seqpipe.register_plugin(module, name=f"docs-example-{name}")
    try:
        assert callable(getattr(module, name))
    finally:
        seqpipe.unregister_plugin(f"docs-example-{name}")


def _example_module(name: str) -> types.ModuleType:
    example = hook_section(name).split("**Example.**", 1)[1]
    code = re.search(r"```python\n(.*?)```", example, flags=re.S).group(1)
    module = types.ModuleType(f"docs_example_{name}")
    exec(compile(code, f"docs/plugins.md ({name} example)", "exec"), module.__dict__)
    return module


def test_architectures_example_from_the_docs_conforms():
    module = _example_module("seqpipe_architectures")
    seqpipe.register_plugin(module, name="docs-example")
    try:
        params = {"hidden_size": 4}
        testing.check_spec("per_step_linear", params)
        testing.check_body_contract("per_step_linear", params)
    finally:
        seqpipe.unregister_plugin("docs-example")


@pytest.mark.parametrize(
    "cls", [seqpipe.ArchitectureSpec, seqpipe.BodyConfig], ids=lambda c: c.__name__
)
def test_every_spec_and_config_field_is_documented(cls):
    text = DOCS.read_text()
    missing = [f.name for f in dataclasses.fields(cls) if f"| `{f.name}` |" not in text]
    assert not missing, f"docs/plugins.md has no table row for {cls.__name__} fields {missing}"


def test_conformance_kit_and_registry_knobs_are_documented():
    text = DOCS.read_text()
    missing = [name for name in testing.__all__ if name not in text]
    assert not missing, f"docs/plugins.md does not mention seqpipe.testing names {missing}"
    for needle in (
        plugins.DISABLE_ENV_VAR,
        f"[project.entry-points.{plugins.ENTRY_POINT_GROUP}]",
        "onnx_recurrent_layers()",
        "NATIVE_RECURRENT",
        "plugin_errors()",
        "PluginWarning",
        "docs/plugin_template.py",
    ):
        assert needle in text, f"docs/plugins.md does not mention {needle}"


# --- the fill-in template ------------------------------------------------------------


@pytest.fixture
def template(monkeypatch):
    spec = importlib.util.spec_from_file_location("plugin_template", TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    # Importable by name, as an installed plugin is, so fitted models pickle.
    monkeypatch.setitem(sys.modules, "plugin_template", module)
    spec.loader.exec_module(module)
    seqpipe.register_plugin(module, name="plugin-template")
    yield module
    seqpipe.unregister_plugin("plugin-template")


def test_template_passes_the_conformance_kit(template):
    checks = [c for c in testing.CHECKS if c is not testing.check_sklearn_compatible]
    first = seqpipe.get_architecture(template.NAME).test_params[0]
    testing.check_architecture(template.NAME, params=[first], checks=checks)
    testing.check_body_contract(
        template.NAME, seqpipe.get_architecture(template.NAME).test_params[1]
    )


def test_template_refuses_what_it_does_not_support(template):
    build = seqpipe.get_architecture(template.NAME).build
    with pytest.raises(ValueError, match="bidirectional=False only"):
        build(seqpipe.BodyConfig(input_size=1, bidirectional=True))
    with pytest.raises(ValueError, match=r"unknown architecture_options \['typo'\]"):
        build(seqpipe.BodyConfig(input_size=1, options={"typo": 1}))


# --- the plugin report ---------------------------------------------------------------


class FakeDistribution:
    metadata = {"Name": "seqpipe-fake"}
    version = "1.2.3"


class FakeEntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name = name
        self.value = f"fake_{name}"
        self.dist = FakeDistribution()
        self._target = target

    def load(self) -> object:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def _plugin_module(arch: str) -> types.ModuleType:
    module = types.ModuleType(f"fake_{arch}")

    @seqpipe.hookimpl
    def seqpipe_architectures():
        return [seqpipe.ArchitectureSpec(arch, lambda config: None, description=f"{arch} body")]

    module.seqpipe_architectures = seqpipe_architectures
    return module


@pytest.fixture
def fake_entry_points(monkeypatch):
    monkeypatch.setattr(
        plugins,
        "entry_points",
        lambda group: [
            FakeEntryPoint("good", _plugin_module("good_arch")),
            FakeEntryPoint("blocked", _plugin_module("blocked_arch")),
            FakeEntryPoint("broken", ImportError("no module named nowhere")),
        ],
    )
    monkeypatch.setenv(plugins.DISABLE_ENV_VAR, "blocked")
    plugins.reset()
    yield
    monkeypatch.undo()
    plugins.reset()


def test_report_lists_origin_status_architectures_and_problems(fake_entry_points):
    report = format_plugin_report()
    assert "seqpipe.architectures.torch_rnn (built-in)" in report
    assert "good (entry point fake_good from seqpipe-fake 1.2.3)" in report
    traced = "[ONNX: torch.onnx.export: traced, verified at export]"
    assert f"good_arch  good_arch body  {traced}" in report
    assert "blocked (entry point fake_blocked from seqpipe-fake 1.2.3) [disabled]" in report
    assert "blocked_arch" not in report
    assert "broken (entry point fake_broken from seqpipe-fake 1.2.3) [failed]" in report
    assert re.search(r"Problems:\n  broken: failed to load .*ImportError", report)
    assert "SEQPIPE_DISABLE_PLUGINS = 'blocked'" in report
    lstm = next(line for line in report.splitlines() if line.strip().startswith("lstm"))
    native = "native recurrent nodes: written from weights, folds input scaling, streaming"
    assert f"[ONNX: {native}]" in lstm


def test_report_shows_plugins_registered_in_process():
    seqpipe.register_plugin(_plugin_module("inline_arch"), name="inline-report")
    try:
        info = {i.name: i for i in collect_plugin_info()}["inline-report"]
        assert (info.origin, info.architectures) == ("registered in process", ["inline_arch"])
        assert "inline-report (registered in process (fake_inline_arch))" in format_plugin_report()
    finally:
        seqpipe.unregister_plugin("inline-report")


def test_report_without_problems_says_so(monkeypatch):
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    plugins.reset()
    try:
        assert format_plugin_report().endswith("Problems:\n  none")
    finally:
        monkeypatch.undo()
        plugins.reset()
