"""Score Dask arrays with a seqpipe model, on one machine or a cluster.

:func:`predict_dask` turns ``(n_samples, n_timesteps, n_features)`` Dask arrays into
lazy predictions: blocks are merged along time and features so that each task
scores whole sequences, and the output's shape, chunks and dtype come from the
exported file's metadata (no task runs to find them out). The model travels to
each worker once, as one graph key; models from :func:`seqpipe.runtime.load`
pickle as their bytes and options, and each worker process builds one
onnxruntime session for them.

Needs dask (``pip install "seqpipe-ml[dask]"``: ``dask[array]`` and
``distributed``); importing this module does not, calling it does.
"""

from __future__ import annotations

import json
import os
import pickle
import uuid
from typing import Any

import numpy as np

from seqpipe import _format as fmt
from seqpipe import runtime
from seqpipe._install import DASK_INSTALL

__all__ = ["FileOnWorkers", "predict_dask"]

METHODS = ("predict", "predict_proba", "transform")


def predict_dask(
    model: Any,
    X: Any,
    *,
    method: str = "predict",
    providers: Any = None,
    allow_cpu_fallback: bool = False,
    intra_op_num_threads: int | None = None,
) -> Any:
    """Lazy predictions for a Dask array of sequences.

    Parameters
    ----------
    model : OnnxSequenceModel, path-like, bytes, or a fitted estimator
        A model from :func:`seqpipe.runtime.load`, an exported ``.onnx`` file (or
        its bytes), or any fitted estimator or pipeline with ``method`` (seqpipe's,
        or one that takes the same 3-D input); estimators must pickle.
    X : dask.array.Array or array-like of shape (n_samples, n_timesteps, n_features)
        Or ``(n_samples, n_timesteps)`` for one feature. Shorter sequences are
        NaN-padded at the end, as for ``predict``. Any chunking: blocks are merged
        along time and features (each task then holds whole sequences); the chunks
        along axis 0 are kept and are the batch of one task, so choose them there
        (``X.rechunk({0: 50_000})``; a block of 50,000 × 24 × 2 float32 is 10 MB).
        A numpy array is wrapped with Dask's default chunks.
    method : {"predict", "predict_proba", "transform"}, default="predict"
        What to compute; ``predict_proba`` for classifiers, ``transform`` for
        ``LSTMTransformer`` files.
    providers : None, "cpu", "cuda" or list, default=None
        Where the workers run a file given as a path or bytes, as in
        :func:`seqpipe.runtime.load`. It is loaded on the workers, so ``"cuda"``
        needs a GPU there only, not here (here the file is read on the CPU for its
        metadata). A loaded model runs as it was loaded to run.
    allow_cpu_fallback : bool, default=False
        As in :func:`seqpipe.runtime.load`, with ``providers``.
    intra_op_num_threads : int, optional
        onnxruntime threads per task, for file models. Default: the model's own
        setting when it was loaded with one, else 1, because Dask already runs one
        task per worker thread (more would oversubscribe the cores). Ignored for
        estimators, which predict with their own ``torch_num_threads`` (default 1).

    Returns
    -------
    dask.array.Array
        Of shape ``(n_samples, ...)`` and dtype as ``method`` returns them:
        ``(n,)``, ``(n, k)``, ``(n, n_timesteps, k)`` (per-step outputs, NaN at
        padding) or ``(n, horizon[, k])`` float64 for regression; labels in the
        dtype of ``classes_`` or ``(n, n_classes)`` probabilities for
        classification; ``(n, n_features_out)`` for ``transform`` (float32 for
        float32 ``X``, else float64). Chunked like ``X`` along axis 0, one chunk
        along every other axis. Equal, bit for bit, to ``method`` on the whole
        array in one process.

    Raises
    ------
    ModuleNotFoundError
        dask is not installed (the message says what to install).
    ValueError
        ``X`` is not 2-D or 3-D, its feature count or chunk sizes along time are
        unknown or do not fit the model, or ``method`` is unknown.
    AttributeError
        The model has no such method (``predict_proba`` of a regressor).
    TypeError
        The model does not pickle, so it cannot be sent to worker processes.

    Notes
    -----
    For a fitted estimator the output layout is found by running ``method`` on the
    first sequence of ``X`` (which computes that much of ``X``); a file model's
    comes from its metadata.

    Examples
    --------
    >>> import dask.array as da, numpy as np, os, tempfile
    >>> from seqpipe import LSTMRegressor, runtime
    >>> from seqpipe.dask import predict_dask
    >>> from seqpipe.onnx import export
    >>> X = np.random.default_rng(0).normal(size=(100, 8, 2)).astype(np.float32)
    >>> est = LSTMRegressor(hidden_size=4, epochs=2, random_state=0).fit(X, X[:, -1, 0])
    >>> path = export(est, os.path.join(tempfile.mkdtemp(), "model.onnx"))
    >>> dX = da.from_array(X, chunks=(25, 4, 2))   # chunked along time too
    >>> y = predict_dask(path, dX)
    >>> y.shape, y.chunks
    ((100,), ((25, 25, 25, 25),))
    >>> bool(np.array_equal(y.compute(), runtime.load(path).predict(X)))
    True
    """
    da = _dask_array()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    X = X if isinstance(X, da.Array) else da.asarray(X)
    if X.ndim not in (2, 3):
        raise ValueError(
            f"X must be (n_samples, n_timesteps, n_features), or (n_samples, n_timesteps) "
            f"for one feature; got a {X.ndim}-D array of shape {X.shape}"
        )
    if any(np.isnan(size) for size in X.shape[1:]):
        raise ValueError(
            f"X's size along time or features is unknown ({X.shape}); call "
            "X.compute_chunk_sizes() first"
        )
    if isinstance(model, (str, os.PathLike, bytes, bytearray)):
        described = runtime.load(model)  # here, on the CPU: for the metadata only
        shipped: Any = FileOnWorkers(
            described.model_bytes,
            providers=providers,
            allow_cpu_fallback=allow_cpu_fallback,
            intra_op_num_threads=1 if intra_op_num_threads is None else intra_op_num_threads,
        )
    elif providers is not None or allow_cpu_fallback:
        raise ValueError(
            "providers and allow_cpu_fallback apply to a model given as a path or bytes (it "
            "is then loaded on the workers); a loaded model runs as it was loaded to run"
        )
    elif isinstance(model, runtime.OnnxSequenceModel):
        _check_pickles(model)
        described = shipped = _with_threads(model, intra_op_num_threads)
    else:
        if not callable(getattr(model, method, None)):
            raise AttributeError(f"{type(model).__name__} has no method {method!r}")
        _check_pickles(model)
        described, shipped = None, model
    # Whole sequences per block: a sequence cut along time would be scored as two.
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    if described is not None:
        trailing, dtype = _file_layout(described, method, X)
    else:
        trailing, dtype = _probed_layout(model, method, X)
    import dask

    # One graph key for the model: sent to each worker once, not with every task.
    shared = dask.delayed(shipped, name=f"seqpipe-model-{uuid.uuid4().hex}", pure=True)
    inputs = "ntf"[: X.ndim]
    outputs = "n" + "abc"[: len(trailing)]
    return da.blockwise(
        _score_block,
        outputs,
        X,
        inputs,
        shared,
        None,
        method=method,
        trailing=trailing,
        out_dtype=dtype,
        dtype=dtype,
        new_axes=dict(zip(outputs[1:], trailing, strict=True)),
        concatenate=True,
        meta=np.empty((0,) * len(outputs), dtype=dtype),
        token=f"seqpipe-{method.replace('_', '-')}",
    )


