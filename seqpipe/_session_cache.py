"""One onnxruntime session per model content and options, per process.

:mod:`seqpipe.runtime` models pickle as their file's bytes plus their load options
(onnxruntime sessions do not pickle). A Dask worker, a joblib or multiprocessing
worker, a Spark executor or a Ray actor may unpickle the same model thousands of
times (once per task); building a session each time would cost more than most
predictions, and keeping each one would leak memory. This cache hands every
unpickle (and every :func:`seqpipe.runtime.load` with the same bytes and options)
the one session already built in this process.

numpy-free and torch-free: imports only the standard library and onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import onnxruntime as ort

#: Sessions the cache keeps alive after the last model using them is gone, most
#: recently used first. A worker that unpickles a model per task (each copy dropped
#: when its task ends) then still builds its session once; sessions still used by
#: some model are found however many there are (they are held weakly as well).
MAX_IDLE_SESSIONS = 8

#: Session config entries (``SessionOptions.add_session_config_entry``) a pickle
#: carries. onnxruntime cannot list the entries a ``SessionOptions`` holds, only
#: read one by key, so these are the ones that matter for serving.
CONFIG_KEYS = (
    "session.intra_op.allow_spinning",
    "session.inter_op.allow_spinning",
    "session.set_denormal_as_zero",
    "session.use_env_allocators",
    "session.disable_prepacking",
    "session.intra_op_thread_affinities",
    "session.dynamic_block_base",
)


class SessionCacheInfo(NamedTuple):
    """Counters of the session cache, as :func:`functools.lru_cache`'s ``cache_info``."""

    hits: int  # a session was reused
    misses: int  # a session was built
    sessions: int  # sessions alive and known to the cache (in use or idle)
    max_idle: int  # sessions kept alive while no model uses them


def options_state(options: ort.SessionOptions) -> dict[str, Any]:
    """The settings of ``options`` that differ from a fresh ``SessionOptions``.

    Every readable property (enums as ints) and the entries of :data:`CONFIG_KEYS`.
    Custom op libraries, initializers and free-dimension overrides cannot be read
    back from a ``SessionOptions`` and are not included.

    Parameters
    ----------
    options : onnxruntime.SessionOptions

    Returns
    -------
    dict
        Property name (or ``"config:" + key``) to a bool, int, float or str; what
        :func:`options_from_state` rebuilds the options from.

    Examples
    --------
    >>> import onnxruntime as ort
    >>> options = ort.SessionOptions()
    >>> options.intra_op_num_threads = 1
    >>> options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    >>> options_state(options)
    {'intra_op_num_threads': 1, 'config:session.intra_op.allow_spinning': '0'}
    >>> options_from_state(options_state(options)).intra_op_num_threads
    1
    """
    default = ort.SessionOptions()
    state: dict[str, Any] = {}
    for name in _properties():
        value = _plain(getattr(options, name))
        if value is not None and value != _plain(getattr(default, name)):
            state[name] = value
    for key in CONFIG_KEYS:
        try:
            state[f"config:{key}"] = options.get_session_config_entry(key)
        except RuntimeError:  # onnxruntime's answer for "not set"
            pass
    return state


def options_from_state(state: dict[str, Any]) -> ort.SessionOptions:
    """A ``SessionOptions`` with the settings :func:`options_state` recorded."""
    options = ort.SessionOptions()
    for name, value in state.items():
        if name.startswith("config:"):
            options.add_session_config_entry(name[len("config:") :], value)
            continue
        current = getattr(options, name)
        # Enums travel as ints (their type is onnxruntime's, not picklable by value).
        setattr(options, name, type(current)(value) if _is_enum(current) else value)
    return options


def session_key(data: bytes, providers: list[Any], options: ort.SessionOptions) -> Hashable:
    """What makes two sessions interchangeable: the model's content, the providers
    (with their options) and the session settings."""
    digest = hashlib.sha256(data).hexdigest()
    return (
        digest,
        json.dumps(providers, sort_keys=True, default=repr),
        json.dumps(options_state(options), sort_keys=True),
    )


class SessionCache:
    """Thread-safe map from :func:`session_key` to a live ``InferenceSession``.

    A session stays in the cache while any model uses it (weak reference) and,
    once unused, while it is among the ``max_idle`` most recently used (strong
    reference); so the cache never grows with the number of unpickles, and holds
    at most ``max_idle`` sessions nothing else needs. Two threads asking for the
    same key at once build one session: the second waits for the first.
    """

    def __init__(self, max_idle: int = MAX_IDLE_SESSIONS) -> None:
        self.max_idle = int(max_idle)
        self._lock = threading.Lock()
        self._alive: weakref.WeakValueDictionary[Hashable, ort.InferenceSession] = (
            weakref.WeakValueDictionary()
        )
        self._recent: OrderedDict[Hashable, ort.InferenceSession] = OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self._hits = 0
        self._misses = 0

    def get(self, key: Hashable, build: Callable[[], ort.InferenceSession]) -> ort.InferenceSession:
        """The session for ``key``, built by ``build()`` if there is none.

        An exception from ``build`` propagates and nothing is cached.
        """
        with self._lock:
            session = self._found(key)
            if session is not None:
                return session
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one build per key; other keys build in parallel
            with self._lock:
                session = self._found(key)
                if session is not None:
                    return session
            try:
                session = build()
            except BaseException:
                with self._lock:
                    self._building.pop(key, None)
                raise
            with self._lock:  # stored before the key stops being "building": no 2nd build
                self._misses += 1
                self._alive[key] = session
                self._remember(key, session)
                self._building.pop(key, None)
            return session

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (a session that turned out unusable)."""
        with self._lock:
            self._alive.pop(key, None)
            self._recent.pop(key, None)

    def clear(self) -> None:
        """Forget every session (models already loaded keep theirs) and the counters."""
        with self._lock:
            self._alive.clear()
            self._recent.clear()
            self._hits = self._misses = 0

    def info(self) -> SessionCacheInfo:
        with self._lock:
            return SessionCacheInfo(self._hits, self._misses, len(self._alive), self.max_idle)

    def _found(self, key: Hashable) -> ort.InferenceSession | None:
        """Lookup under the lock; counts a hit."""
        session = self._alive.get(key)
        if session is not None:
            self._hits += 1
            self._remember(key, session)
        return session

    def _remember(self, key: Hashable, session: ort.InferenceSession) -> None:
        self._recent[key] = session
        self._recent.move_to_end(key)
        while len(self._recent) > self.max_idle:
            self._recent.popitem(last=False)


def _properties() -> list[str]:
    """The read-write properties of ``SessionOptions`` (thread counts, optimization
    level, logging, memory arena...), as this onnxruntime version defines them."""
    return sorted(
        name
        for name, attribute in vars(ort.SessionOptions).items()
        if isinstance(attribute, property) and attribute.fset is not None
    )


def _is_enum(value: Any) -> bool:
    return hasattr(type(value), "__members__")


def _plain(value: Any) -> bool | int | float | str | None:
    if _is_enum(value):
        return int(value)
    return value if isinstance(value, (bool, int, float, str)) else None
