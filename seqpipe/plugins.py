"""The architecture registry, built once from pluggy plugins.

seqpipe's built-in architectures are plugin modules listed in ``BUILTIN_PLUGINS``;
external ones are discovered from the ``seqpipe`` entry-point group. Both go
through the same ``seqpipe_architectures`` hook. Set ``SEQPIPE_DISABLE_PLUGINS=1``
to load no external plugin, or to a comma-separated list of entry-point names to
block just those.

A plugin that fails to import, raises from its hook or returns a malformed spec is
reported (warning + :func:`plugin_errors`) and skipped; every other architecture
keeps working. Two plugins claiming one name make that name unusable, with an
error naming both, rather than silently picking one.
"""

from __future__ import annotations

import functools
import importlib
import math
import numbers
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from seqpipe import hookspecs
from seqpipe.architectures.spec import ArchitectureSpec, OnnxLowering

ENTRY_POINT_GROUP = "seqpipe"
DISABLE_ENV_VAR = "SEQPIPE_DISABLE_PLUGINS"

#: Modules registered as plugins before any external one; the same hook, the same path.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "seqpipe.architectures.torch_rnn",
    "seqpipe.architectures.lstm_variants",
    "seqpipe.architectures.fcn",
)


class PluginWarning(UserWarning):
    """A plugin could not be loaded or returned something unusable."""


@dataclass(frozen=True)
class PluginProblem:
    """Why one plugin (or one of its specs) was skipped."""

    plugin: str
    message: str


@dataclass(frozen=True)
class _Entry:
    spec: ArchitectureSpec
    plugin: str


