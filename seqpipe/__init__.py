"""seqpipe: LSTM-family models as scikit-learn estimators, with pluggable
architectures and whole-pipeline ONNX export.

The public names below are imported on first use (PEP 562), so that
``import seqpipe.runtime`` works on a server where torch is not installed. A new
public name goes into ``_LAZY`` (and the ``TYPE_CHECKING`` block), not into an
import at the top of this file.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from seqpipe._sequence_rules import SingleWindowWarning
    from seqpipe._training import NonFiniteLossError
    from seqpipe.architectures.spec import ArchitectureSpec, BodyConfig
    from seqpipe.classifier import LSTMClassifier
    from seqpipe.hookspecs import hookimpl
    from seqpipe.plugins import (
        get_architecture,
        list_architectures,
        list_plugins,
        plugin_errors,
        register_plugin,
        unregister_plugin,
    )
    from seqpipe.regressor import LSTMRegressor
    from seqpipe.transformer import LSTMTransformer

from seqpipe._install import missing_module_hint
from seqpipe._version import __version__

#: Public name -> module that defines it.
_LAZY = {
    "ArchitectureSpec": "seqpipe.architectures.spec",
    "BodyConfig": "seqpipe.architectures.spec",
    "LSTMClassifier": "seqpipe.classifier",
    "hookimpl": "seqpipe.hookspecs",
    "get_architecture": "seqpipe.plugins",
    "list_architectures": "seqpipe.plugins",
    "list_plugins": "seqpipe.plugins",
    "plugin_errors": "seqpipe.plugins",
    "register_plugin": "seqpipe.plugins",
    "unregister_plugin": "seqpipe.plugins",
    "LSTMRegressor": "seqpipe.regressor",
    "LSTMTransformer": "seqpipe.transformer",
    "SingleWindowWarning": "seqpipe._sequence_rules",
    "NonFiniteLossError": "seqpipe._training",
}

__all__ = [
    "ArchitectureSpec",
    "BodyConfig",
    "LSTMClassifier",
    "LSTMRegressor",
    "LSTMTransformer",
    "NonFiniteLossError",
    "SingleWindowWarning",
    "__version__",
    "get_architecture",
    "hookimpl",
    "list_architectures",
    "list_plugins",
    "plugin_errors",
    "register_plugin",
    "unregister_plugin",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        try:
            value = getattr(importlib.import_module(module), name)
        except ModuleNotFoundError as exc:
            # The runtime-only install: say which install brings the name, not just
            # "No module named 'torch'".
            hint = missing_module_hint(exc)
            if hint is None:
                raise
            raise ModuleNotFoundError(f"seqpipe.{name} {hint}", name=exc.name) from exc
    elif not name.startswith("__") and importlib.util.find_spec(f"seqpipe.{name}") is not None:
        # `import seqpipe; seqpipe.plugins.reset()` kept working when imports were eager.
        value = importlib.import_module(f"seqpipe.{name}")
    else:
        raise AttributeError(f"module 'seqpipe' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