class FileOnWorkers:
    """An exported file that each worker process loads, on first use, with
    :func:`seqpipe.runtime.load` (through its per-process session cache).

    What :func:`predict_dask` sends for a model given as a path or bytes: the
    bytes and load options travel, and no session is needed where the graph is
    built (a client without a GPU can send a model to run on GPU workers).

    Parameters
    ----------
    data : bytes
        The ``.onnx`` file's bytes.
    **load_options
        Keyword arguments for :func:`seqpipe.runtime.load` (``providers``,
        ``allow_cpu_fallback``, ``intra_op_num_threads``).
    """

    def __init__(self, data: bytes, **load_options: Any) -> None:
        self.data = data
        self.load_options = load_options
        self._model: runtime.OnnxSequenceModel | None = None

    @property
    def model(self) -> runtime.OnnxSequenceModel:
        """The loaded model (loaded here on first use)."""
        if self._model is None:
            # Concurrent first uses in one process get one session from the cache.
            self._model = runtime.load(self.data, **self.load_options)
        return self._model

    @property
    def session(self) -> Any:
        return self.model.session

    def predict(self, X: Any) -> np.ndarray:
        return self.model.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model.predict_proba(X)

    def transform(self, X: Any) -> np.ndarray:
        return self.model.transform(X)

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "load_options": self.load_options, "_model": None}


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "dask":
            raise
        raise ModuleNotFoundError(
            f"seqpipe.dask needs dask, which is not installed: {DASK_INSTALL}", name=exc.name
        ) from exc
    return da