class _Registry:
    """Name -> spec mapping that refuses duplicates and explains failed lookups."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.conflicts: dict[str, list[str]] = {}
        self.problems: list[PluginProblem] = []

    def add(self, spec: Any, plugin: str) -> None:
        problem = _spec_problem(spec)
        if problem:
            self._report(plugin, problem)
            return
        name = spec.name
        if name in self.conflicts:
            self.conflicts[name].append(plugin)
        elif name in self.entries:
            self.conflicts[name] = [self.entries.pop(name).plugin, plugin]
        else:
            self.entries[name] = _Entry(spec, plugin)
            return
        self._report(
            plugin,
            f"architecture {name!r} is provided by several plugins "
            f"({', '.join(self.conflicts[name])}); it is disabled until only one provides it",
        )

    def _report(self, plugin: str, message: str) -> None:
        self.problems.append(PluginProblem(plugin, message))
        warnings.warn(f"seqpipe plugin {plugin!r}: {message}", PluginWarning, stacklevel=4)


def _spec_problem(spec: Any) -> str | None:
    if not isinstance(spec, ArchitectureSpec):
        return f"returned {type(spec).__name__!s}, expected seqpipe.ArchitectureSpec"
    if not isinstance(spec.name, str) or not spec.name.isidentifier():
        return f"architecture name {spec.name!r} must be a non-empty identifier"
    if not callable(spec.build):
        return f"architecture {spec.name!r}: build must be callable"
    lowering = spec.onnx_lowering
    if lowering is not None and not isinstance(lowering, OnnxLowering):
        hint = (
            " (wrap the function: OnnxLowering(lower=..., name=...), declaring what it can do)"
            if callable(lowering)
            else ""
        )
        return (
            f"architecture {spec.name!r}: onnx_lowering must be a seqpipe.architectures."
            f"OnnxLowering or None, got {type(lowering).__name__}{hint}"
        )
    if lowering is not None and not callable(lowering.lower):
        return f"architecture {spec.name!r}: onnx_lowering.lower must be callable"
    if not spec.test_params or not all(isinstance(p, dict) for p in spec.test_params):
        return f"architecture {spec.name!r}: test_params must be a non-empty tuple of dicts"
    lr = spec.default_lr
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < math.inf
    ):
        return (
            f"architecture {spec.name!r}: default_lr must be a positive float or None, got {lr!r}"
        )
    hidden = spec.default_hidden_size
    if hidden is not None and (
        isinstance(hidden, bool) or not isinstance(hidden, numbers.Integral) or hidden < 1
    ):
        return (
            f"architecture {spec.name!r}: default_hidden_size must be a positive int or None, "
            f"got {hidden!r}"
        )
    return None


def blocked_entry_points() -> tuple[bool, set[str]]:
    """What ``SEQPIPE_DISABLE_PLUGINS`` blocks: ``(all_blocked, blocked_names)``."""
    value = os.environ.get(DISABLE_ENV_VAR, "").strip()
    if value.lower() in {"1", "true", "yes", "all"}:
        return True, set()
    return False, {v.strip() for v in value.split(",") if v.strip()}


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, building it on first use.

    Built-ins are registered first, then every entry point of the ``seqpipe`` group
    that ``SEQPIPE_DISABLE_PLUGINS`` does not block.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    _load_entry_points(pm)
    return pm


_load_problems: list[PluginProblem] = []


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    _load_problems.clear()
    disable_all, blocked = blocked_entry_points()
    if disable_all:
        return
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked or pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            problem = PluginProblem(ep.name, f"failed to load ({ep.value}): {exc!r}")
            _load_problems.append(problem)
            warnings.warn(
                f"seqpipe plugin {ep.name!r} {problem.message}", PluginWarning, stacklevel=3
            )


@functools.lru_cache(maxsize=1)
def _registry() -> _Registry:
    pm = get_plugin_manager()
    registry = _Registry()
    registry.problems.extend(_load_problems)
    # Call each plugin's implementation on its own (through pluggy, so hooks may gain
    # arguments that implementations do not take) so one failing plugin is skipped,
    # not fatal, and every spec is attributed to the plugin that returned it.
    hook = pm.hook.seqpipe_architectures
    impls = hook.get_hookimpls()
    for impl in impls:
        plugin = impl.plugin_name
        others = [other.plugin for other in impls if other is not impl]
        try:
            results = pm.subset_hook_caller(hook.name, remove_plugins=others)()
        except Exception as exc:
            registry._report(plugin, f"seqpipe_architectures() raised {exc!r}")
            continue
        specs = results[0] if results else None  # pluggy drops a None result
        if not isinstance(specs, Iterable) or isinstance(specs, (str, ArchitectureSpec)):
            registry._report(plugin, "seqpipe_architectures() must return a list of specs")
            continue
        for spec in specs:
            registry.add(spec, plugin)
    return registry


def reset() -> None:
    """Forget the plugin manager and registry; the next lookup rebuilds both.

    Useful after installing a plugin in a running interpreter, and in tests.
    """
    _registry.cache_clear()
    get_plugin_manager.cache_clear()


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object (module or instance with hook implementations) now.

    This is the in-process equivalent of an entry point, e.g. for a notebook.

    Examples
    --------
    >>> from torch import nn
    >>> import seqpipe
    >>> class Plugin:
    ...     @seqpipe.hookimpl
    ...     def seqpipe_architectures(self):
    ...         return [seqpipe.ArchitectureSpec("doc_identity", lambda config: nn.Identity())]
    >>> name = seqpipe.register_plugin(Plugin(), name="doc-plugin")
    >>> "doc_identity" in seqpipe.list_architectures()
    True
    >>> seqpipe.unregister_plugin("doc-plugin")
    """
    registered = get_plugin_manager().register(plugin, name=name)
    if registered is None:
        raise ValueError(f"plugin {name!r} is already registered or blocked")
    _registry.cache_clear()
    return registered


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered under ``name``."""
    pm = get_plugin_manager()
    if pm.get_plugin(name) is None:
        raise ValueError(f"no plugin named {name!r}; registered: {sorted(list_plugins())}")
    pm.unregister(name=name)
    _registry.cache_clear()


def list_architectures() -> list[str]:
    """Names of every usable architecture, built-in and plugin, sorted.

    Examples
    --------
    >>> import seqpipe
    >>> {"lstm", "gru", "rnn"} <= set(seqpipe.list_architectures())
    True
    """
    return sorted(_registry().entries)


def list_plugins() -> dict[str, list[str]]:
    """Map each registered plugin name to the architectures it provides."""
    pm = get_plugin_manager()
    out: dict[str, list[str]] = {name: [] for name, _ in pm.list_name_plugin()}
    for name, entry in _registry().entries.items():
        out.setdefault(entry.plugin, []).append(name)
    return {plugin: sorted(names) for plugin, names in out.items()}


def plugin_errors() -> list[PluginProblem]:
    """Problems met while loading plugins (empty when every plugin loaded cleanly)."""
    return list(_registry().problems)


def get_architecture(name: str) -> ArchitectureSpec:
    """Return the spec registered under ``name``.

    Raises
    ------
    ValueError
        If no plugin provides ``name`` (the message lists what is registered), or
        several do (the message names them).
    """
    registry = _registry()
    if isinstance(name, str) and name in registry.entries:
        return registry.entries[name].spec
    if isinstance(name, str) and name in registry.conflicts:
        raise ValueError(
            f"architecture {name!r} is provided by several plugins "
            f"({', '.join(registry.conflicts[name])}); uninstall or block one of them "
            f"with {DISABLE_ENV_VAR}"
        )
    raise ValueError(
        f"Unknown architecture {name!r}. Registered architectures: "
        f"{', '.join(sorted(registry.entries)) or '(none)'}"
    )
