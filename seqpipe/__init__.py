"""seqpipe: LSTM-family models as scikit-learn estimators, with pluggable
architectures and whole-pipeline ONNX export."""

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

__version__ = "0.1.0"

__all__ = [
    "ArchitectureSpec",
    "BodyConfig",
    "LSTMClassifier",
    "LSTMRegressor",
    "LSTMTransformer",
    "__version__",
    "get_architecture",
    "hookimpl",
    "list_architectures",
    "list_plugins",
    "plugin_errors",
    "register_plugin",
    "unregister_plugin",
]
