"""Serve files written by :func:`seqpipe.onnx.export` with onnxruntime alone.

This module imports only numpy and onnxruntime (not torch, onnx or scikit-learn),
so a production service installs ``numpy onnxruntime`` and seqpipe, nothing more::

    from seqpipe import runtime
    model = runtime.load("model.onnx")          # or providers="cuda"
    y = model.predict(X)                         # same numbers as the estimator's predict

Inputs follow the Python API: ``(n_samples, n_timesteps, n_features)``, 2-D
``(n_samples, n_timesteps)`` for one feature, lists of sequences of different
lengths, or NaN padding at the end of shorter sequences. Everything that can be
worked out once (names, shapes, classes) is worked out in :func:`load`, so a call
costs little more than onnxruntime's own ``run``.

Thread safety: an :class:`OnnxSequenceModel` may be shared by any number of
threads (onnxruntime sessions are thread-safe and each call uses its own
arrays). A :class:`Stream` holds one set of recurrent states and belongs to one
thread at a time.

GPU: ``providers="cuda"`` needs onnxruntime-gpu. onnxruntime's CUDA LSTM/GRU/RNN
kernels (cuDNN) ignore peephole weights, the coupled input-forget gate,
non-default activations, ``clip`` and GRU's ``linear_before_reset=0``, and
would return wrong numbers without an error. Files using any of those (listed
in their ``seqpipe.cuda_unsupported`` metadata) are refused on CUDA, or run on
the CPU with a warning when ``allow_cpu_fallback=True``.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from typing import Any

import numpy as np
import onnxruntime as ort

from seqpipe import _format as fmt
from seqpipe._chunks import length_sorted_chunks
from seqpipe._file_contract import FileContract, read_contract
from seqpipe._runtime_checks import CPU, check_batch, resolve_providers, wants_cuda
from seqpipe._sequence_rules import sequence_lengths
from seqpipe._session_cache import (
    SessionCache,
    SessionCacheInfo,
    options_from_state,
    options_state,
    session_key,
)

__all__ = [
    "OnnxSequenceModel",
    "Stream",
    "clear_session_cache",
    "load",
    "session_cache_info",
]

#: Newest file format this runtime understands.
SUPPORTED_FORMAT = int(fmt.FORMAT_VERSION)


def load(
    path: str | os.PathLike | bytes,
    providers: Any = None,
    *,
    allow_cpu_fallback: bool = False,
    intra_op_num_threads: int | None = None,
    session_options: ort.SessionOptions | None = None,
) -> OnnxSequenceModel:
    """Open an exported seqpipe model.

    Parameters
    ----------
    path : path-like or bytes
        The ``.onnx`` file (or its bytes).
    providers : None, "cpu", "cuda" or list, default=None
        Where to run: None and ``"cpu"`` mean onnxruntime's CPU provider; ``"cuda"``
        means CUDA with the CPU for the nodes CUDA lacks; a list is passed to
        onnxruntime as given (names or ``(name, options)`` pairs).
    allow_cpu_fallback : bool, default=False
        When CUDA is requested for a file whose recurrent nodes CUDA would compute
        wrongly: run on the CPU with a warning instead of raising.
    intra_op_num_threads : int, optional
        Threads onnxruntime uses within an operator. When neither this nor
        ``session_options`` sets a number: ``OMP_NUM_THREADS`` (its first entry)
        when that is set in the process that opens the session, as torch and
        numpy honour it; otherwise onnxruntime's default, one thread per core
        (onnxruntime itself ignores ``OMP_NUM_THREADS``). An unpickled model
        reads the variable of the process it lands in (Dask's nanny sets it to 1
        in every worker).
    session_options : onnxruntime.SessionOptions, optional
        Full control over the session; ``intra_op_num_threads`` overrides its
        field, and a field left at 0 (onnxruntime's "choose") gets the default above.

    Returns
    -------
    OnnxSequenceModel
        Picklable: it travels as the file's bytes and these options, and the
        receiving process reuses one session per content and options (see
        :class:`OnnxSequenceModel`).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not an ONNX file onnxruntime can load (truncated, damaged), not written by
        seqpipe, breaking the file contract (metadata that is malformed, out of
        bounds or disagrees with the graph; the message names the key and what was
        expected), or the requested provider is not available or cannot run this
        file correctly.

    Notes
    -----
    Nothing in the metadata is trusted before it is checked against a schema and
    against the graph (``seqpipe._file_contract``), so loading any file takes
    bounded time and memory beyond onnxruntime's own.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from seqpipe import LSTMRegressor, runtime
    >>> from seqpipe.onnx import export
    >>> X = np.random.default_rng(0).normal(size=(20, 4, 1))
    >>> est = LSTMRegressor(hidden_size=4, epochs=2, random_state=0).fit(X, X[:, -1, 0])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> _ = export(est, path)
    >>> model = runtime.load(path)
    >>> model.task, model.n_features_in_
    ('regression', 1)
    >>> bool(np.allclose(model.predict(X), est.predict(X), atol=1e-5))
    True
    """
    file_path = None
    if isinstance(path, (bytes, bytearray)):
        data = bytes(path)
        where = "the given bytes"
    else:
        file_path = os.fspath(path)
        where = repr(file_path)
        if not os.path.isfile(file_path):
            raise FileNotFoundError(f"no ONNX model at {where}")
        # The bytes, not the path, feed the session: a pickle then carries exactly
        # what was loaded, even if the file changes later.
        with open(file_path, "rb") as handle:
            data = handle.read()
    settings = {
        "providers": copy.deepcopy(providers),  # the caller's list may change later
        "allow_cpu_fallback": bool(allow_cpu_fallback),
        "intra_op_num_threads": None if intra_op_num_threads is None else int(intra_op_num_threads),
        "session_options": None if session_options is None else options_state(session_options),
    }
    # A caller's own SessionOptions may hold what cannot be read back from it (custom
    # ops, initializers), so two of them cannot be told apart: its session is its own.
    return _open(data, where, file_path, settings, session_options, shared=session_options is None)


def _open(
    data: bytes,
    where: str,
    file_path: str | None,
    settings: dict[str, Any],
    session_options: ort.SessionOptions | None,
    shared: bool,
) -> OnnxSequenceModel:
    """:func:`load`'s work once the bytes are read (also what unpickling runs)."""
    providers = settings["providers"]
    allow_cpu_fallback = settings["allow_cpu_fallback"]
    intra_op_num_threads = settings["intra_op_num_threads"]
    available = ort.get_available_providers()
    resolved = resolve_providers(providers, available)
    options = session_options or ort.SessionOptions()
    if intra_op_num_threads is None and options.intra_op_num_threads == 0:
        # Read here, not in load: an unpickled model follows its new process's setting.
        intra_op_num_threads = _omp_num_threads()
    if intra_op_num_threads is not None:
        options.intra_op_num_threads = int(intra_op_num_threads)
    key = session_key(data, resolved, options) if shared else None
    session = _session(data, where, options, resolved, key)
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    try:
        contract = read_contract(metadata, session.get_inputs(), session.get_outputs(), where)
    except ValueError:
        if key is not None:  # only files that can be served stay in the cache
            _SESSIONS.discard(key)
        raise
    if wants_cuda(resolved):
        unsupported = contract.cuda_unsupported
        if unsupported:
            message = (
                f"the model in {where} uses {', '.join(unsupported)}, which onnxruntime's CUDA "
                "recurrent kernels do not implement (they would return wrong numbers "
                "silently)."
            )
            if not allow_cpu_fallback:
                raise ValueError(
                    f"{message} Run it with providers='cpu', or pass allow_cpu_fallback=True"
                )
            # stacklevel 3: the caller of load(), above _open.
            warnings.warn(f"{message} Running it on the CPU instead.", RuntimeWarning, stacklevel=3)
            resolved = [CPU]
            key = session_key(data, resolved, options) if shared else None
            session = _session(data, where, options, resolved, key)
        elif "CUDAExecutionProvider" not in session.get_providers():
            if key is not None:  # a CPU-only session must not answer the next CUDA request
                _SESSIONS.discard(key)
            raise ValueError(
                f"CUDA was requested but onnxruntime could not start it for {where} (it runs "
                f"on {session.get_providers()}); check the CUDA/cuDNN installation"
            )
    model = OnnxSequenceModel(session, metadata, file_path, contract=contract)
    model._source = (data, settings)
    return model


def _omp_num_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a thread count, or None when unset or unusable.

    OpenMP's syntax allows a list (``"4,2"``, one entry per nesting level); the
    first entry is the outer level's count. A value that is not a positive integer
    is ignored with a warning, as OpenMP runtimes ignore it.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value:
        return None
    first = value.split(",")[0].strip()
    if first.isascii() and first.isdigit() and int(first) > 0:
        return int(first)
    warnings.warn(
        f"OMP_NUM_THREADS={value!r} is not a positive integer; onnxruntime runs with its "
        "default (one thread per core). Set it to e.g. 1, or pass intra_op_num_threads",
        RuntimeWarning,
        stacklevel=4,
    )
    return None


#: This process's sessions, shared by every model loaded or unpickled with the same
#: bytes and options (see seqpipe/_session_cache.py).
_SESSIONS = SessionCache()


def _session(
    data: bytes, where: str, options: ort.SessionOptions, providers: list[Any], key: Any
) -> ort.InferenceSession:
    """A new session, or (with a cache ``key``) the one this process already has."""
    if key is None:
        return _checked_session(data, where, options, providers)
    return _SESSIONS.get(key, lambda: _checked_session(data, where, options, providers))


def _checked_session(
    data: bytes, where: str, options: ort.SessionOptions, providers: list[Any]
) -> ort.InferenceSession:
    try:
        return _new_session(data, options, providers)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        # onnxruntime's own words are kept (they say what is wrong: truncated
        # protobuf, a bad node...), but cut short: they may quote the file.
        detail = str(exc)
        detail = repr(detail if len(detail) <= 500 else detail[:500] + " ...")
    if wants_cuda(providers):
        # Whether the file or CUDA failed: the file alone, on the CPU.
        try:
            _new_session(data, options, [CPU])
        except Exception:
            pass
        else:
            raise ValueError(
                f"CUDA was requested but onnxruntime could not start it for {where}: {detail}; "
                "check the CUDA/cuDNN installation, or use providers='cpu'"
            )
    raise ValueError(
        f"{where} is not a valid ONNX model onnxruntime can run (truncated, damaged or not "
        f"ONNX): {detail}"
    )


def _unpickle(data: bytes, settings: dict[str, Any], file_path: str | None) -> OnnxSequenceModel:
    """Rebuild a pickled :class:`OnnxSequenceModel` (see its ``__reduce__``)."""
    state = settings["session_options"]
    options = None if state is None else options_from_state(state)
    where = "a pickled model" + (f" (loaded from {file_path!r})" if file_path else "")
    # Options rebuilt from their recorded state are fully known, so always shared.
    return _open(data, where, file_path, settings, options, shared=True)


def session_cache_info() -> SessionCacheInfo:
    """How often this process reused an onnxruntime session instead of building one.

    Every :func:`load` without ``session_options`` and every unpickled model goes
    through a per-process cache keyed by the model's bytes (SHA-256) and its load
    options, so a Dask, joblib, multiprocessing, Spark or Ray worker that unpickles
    one model per task builds one session.

    Returns
    -------
    SessionCacheInfo
        ``(hits, misses, sessions, max_idle)``: sessions reused, sessions built,
        sessions alive now, and how many unused sessions the cache keeps alive
        (the most recently used; more than that are freed with their last model).

    Examples
    --------
    >>> from seqpipe import runtime
    >>> info = runtime.session_cache_info()
    >>> info.max_idle
    8
    """
    return _SESSIONS.info()


def clear_session_cache() -> None:
    """Drop the cache's references and reset its counters (loaded models keep their
    sessions; the next load or unpickle builds a new one)."""
    _SESSIONS.clear()


def _new_session(
    source: Any, options: ort.SessionOptions, providers: list[Any]
) -> ort.InferenceSession:
    # enable_fallback=0: on a failure onnxruntime would otherwise print a banner to
    # stdout (where `seqpipe predict` writes its results) and retry on the CPU.
    return ort.InferenceSession(
        source, sess_options=options, providers=providers, enable_fallback=0
    )


#: A ragged batch of at least this many rows runs in chunks of rows of similar
#: length, each cut after its longest sequence (as the estimators' predict does):
#: padding then costs no time. Smaller batches, the usual serving request, and
#: batches without padding keep their one call.
RAGGED_MIN_ROWS = 32
#: ...of at most this many rows x time steps each (see seqpipe._base.PREDICT_STEPS).
RAGGED_CHUNK_STEPS = 32768
#: ...when at most this fraction of the padded batch is data: with less padding,
#: the extra calls over long series cost more than the padding they save (a
#: review measured 1.2-1.8x slower at 32 x 16,000 steps with one step missing).
RAGGED_MIN_FILL = 0.75


class OnnxSequenceModel:
    """An exported model, ready to predict. Made by :func:`load`.

    Attributes
    ----------
    task : {"regression", "classification", "transform"}
    n_features_in_ : int
        Features per time step the input must have.
    classes_ : ndarray or None
        Class labels (classifiers), in the order of ``predict_proba``'s columns.
    output_kind : str
        ``single``, ``vector``, ``per_step``, ``horizon`` (encoder-decoder),
        ``classes`` or ``features``.
    metadata : dict
        Everything the exporter recorded (see :mod:`seqpipe._format`).
    streaming : bool
        Whether the file has recurrent state inputs (see :meth:`stream`).
    quantization : dict or None
        For an int8 file (``export(..., quantize="int8")``): how it was quantized
        and the error measured against the float32 graph at export (``error``,
        ``tolerance``, ``max_abs_diff``, ``class_agreement``, ...; see
        :mod:`seqpipe._format`). None for a float32 file.
    input_name : str
        The graph input that takes ``X``.
    input_dtype : numpy.dtype
        Its dtype: float32, or float64 for files whose input scaling needs it;
        ``X`` of any numeric dtype is cast to it.
    output_name : str
        The graph output ``predict`` (or ``transform``) returns.
    model_bytes : bytes or None
        The file's bytes (None for a model built around a session by hand).
    load_options : dict or None
        The options :func:`load` was given, as keyword arguments for it.

    Notes
    -----
    **Pickling.** A model from :func:`load` pickles (``pickle``, ``cloudpickle``,
    ``joblib``) as ``model_bytes`` plus ``load_options`` (providers, CPU fallback,
    threads, and the ``SessionOptions`` settings onnxruntime lets one read back:
    every property and the config entries in
    ``seqpipe._session_cache.CONFIG_KEYS``; not custom op libraries or
    initializers), so Dask, joblib, multiprocessing, Spark UDFs and Ray take it as
    it is. Unpickling runs :func:`load` on them in the receiving process, through a
    per-process cache (:func:`session_cache_info`): a worker that unpickles the
    model once per task builds one ``InferenceSession``. ``providers="cuda"``
    means CUDA on the machine that unpickles (with ``CUDA_VISIBLE_DEVICES`` there
    choosing the device). Models loaded with the same bytes and options share one
    session (onnxruntime sessions are thread-safe); one loaded with its own
    ``session_options`` object keeps a session of its own.
    """

    #: ``(bytes, load settings)`` for pickling; set by :func:`load`.
    _source: tuple[bytes, dict[str, Any]] | None = None

    def __init__(
        self,
        session: ort.InferenceSession,
        metadata: dict[str, str],
        path: str | None,
        *,
        contract: FileContract | None = None,
    ):
        if contract is None:
            where = repr(path) if path else "the model"
            contract = read_contract(metadata, session.get_inputs(), session.get_outputs(), where)
        self.session = session
        self.metadata = metadata
        self.path = path
        self.task = contract.task
        self.output_kind = contract.output_kind
        self.architecture = contract.architecture
        self.n_features_in_ = contract.n_features
        #: Longest sequence the network reads (lstm_fcn's dimension shuffle), or None.
        self.max_timesteps = contract.max_timesteps
        self.states = contract.states
        self.streaming = bool(self.states)
        self.classes_ = contract.classes
        # Fewest steps of a training sequence: a one-feature window passed alone as
        # (n, 1) reads as n one-step sequences, which the validator warns about.
        self._shortest_fit = contract.shortest_fit
        self.quantization = contract.quantization
        main = {
            fmt.TASK_REGRESSION: fmt.OUTPUT_REGRESSION,
            fmt.TASK_CLASSIFICATION: fmt.OUTPUT_LABEL,
            fmt.TASK_TRANSFORM: fmt.OUTPUT_FEATURES,
        }[self.task]
        self.input_name = fmt.INPUT
        # float64 for files whose input scaling needs it (large offsets), else float32;
        # the file contract has checked it is one of the two.
        inputs = {node.name: node for node in session.get_inputs()}
        double = inputs[fmt.INPUT].type == "tensor(double)"
        self.input_dtype = np.dtype(np.float64 if double else np.float32)
        self.output_name = main
        self._main = [main]
        self._proba = [fmt.OUTPUT_PROBA]
        self._input = self.input_name
        self._run = session.run
        self._labels = None if self.classes_ is None else self.classes_.dtype
        # The output with a time axis (per-step regression), as the file declares it.
        self._per_step = {main} if self.output_kind == "per_step" else set()
        # Ragged chunks are for the CPU: a GPU runs a wide batch for little more.
        self._chunks_ragged = session.get_providers()[:1] == [CPU]

    def __reduce__(self) -> tuple[Any, ...]:
        if self._source is None:
            raise TypeError(
                "this OnnxSequenceModel was built around an InferenceSession by hand, and "
                "onnxruntime sessions do not pickle; make it with seqpipe.runtime.load(path "
                "or bytes), whose models pickle as the file's bytes and load options"
            )
        data, settings = self._source
        return (_unpickle, (data, settings, self.path))

    @property
    def model_bytes(self) -> bytes | None:
        """The file's bytes, as loaded (None for a model built around a session by hand)."""
        return None if self._source is None else self._source[0]

    @property
    def load_options(self) -> dict[str, Any] | None:
        """The options :func:`load` was given, so that ``load(model.model_bytes,
        **model.load_options)`` is the same model (what unpickling does); None for a
        model built around a session by hand."""
        if self._source is None:
            return None
        settings = copy.deepcopy(self._source[1])
        state = settings["session_options"]
        settings["session_options"] = None if state is None else options_from_state(state)
        return settings

    def __repr__(self) -> str:
        where = f" from {self.path!r}" if self.path else ""
        return (
            f"<OnnxSequenceModel {self.metadata.get(fmt.KEY_MODEL, '?')} ({self.task}, "
            f"{self.n_features_in_} features){where}>"
        )

    def _checked(self, X: Any) -> np.ndarray:
        """``X`` validated (:func:`check_batch`), and within ``max_timesteps``."""
        X = check_batch(X, self.n_features_in_, self.input_dtype, self._shortest_fit)
        bound = self.max_timesteps
        if bound is not None and X.shape[1] > bound:
            # Steps past the bound are fine while they are padding (the graph cuts them).
            longest = int(sequence_lengths(X).max())
            if longest > bound:
                raise ValueError(
                    f"this model reads at most max_timesteps={bound} steps per sequence "
                    f"(architecture {self.architecture!r} with dimension_shuffle=True reads a "
                    f"whole series as one input), but got a sequence of {longest} steps; "
                    "refit on sequences that long or with "
                    "architecture_options['dimension_shuffle']=False"
                )
        return X

    def _feeds(self, X: np.ndarray) -> dict[str, np.ndarray]:
        feeds = {self._input: X}
        for state in self.states:
            # A separate zero array per state: onnxruntime may read inputs in place.
            feeds[state["input"]] = np.zeros((1, X.shape[0], state["shape"][2]), np.float32)
        return feeds

    def _run_rows(self, names: list[str], X: np.ndarray) -> list[np.ndarray]:
        """The outputs ``names`` for validated ``X``: one run, or, on the CPU, for a
        ragged batch of at least :data:`RAGGED_MIN_ROWS` rows at most
        :data:`RAGGED_MIN_FILL` data, length-sorted chunks each cut after its
        longest sequence, put back in row order (per-step outputs NaN after each
        sequence's end, as the graph writes them). Streaming files keep one run."""
        n, steps = X.shape[:2]
        # Padding is trailing: a batch without NaN at its last step has none.
        if (
            n < RAGGED_MIN_ROWS
            or self.states
            or not self._chunks_ragged
            or not np.isnan(X[:, -1]).any()
        ):
            return self._run(names, self._feeds(X))
        lengths = sequence_lengths(X)
        if lengths.sum() > RAGGED_MIN_FILL * n * steps:
            # Little padding: several calls over long series would cost more than it.
            return self._run(names, self._feeds(X))
        outs: list[np.ndarray] = []
        for index in length_sorted_chunks(n, steps, lengths, n, RAGGED_CHUNK_STEPS):
            width = max(1, int(lengths[index].max()))
            results = self._run(names, self._feeds(np.ascontiguousarray(X[index, :width])))
            if not outs:
                for name, result in zip(names, results, strict=True):
                    if name in self._per_step:
                        shape = (n, steps, *result.shape[2:])
                        outs.append(np.full(shape, np.nan, dtype=result.dtype))
                    else:
                        outs.append(np.empty((n, *result.shape[1:]), dtype=result.dtype))
            for name, out, result in zip(names, outs, results, strict=True):
                if name in self._per_step:
                    out[index, :width] = result
                else:
                    out[index] = result
        return outs

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, shaped as the estimator's ``predict`` returns them.

        Regression: ``(n,)``, ``(n, k)`` or ``(n, n_timesteps, k)`` float64 (NaN at
        padded steps); classification: labels from ``classes_``; transform: the
        features (as :meth:`transform`).
        """
        if (
            self._labels is not None
            or self.states
            or self.task != fmt.TASK_REGRESSION
            or self.max_timesteps is not None
        ):
            return self._predict_other(X)
        # The hot path (a regression file), kept to one check and one run.
        X = check_batch(X, self.n_features_in_, self.input_dtype, self._shortest_fit)
        if len(X) >= RAGGED_MIN_ROWS:
            return self._run_rows(self._main, X)[0]
        return self._run(self._main, {self._input: X})[0]

    def _predict_other(self, X: Any) -> np.ndarray:
        if self.task == fmt.TASK_TRANSFORM:
            return self.transform(X)
        out = self._run_rows(self._main, self._checked(X))[0]
        return out if self._labels is None else out.astype(self._labels, copy=False)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns ordered as ``classes_``."""
        if self.task != fmt.TASK_CLASSIFICATION:
            raise AttributeError(
                f"predict_proba is only available for classifiers; this model's task is "
                f"{self.task!r}"
            )
        return self._run_rows(self._proba, self._checked(X))[0]

    def transform(self, X: Any) -> np.ndarray:
        """Each sequence's encoding ``(n, n_features_out)`` (LSTMTransformer files);
        float32 for float32 input, else float64, as the estimator returns it."""
        if self.task != fmt.TASK_TRANSFORM:
            raise AttributeError(
                f"transform is only available for LSTMTransformer models; this model's task "
                f"is {self.task!r}"
            )
        float32 = getattr(X, "dtype", None) == np.float32
        X = self._checked(X)
        out = self._run_rows(self._main, X)[0]
        return out if float32 else out.astype(np.float64)

    def run(self, X: Any) -> dict[str, np.ndarray]:
        """Every output of the graph by name (validated input, zero initial state)."""
        X = self._checked(X)
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self._run(names, self._feeds(X)), strict=True))

    def stream(self, batch_size: int = 1) -> Stream:
        """A :class:`Stream` of ``batch_size`` independent sequences (streaming files)."""
        return Stream(self, batch_size)


