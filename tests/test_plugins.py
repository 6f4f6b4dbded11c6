"""The plugin registry: discovery, failure isolation, duplicates, disabling."""

from __future__ import annotations

import os
import types

import numpy as np
import pytest
from torch import nn

import seqpipe
from seqpipe import plugins
from seqpipe.architectures.torch_rnn import TorchRecurrentBody


class FakeEntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name = name
        self.value = f"fake_module:{name}"
        self._target = target

    def load(self) -> object:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def plugin_module(*specs) -> types.ModuleType:
    module = types.ModuleType("fake_plugin")

    @seqpipe.hookimpl
    def seqpipe_architectures():
        return list(specs)

    module.seqpipe_architectures = seqpipe_architectures
    return module


def tiny_gru(config):
    return TorchRecurrentBody("gru", config)


@pytest.fixture
def installed(monkeypatch):
    """Pretend the given entry points are installed; rebuild the registry around it."""

    def install(*eps: FakeEntryPoint) -> None:
        monkeypatch.setattr(plugins, "entry_points", lambda group: list(eps))
        plugins.reset()

    yield install
    monkeypatch.undo()
    plugins.reset()


def test_builtins_register_through_the_hook():
    pm = plugins.get_plugin_manager()
    assert pm.get_plugin("seqpipe.architectures.torch_rnn") is not None
    assert {"lstm", "gru", "rnn"} <= set(plugins.list_plugins()["seqpipe.architectures.torch_rnn"])
    assert plugins.get_plugin_manager() is pm  # built once


def test_entry_point_plugin_is_usable_by_name(installed):
    installed(FakeEntryPoint("extra", plugin_module(seqpipe.ArchitectureSpec("my_gru", tiny_gru))))
    assert "my_gru" in seqpipe.list_architectures()
    assert seqpipe.list_plugins()["extra"] == ["my_gru"]
    X = np.random.default_rng(0).normal(size=(8, 3, 1))
    model = seqpipe.LSTMRegressor("my_gru", hidden_size=4, epochs=1).fit(X, X.sum(axis=(1, 2)))
    assert model.predict(X).shape == (8,)


def test_broken_plugin_is_reported_and_others_keep_working(installed):
    good = plugin_module(seqpipe.ArchitectureSpec("my_gru", tiny_gru))
    with pytest.warns(plugins.PluginWarning, match="'broken' failed to load.*ImportError"):
        installed(
            FakeEntryPoint("broken", ImportError("no module named foo")),
            FakeEntryPoint("good", good),
        )
        names = seqpipe.list_architectures()
    assert {"lstm", "my_gru"} <= set(names)
    assert [p.plugin for p in seqpipe.plugin_errors()] == ["broken"]


def test_hook_that_raises_is_skipped(installed):
    module = types.ModuleType("raising")

    @seqpipe.hookimpl
    def seqpipe_architectures():
        raise RuntimeError("boom")

    module.seqpipe_architectures = seqpipe_architectures
    with pytest.warns(plugins.PluginWarning, match="'raising'.*raised RuntimeError"):
        installed(FakeEntryPoint("raising", module))
        assert "lstm" in seqpipe.list_architectures()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("not a spec", "expected seqpipe.ArchitectureSpec"),
        (seqpipe.ArchitectureSpec("bad name", tiny_gru), "must be a non-empty identifier"),
        (seqpipe.ArchitectureSpec("no_build", "nope"), "build must be callable"),
        (seqpipe.ArchitectureSpec("no_params", tiny_gru, test_params=()), "test_params"),
        (seqpipe.ArchitectureSpec("bad_lr", tiny_gru, default_lr=0.0), "default_lr must be"),
        (seqpipe.ArchitectureSpec("str_lr", tiny_gru, default_lr="1e-3"), "default_lr must be"),
        (
            seqpipe.ArchitectureSpec("zero_width", tiny_gru, default_hidden_size=0),
            "default_hidden_size must be",
        ),
        (
            seqpipe.ArchitectureSpec("float_width", tiny_gru, default_hidden_size=8.0),
            "default_hidden_size must be",
        ),
        (
            seqpipe.ArchitectureSpec("bool_width", tiny_gru, default_hidden_size=True),
            "default_hidden_size must be",
        ),
        (
            seqpipe.ArchitectureSpec("str_width", tiny_gru, default_hidden_size="8"),
            "default_hidden_size must be",
        ),
    ],
)
def test_malformed_spec_is_reported(installed, spec, match):
    with pytest.warns(plugins.PluginWarning, match=match):
        installed(FakeEntryPoint("malformed", plugin_module(spec)))
        assert "lstm" in seqpipe.list_architectures()


