"""Files written atomically, and text files read with a clear error.

Every writer of configs, manifests, metrics and weights goes through :func:`atomic_write_bytes`
(a temporary file in the same folder, fsync, rename), so a crash or a full disk never leaves a
truncated file where a reader expects a whole one. Text a user hands in (prompt lists, configs,
manifests, ``config.json``) is read by :func:`read_text` / :func:`read_json`: a missing file, a
folder, a binary or non-UTF-8 file or malformed JSON is a :class:`~softdimo.errors.SoftdimoError`
that names the file, never a traceback.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import DataError, SoftdimoError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; written files are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_text(path: str | os.PathLike, what: str = "", error: type[SoftdimoError] = DataError) -> str:
    """The UTF-8 text of ``path``; ``error`` (naming ``what`` and the file) if it cannot be read as text."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    if not path.exists():
        raise error(f"{label} does not exist.")
    if not path.is_file():
        raise error(f"{label} is not a file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{label} is not a UTF-8 text file (byte {e.start} cannot be decoded); is it a binary file?") from e
    except OSError as e:
        raise error(f"{label} could not be read ({e.strerror or e}).") from e
    if "\x00" in text:
        raise error(f"{label} holds NUL bytes: it is a binary file, not text.")
    return text


def read_json(path: str | os.PathLike, what: str = "", error: type[SoftdimoError] = DataError,
              mapping: bool = True) -> Any:
    """The JSON document in ``path`` (a JSON object when ``mapping``); ``error`` naming the file otherwise."""
    text = read_text(path, what, error)
    label = f"{what} {path}" if what else str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{label} is not valid JSON ({e}).") from e
    if mapping and not isinstance(data, dict):
        raise error(f"{label} must hold a JSON object, not {type(data).__name__}.")
    return data


def check_writable(path: str | os.PathLike, what: str, folder: bool = False) -> Path:
    """``path`` if a file (or, with ``folder``, a folder) can be created there; else :class:`DataError`.

    Checked before any work starts, so that a command never computes for minutes and then fails to
    write: the nearest existing parent must be a writable folder, and ``path`` itself must not be
    a folder (a file) when a file (a folder) is asked for.
    """
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise DataError(f"{what} {path} is {'a file' if folder else 'a folder'}; give "
                        f"{'a folder' if folder else 'a file name'}.")
    parent = path if folder and path.exists() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(f"{what} {path} cannot be created: {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"{what} {path} cannot be created: the folder {parent} is not writable.")
    return path


__all__ = ["atomic_write_bytes", "read_text", "read_json", "check_writable"]