class Stream:
    """Feed sequences step by step (or chunk by chunk), keeping the recurrent state.

    Needs a file exported with ``streaming=True``. Outputs after each call are what
    ``predict`` would return for everything fed so far; for per-step models, the
    predictions of the steps just fed. Stepping through a window gives the same
    numbers as predicting the whole window.

    Parameters
    ----------
    model : OnnxSequenceModel
    batch_size : int, default=1
        Number of independent streams advanced together.

    Attributes
    ----------
    outputs : dict
        Every graph output of the last call but the states (e.g. ``probabilities``).
    n_steps : ndarray of shape (batch_size,)
        Time steps fed so far, per stream.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from seqpipe import LSTMRegressor, runtime
    >>> from seqpipe.onnx import export
    >>> X = np.random.default_rng(0).normal(size=(20, 6, 2))
    >>> est = LSTMRegressor(hidden_size=4, epochs=2, random_state=0).fit(X, X[:, -1, 0])
    >>> path = os.path.join(tempfile.mkdtemp(), "stream.onnx")
    >>> _ = export(est, path, streaming=True)
    >>> stream = runtime.load(path).stream(batch_size=3)
    >>> for t in range(6):
    ...     y = stream.step(X[:3, t])          # one time step of each of 3 streams
    >>> bool(np.allclose(y, est.predict(X[:3]), atol=1e-5))
    True
    """

    def __init__(self, model: OnnxSequenceModel, batch_size: int = 1) -> None:
        if not model.streaming:
            raise ValueError(
                "this model file has no recurrent state inputs; export it with "
                "seqpipe.onnx.export(..., streaming=True) to stream"
            )
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = int(batch_size)
        # Everything a step needs, worked out once: output names, where the main
        # output and each state sit among them.
        self._names = [o.name for o in model.session.get_outputs()]
        self._main = self._names.index(model.output_name)
        self._slots = [(st["input"], self._names.index(st["output"])) for st in model.states]
        self._labels = model.classes_.dtype if model.task == fmt.TASK_CLASSIFICATION else None
        self._per_step = model.output_kind == "per_step"
        self.reset()

    def reset(self) -> None:
        """Forget everything fed so far (zero states)."""
        # One array per state: onnxruntime may read an input in place, so none is shared.
        self._state = {
            st["input"]: np.zeros((1, self.batch_size, st["shape"][2]), np.float32)
            for st in self.model.states
        }
        self._last: list[np.ndarray] = []
        self.n_steps = np.zeros(self.batch_size, dtype=np.int64)

    @property
    def outputs(self) -> dict[str, np.ndarray]:
        """Every graph output of the last call but the states (e.g. ``probabilities``)."""
        states = {i for _, i in self._slots}
        return {self._names[i]: v for i, v in enumerate(self._last) if i not in states}

    def step(self, x: Any) -> np.ndarray:
        """Advance every stream by one time step ``x`` of shape ``(batch_size, n_features)``
        (or ``(n_features,)`` when ``batch_size`` is 1)."""
        x = np.asarray(x)
        if x.ndim == 1 and self.batch_size == 1:
            x = x[None]
        if x.ndim != 2:
            raise ValueError(
                f"step expects one time step of shape (batch_size, n_features) = "
                f"({self.batch_size}, {self.model.n_features_in_}), got {x.shape}; use feed() "
                "for chunks"
            )
        out = self.feed(x[:, None, :])
        return out[:, 0] if self._per_step else out

    def feed(self, chunk: Any) -> np.ndarray:
        """Advance every stream by a chunk ``(batch_size, n_timesteps, n_features)``.

        Shorter chunks for some streams: NaN-pad them at the end, as for ``predict``.
        """
        chunk = check_batch(chunk, self.model.n_features_in_, self.model.input_dtype)
        if chunk.shape[0] != self.batch_size:
            raise ValueError(
                f"this stream holds {self.batch_size} sequences but got a chunk of {chunk.shape[0]}"
            )
        feeds = self._state
        feeds[self.model.input_name] = chunk
        outs = self.model.session.run(self._names, feeds)
        # onnxruntime returns new arrays each call, so the next feed never aliases one.
        self._state = {name: outs[i] for name, i in self._slots}
        self._last = outs
        if math.isfinite(np.vdot(chunk, chunk)):
            self.n_steps += chunk.shape[1]
        else:  # ragged chunk: count each stream's own steps
            self.n_steps += np.isfinite(chunk).any(axis=2).sum(axis=1)
        out = outs[self._main]
        return out if self._labels is None else out.astype(self._labels, copy=False)

    @property
    def state(self) -> dict[str, np.ndarray]:
        """A copy of the recurrent state by input name, each ``(1, batch_size, hidden)``."""
        return {name: value.copy() for name, value in self._state.items()}
