"""``set_output`` for transformers whose results may be sequences.

scikit-learn's ``_SetOutputMixin`` wraps every ``transform`` result into a DataFrame
indexed like the input. Sequence transformers break both halves of that: a 3-D
result cannot be a DataFrame, and for a long-format input (one row per time step)
a per-instance result needs the instance labels as its index, not the input's rows.
This mixin keeps scikit-learn's configuration (``set_output``, the global
``transform_output``, ``clone``, ``Pipeline.set_output``) and its container
adapters, and only decides what to wrap:

* a 2-D array becomes a pandas (or polars) frame: rows are the input's samples
  (instances of a long-format frame), columns :meth:`_output_columns`;
* 3-D arrays, lists of sequences and frames already built (a long-format result)
  are returned unchanged, whatever the configuration.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils._set_output import ADAPTERS_MANAGER, _get_output_config, _SetOutputMixin

from seqpipe._frames import instance_index


class SequenceOutputMixin(_SetOutputMixin):
    """Give a transformer ``set_output``; wrap its 2-D results, pass sequences through.

    Subclasses call :meth:`_wrap_output` at the end of ``transform`` (scikit-learn's
    automatic wrapping is switched off for them, and ``fit_transform`` goes through
    ``transform``), and may override :meth:`_output_columns`.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # scikit-learn's automatic wrapping would turn a 3-D result into an error.
        kwargs.setdefault("auto_wrap_output_keys", None)
        super().__init_subclass__(**kwargs)

    def set_output(self, *, transform: str | None = None) -> Any:
        """Set the output container of ``transform`` and ``fit_transform``.

        As scikit-learn's ``set_output``, for results that can be tables: a 2-D
        result becomes a DataFrame; a 3-D result (pandas cannot hold one) or a list
        of sequences stays what it is, and a long-format frame stays a pandas frame.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None, default=None
            ``"default"``: the transformer's own output; ``"pandas"``/``"polars"``:
            2-D results as that library's DataFrame; None: leave the setting as is.

        Returns
        -------
        self : estimator
            This estimator.

        Raises
        ------
        ValueError
            For any other ``transform``.
        """
        if transform is None:
            return self
        supported = ADAPTERS_MANAGER.supported_outputs
        if transform not in supported:
            raise ValueError(f"output config must be in {sorted(supported)}, got {transform}")
        if not hasattr(self, "_sklearn_output_config"):
            self._sklearn_output_config = {}
        self._sklearn_output_config["transform"] = transform
        return self

    def _output_columns(self, X: Any) -> Any:
        """Column names of a 2-D result for input ``X``: ``get_feature_names_out``."""
        return self.get_feature_names_out  # type: ignore[attr-defined]

    def _wrap_output(self, out: Any, X: Any) -> Any:
        """``out`` in the configured container when it is a 2-D array, else unchanged."""
        if not (isinstance(out, np.ndarray) and out.ndim == 2):
            return out
        config = _get_output_config("transform", self)["dense"]
        if config == "default":
            return out
        original = X
        instances = instance_index(X)
        if instances is not None:
            # One output row per instance: index the result by the instance labels.
            import pandas as pd  # present: X is a pandas frame

            original = pd.DataFrame(index=instances)
        adapter = ADAPTERS_MANAGER.adapters[config]
        return adapter.create_container(out, original, columns=self._output_columns(X))
