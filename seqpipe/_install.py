"""The two installs, and the one-line hint when code needs the full one.

``pip install seqpipe-ml`` brings numpy and onnxruntime: enough for
:mod:`seqpipe.runtime`, ``seqpipe predict`` and ``seqpipe info``. Fitting, export
and plugins need the ``train`` extra (torch, scikit-learn, onnx, pluggy). Imports
nothing, so the runtime-only install can always read it.
"""

from __future__ import annotations

#: Name on the package index (``seqpipe`` there is an unrelated project); the import
#: package is ``seqpipe``. Must match ``[project] name`` in pyproject.toml.
DISTRIBUTION = "seqpipe-ml"

#: The extra that turns the runtime-only install into the full one.
TRAIN_EXTRA = "train"

#: Top-level modules the ``train`` extra brings and the runtime-only install lacks
#: (import names: scikit-learn imports as ``sklearn``).
TRAIN_MODULES = frozenset({"torch", "sklearn", "onnx", "pluggy"})

#: What to run to get the full install, as a user would type it.
FULL_INSTALL = f'pip install "{DISTRIBUTION}[{TRAIN_EXTRA}]"'

#: What :mod:`seqpipe.dask` needs (dask.array and distributed), as a user would type it.
DASK_INSTALL = f'pip install "{DISTRIBUTION}[dask]"'


def missing_module_hint(exc: ModuleNotFoundError) -> str | None:
    """Say what to install when ``exc`` is a module of the full install.

    Parameters
    ----------
    exc : ModuleNotFoundError
        The error raised by an import.

    Returns
    -------
    str or None
        ``"needs torch, which the runtime-only install leaves out: pip install ..."``,
        to follow the name of what was asked for; None when the missing module is
        not one the ``train`` extra provides (then it is a different problem and
        the original error should stand).

    Examples
    --------
    >>> missing_module_hint(ModuleNotFoundError("No module named 'torch'", name="torch"))
    'needs torch, which the runtime-only install leaves out: pip install "seqpipe-ml[train]"'
    >>> missing_module_hint(ModuleNotFoundError("No module named 'foo'", name="foo")) is None
    True
    """
    top = (exc.name or "").partition(".")[0]
    if top not in TRAIN_MODULES:
        return None
    shown = "scikit-learn" if top == "sklearn" else top
    return f"needs {shown}, which the runtime-only install leaves out: {FULL_INSTALL}"