def _check_pickles(model: Any) -> None:
    """Fail now, with the reason, rather than when the scheduler serializes the graph
    (where Dask reports a failure to pickle as a failure to serialize its graph)."""
    try:
        import cloudpickle  # what Dask falls back to; comes with dask

        cloudpickle.dumps(model)
    except (TypeError, AttributeError, pickle.PicklingError) as exc:
        raise TypeError(
            f"the model does not pickle, so Dask cannot send it to worker processes: {exc}"
        ) from exc


def _with_threads(
    model: runtime.OnnxSequenceModel, threads: int | None
) -> runtime.OnnxSequenceModel:
    """``model``, or the same bytes loaded again with ``threads`` onnxruntime threads
    (1 when neither the caller nor the model's own options chose a number)."""
    options = model.load_options
    # What load was told, not what the session runs with: a count that came from
    # this process's OMP_NUM_THREADS is not carried by the pickle (each worker reads
    # its own), so it does not pin the workers to one thread.
    chosen = options["intra_op_num_threads"]
    if chosen is None and options["session_options"] is not None:
        chosen = options["session_options"].intra_op_num_threads or None  # 0: "choose"
    if threads is None:
        if chosen is not None:
            return model
        threads = 1
    if chosen == threads:
        return model
    return runtime.load(model.model_bytes, **{**options, "intra_op_num_threads": int(threads)})


def _file_layout(
    model: runtime.OnnxSequenceModel, method: str, X: Any
) -> tuple[tuple[int, ...], np.dtype]:
    """Trailing output shape and dtype of ``method``, from the file's metadata."""
    if method == "predict_proba" and model.task != fmt.TASK_CLASSIFICATION:
        raise AttributeError(
            f"predict_proba is only available for classifiers; this model's task is {model.task!r}"
        )
    if method == "transform" and model.task != fmt.TASK_TRANSFORM:
        raise AttributeError(
            f"transform is only available for LSTMTransformer models; this model's task is "
            f"{model.task!r}"
        )
    n_features = X.shape[2] if X.ndim == 3 else 1
    if n_features != model.n_features_in_:
        raise ValueError(
            f"X has {n_features} features per time step, but this model expects "
            f"{model.n_features_in_}"
        )
    name = fmt.OUTPUT_PROBA if method == "predict_proba" else model.output_name
    described = {o["name"]: o for o in json.loads(model.metadata.get(fmt.KEY_OUTPUTS, "[]"))}
    if name not in described:
        raise ValueError(f"the file's metadata does not describe its {name!r} output")
    trailing = []
    for size in described[name]["shape"][1:]:
        if size == "time":
            trailing.append(int(X.shape[1]))
        elif isinstance(size, int):
            trailing.append(size)
        else:
            raise ValueError(
                f"the file's metadata gives output {name!r} the shape "
                f"{described[name]['shape']}, whose {size!r} this version cannot size"
            )
    if model.task == fmt.TASK_TRANSFORM:
        # The runtime's (and estimator's) rule: float32 stays float32, the rest is float64.
        dtype = np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
    elif method == "predict" and model.classes_ is not None:
        dtype = model.classes_.dtype
    else:
        dtype = np.dtype(described[name]["dtype"])
    return tuple(trailing), dtype


def _probed_layout(model: Any, method: str, X: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Trailing output shape and dtype of an estimator's ``method``: run it on the
    first sequence (every block has the same trailing shape: ``X`` is rectangular)."""
    if X.shape[0] == 0:
        raise ValueError("X has no sequences; an estimator's output layout is found on the first")
    out = np.asarray(getattr(model, method)(X[:1].compute()))
    dtype = out.dtype
    classes = getattr(model, "classes_", None)
    if method == "predict" and classes is not None:
        dtype = np.asarray(classes).dtype  # "up" probed, "down" elsewhere: widest label
    return tuple(int(s) for s in out.shape[1:]), dtype


def _score_block(
    block: np.ndarray, model: Any, method: str, trailing: tuple[int, ...], out_dtype: np.dtype
) -> np.ndarray:
    """One task: ``method`` on whole sequences, checked against the announced layout."""
    expected = (block.shape[0], *trailing)
    if block.shape[0] == 0:  # empty chunks (a filtered or sliced array): nothing to score
        return np.empty(expected, dtype=out_dtype)
    out = np.asarray(getattr(model, method)(block))
    if out.shape != expected:
        raise ValueError(
            f"{method} returned shape {out.shape} for a block of {block.shape[0]} "
            f"sequences, but {expected} was announced for the Dask array"
        )
    return out
