"""What ``seqpipe plugins`` prints: every plugin, where it comes from, what it provides.

The report is plain text meant for a terminal or a bug report: one block per
plugin (built-in, entry point with its distribution and version, or registered in
process), the architectures each provides with their ONNX path, the entry points
that ``SEQPIPE_DISABLE_PLUGINS`` blocks, and every problem met while loading.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

from seqpipe import plugins
from seqpipe._version import __version__

__all__ = ["PluginInfo", "collect_plugin_info", "format_plugin_report"]


@dataclass
class PluginInfo:
    """One line of the report: a plugin and where it comes from.

    Attributes
    ----------
    name : str
        The plugin's name (its entry-point name, or module name for built-ins).
    origin : str
        ``"built-in"``, ``"entry point"`` or ``"registered in process"``.
    target : str
        What was loaded: the module path, or the entry point's ``value``.
    distribution : str or None
        ``"name version"`` of the installed distribution declaring the entry point.
    status : str
        ``"loaded"``, ``"disabled"`` (blocked by the environment variable) or
        ``"failed"``.
    architectures : list of str
        Usable architectures this plugin provides.
    """

    name: str
    origin: str
    target: str
    distribution: str | None = None
    status: str = "loaded"
    architectures: list[str] = field(default_factory=list)


def _distribution(ep: Any) -> str | None:
    dist = getattr(ep, "dist", None)  # absent on fake or very old entry points
    if dist is None:
        return None
    try:
        return f"{dist.metadata['Name']} {dist.version}"
    except Exception:  # a report must not fail on odd metadata
        return None


def collect_plugin_info() -> list[PluginInfo]:
    """Every known plugin, built-ins first, then entry points, then in-process ones."""
    provided = plugins.list_plugins()
    pm = plugins.get_plugin_manager()
    failed = {p.plugin for p in plugins.plugin_errors() if "failed to load" in p.message}
    disable_all, blocked = plugins.blocked_entry_points()
    infos = [
        PluginInfo(name, "built-in", name, architectures=provided.get(name, []))
        for name in plugins.BUILTIN_PLUGINS
    ]
    seen = set(plugins.BUILTIN_PLUGINS)
    for ep in plugins.entry_points(group=plugins.ENTRY_POINT_GROUP):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        if disable_all or ep.name in blocked:
            status = "disabled"
        elif ep.name in failed:
            status = "failed"
        else:
            status = "loaded" if pm.get_plugin(ep.name) is not None else "not loaded"
        infos.append(
            PluginInfo(
                ep.name,
                "entry point",
                ep.value,
                _distribution(ep),
                status,
                provided.get(ep.name, []) if status == "loaded" else [],
            )
        )
    for name, plugin in pm.list_name_plugin():
        if name not in seen:
            target = getattr(plugin, "__name__", type(plugin).__name__)
            infos.append(
                PluginInfo(name, "registered in process", target, None, "loaded", provided[name])
            )
    return infos


def _onnx_path(name: str) -> str:
    """The architecture's declared lowering and what it can do, in words."""
    lowering = plugins.get_architecture(name).onnx_lowering
    if lowering is None:  # the exporter's traced fallback
        return "torch.onnx.export: traced, verified at export"
    return f"{lowering.name}: {', '.join(lowering.capabilities())}"


def format_plugin_report() -> str:
    """The plugin report as text.

    Returns
    -------
    str
        Several lines, ending without a newline.

    Examples
    --------
    >>> from seqpipe.plugin_report import format_plugin_report
    >>> report = format_plugin_report()
    >>> "seqpipe.architectures.torch_rnn (built-in)" in report
    True
    >>> "lstm" in report and "Problems:" in report
    True
    """
    with warnings.catch_warnings():
        # Loading problems are listed below; repeating them as warnings adds noise.
        warnings.simplefilter("ignore", plugins.PluginWarning)
        infos = collect_plugin_info()
        problems = plugins.plugin_errors()
    env = os.environ.get(plugins.DISABLE_ENV_VAR)
    disabled = "not set" if env is None else f"= {env!r}"
    lines = [
        f"seqpipe {__version__}: {len(infos)} plugin(s), "
        f"{len(plugins.list_architectures())} architecture(s)",
        f"entry-point group {plugins.ENTRY_POINT_GROUP!r}; {plugins.DISABLE_ENV_VAR} {disabled}",
        "",
        "Plugins:",
    ]
    for info in infos:
        origin = info.origin
        if info.origin == "entry point":
            origin += f" {info.target}"
            if info.distribution:
                origin += f" from {info.distribution}"
        elif info.origin == "registered in process":
            origin += f" ({info.target})"
        status = "" if info.status == "loaded" else f" [{info.status}]"
        lines.append(f"  {info.name} ({origin}){status}")
        width = max((len(a) for a in info.architectures), default=0)
        for arch in info.architectures:
            description = plugins.get_architecture(arch).description or "(no description)"
            lines.append(f"    {arch:<{width}}  {description}  [ONNX: {_onnx_path(arch)}]")
        if info.status == "loaded" and not info.architectures:
            lines.append("    (provides no usable architecture)")
    lines += ["", "Problems:"]
    lines += [f"  {p.plugin}: {p.message}" for p in problems] or ["  none"]
    return "\n".join(lines)