def test_duplicate_name_is_an_error_naming_both(installed):
    first = plugin_module(seqpipe.ArchitectureSpec("twin", tiny_gru))
    second = plugin_module(seqpipe.ArchitectureSpec("twin", tiny_gru))
    with pytest.warns(plugins.PluginWarning, match="several plugins"):
        installed(FakeEntryPoint("first", first), FakeEntryPoint("second", second))
        assert "twin" not in seqpipe.list_architectures()
    with pytest.raises(
        ValueError, match=r"'twin' is provided by several plugins \(first, second\)"
    ):
        seqpipe.get_architecture("twin")


def test_external_plugin_cannot_shadow_a_builtin(installed):
    clash = plugin_module(seqpipe.ArchitectureSpec("lstm", tiny_gru))
    with pytest.warns(plugins.PluginWarning, match="'lstm' is provided by several plugins"):
        installed(FakeEntryPoint("clash", clash))
        with pytest.raises(ValueError, match=r"seqpipe\.architectures\.torch_rnn, clash"):
            seqpipe.get_architecture("lstm")


@pytest.mark.parametrize(
    ("value", "loaded"), [("1", set()), ("extra", {"other"}), ("", {"extra", "other"})]
)
def test_disable_environment_variable(installed, monkeypatch, value, loaded):
    monkeypatch.setenv(plugins.DISABLE_ENV_VAR, value)
    installed(
        FakeEntryPoint("extra", plugin_module(seqpipe.ArchitectureSpec("a_gru", tiny_gru))),
        FakeEntryPoint("other", plugin_module(seqpipe.ArchitectureSpec("b_gru", tiny_gru))),
    )
    assert set(seqpipe.list_plugins()) - set(plugins.BUILTIN_PLUGINS) == loaded
    assert "lstm" in seqpipe.list_architectures()


def test_register_plugin_in_process():
    class Plugin:
        @seqpipe.hookimpl
        def seqpipe_architectures(self):
            return [seqpipe.ArchitectureSpec("inline_gru", tiny_gru)]

    seqpipe.register_plugin(Plugin(), name="inline")
    try:
        assert "inline_gru" in seqpipe.list_architectures()
    finally:
        seqpipe.unregister_plugin("inline")
    assert "inline_gru" not in seqpipe.list_architectures()
    with pytest.raises(ValueError, match="no plugin named 'inline'"):
        seqpipe.unregister_plugin("inline")


def test_body_without_output_size_is_a_clear_error():
    class Plugin:
        @seqpipe.hookimpl
        def seqpipe_architectures(self):
            return [seqpipe.ArchitectureSpec("no_size", lambda config: nn.Identity())]

    seqpipe.register_plugin(Plugin(), name="no-size")
    try:
        with pytest.raises(TypeError, match="without an integer `output_size`"):
            seqpipe.LSTMRegressor("no_size", epochs=1).fit(np.zeros((2, 2, 1)), np.zeros(2))
    finally:
        seqpipe.unregister_plugin("no-size")


@pytest.mark.skipif(
    not os.environ.get("SEQPIPE_EXPECT_PLUGINS"),
    reason="set SEQPIPE_EXPECT_PLUGINS=name,... to require installed plugins (make test does)",
)
def test_expected_external_plugins_are_installed_and_loaded():
    # Guards CI: without it a plugin that failed to install would only shrink the
    # parametrized suites instead of failing them.
    expected = [n.strip() for n in os.environ["SEQPIPE_EXPECT_PLUGINS"].split(",") if n.strip()]
    loaded = seqpipe.list_plugins()
    for name in expected:
        assert name in loaded, f"plugin {name!r} is not loaded; loaded: {sorted(loaded)}"
        assert loaded[name], f"plugin {name!r} provides no architecture"
