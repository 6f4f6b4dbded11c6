"""Replace a file atomically: a temporary file beside it, then one rename.

Readers of the target see the old file or the new one, never part of either,
whatever happens to the writer (an exception, a full disk, SIGKILL, a power
cut once the rename is on disk). Two promises beyond that:

* **Permissions**: the file gets what ``open(path, "w")`` would give a new file,
  ``0o666 & ~umask`` (and the folder's default ACL, where it has one), because
  the temporary file is created the same way, with ``os.open(..., 0o666)``, and
  the kernel applies the umask. ``tempfile.mkstemp`` would make it ``0o600``,
  unreadable to a service running as another user.
* **No litter**: a writer killed between creating and renaming its temporary
  file leaves it behind. Each temporary file is named
  ``.TARGET.PID@HOST.XXXXXXXX.tmp`` (``XXXXXXXX`` random hex), and every write
  into a folder first removes the ones there whose writer is gone: its process
  no longer exists on this host, or, where that cannot be told (another host, a
  live process that reused the id), the file is older than
  :data:`STALE_AFTER_S`. A temporary file of a writer still at work is never
  touched, so concurrent writes into one folder (threads or processes) are
  safe. Old-style ``.TARGET.XXXXXXXX.tmp`` files of the same target, left by
  seqpipe versions that used ``mkstemp``, are removed once older than
  :data:`STALE_AFTER_S`.

Standard library only.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["STALE_AFTER_S", "remove_stale_temps", "write_atomic"]

#: A temporary file lives for the seconds it takes to write, flush and check
#: the data; one whose writer cannot be shown to be gone is stale after this.
STALE_AFTER_S = 600.0

_SUFFIX = ".tmp"
_HEX = 8  # random hex digits in a temporary file's name (as _NEW_STYLE matches)
_NEW_STYLE = re.compile(
    r"^\.(?P<target>.+)\.(?P<pid>[0-9]{1,10})@(?P<host>[A-Za-z0-9-]{1,63})\.[0-9a-f]{8}\.tmp$"
)
#: ``tempfile.mkstemp``'s random part: 8 characters of this alphabet.
_MKSTEMP = r"[a-z0-9_]{8}"

# Names of the temporary files this process is writing right now (its own id
# is alive, so that test alone cannot tell them from ones a previous process
# with the same id left, as happens in containers). Names, not paths: another
# thread may spell the same folder differently.
_in_progress: set[str] = set()
_lock = threading.Lock()


def _host() -> str:
    """This host's name as it may appear in a temporary file's name."""
    name = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63]
    return name or "host"


def write_atomic(
    path: str | os.PathLike, data: bytes, check: Callable[[str], object] | None = None
) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Parameters
    ----------
    path : path-like
        The file to create or replace. Its folder must exist.
    data : bytes
        The whole new content.
    check : callable, optional
        Called with the temporary file's path once it is written and flushed to
        disk; raising stops the write and leaves ``path`` as it was (e.g. read
        the file back and check it).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OSError
        The temporary file could not be created, written or renamed (permission,
        full disk, ...). The temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    folder = path.parent
    remove_stale_temps(folder, path.name)
    fd, tmp = _create_temp(folder, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
        _sync_folder(folder)
    except BaseException:
        # An interrupted write (KeyboardInterrupt included) takes its file with it.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        with _lock:
            _in_progress.discard(os.path.basename(tmp))
    return path


def _create_temp(folder: Path, name: str) -> tuple[int, str]:
    """A new, empty temporary file beside ``folder / name``: ``(fd, path)``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    prefix = f".{name}.{os.getpid()}@{_host()}."
    for _ in range(100):
        base = prefix + secrets.token_hex(_HEX // 2) + _SUFFIX
        with _lock:
            _in_progress.add(base)
        try:
            # 0o666 and the kernel applies the umask: what open(path, "w") gives.
            return os.open(os.path.join(folder, base), flags, 0o666), os.path.join(folder, base)
        except FileExistsError:
            pass
        except BaseException:
            with _lock:
                _in_progress.discard(base)
            raise
        with _lock:
            _in_progress.discard(base)
    raise FileExistsError(f"could not create a temporary file for {name!r} in {folder}")


def _sync_folder(folder: Path) -> None:
    """Flush the rename to disk where the platform allows (POSIX); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(folder: str | os.PathLike, name: str) -> list[str]:
    """Remove the temporary files in ``folder`` whose writer is gone.

    Parameters
    ----------
    folder : path-like
        Where to look.
    name : str
        The target being written now: its old-style (``mkstemp``) temporary
        files are removed too, once stale.

    Returns
    -------
    list of str
        The paths removed. Files that vanish or cannot be removed meanwhile (a
        read-only folder, another cleaner) are skipped silently.
    """
    legacy = re.compile(rf"^\.{re.escape(name)}\.{_MKSTEMP}\.tmp$")
    host, pid, now = _host(), os.getpid(), time.time()
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.endswith(_SUFFIX):
            continue
        match = _NEW_STYLE.match(entry.name)
        if match is None and legacy.match(entry.name) is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if match is None:  # old style: no writer to ask
            stale = age > STALE_AFTER_S
        else:
            stale = _writer_gone(match, entry.name, host, pid) or age > STALE_AFTER_S
        if stale:
            try:
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(entry.path)
    return removed


def _writer_gone(match: re.Match[str], name: str, host: str, pid: int) -> bool:
    """Whether the process that named the temporary file ``name`` has certainly ended."""
    if match["host"] != host:
        return False  # another machine's process: only its age tells
    writer = int(match["pid"])
    if writer == pid:
        with _lock:
            return name not in _in_progress  # left by an earlier process with our id
    if os.name != "posix":
        return False  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(writer, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False  # alive under another user (PermissionError), or not ours to judge
    return False
