"""Atomic file writes and safe checkpoint reads.

Every checkpoint, metrics file and report goes through these helpers so a crash or a full disk mid-write leaves the
previous version intact (temp file in the same directory + fsync + rename).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from hgprune.errors import HgpruneError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[io.IOBase]:
    """Open a temp file next to ``path``; on success fsync and rename it over ``path``, on failure remove it.

    File-system failures (a parent that is a file, no permission, a full disk) become one-line errors that say the
    previous version of ``path`` is intact.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise HgpruneError(f"{path}: cannot write here ({exc.strerror or exc})") from None
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the permissions open() would have
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise HgpruneError(
                f"{path}: write failed ({exc.strerror or exc}); any previous version is intact"
            ) from None
        raise


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a half-written file behind.

    torch reports a failed write (a full disk, a vanished mount) as ``RuntimeError``, not ``OSError``; it becomes the
    same one-line error as any other failed write, after the temp file is removed.
    """
    with atomic_open(path, "wb") as handle:
        try:
            torch.save(obj, handle)
        except RuntimeError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            raise HgpruneError(f"{path}: write failed ({lines[-1][:160]}); any previous version is intact") from None


# What torch.load raises on truncated, corrupt or crafted files (TypeError/OverflowError: a storage record with an
# impossible size, RecursionError: absurdly nested containers).
_CORRUPT_FILE_ERRORS = (
    RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, KeyError,
    TypeError, IndexError, OverflowError, RecursionError, MemoryError,
)  # fmt: skip


def safe_torch_load(path: str | os.PathLike) -> Any:
    """Load a torch file with ``weights_only=True``; any failure becomes a one-line :class:`HgpruneError`.

    Files whose unpickling would construct arbitrary Python objects (and so could run code) are refused, never run.
    """
    path = Path(path)
    if not path.exists():
        raise HgpruneError(f"{path}: no such file")
    if path.is_dir():
        raise HgpruneError(f"{path}: is a directory, expected a checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found:
            raise HgpruneError(
                f"{path}: refused to load: it asks to construct the Python object {found.group(1)}, which could "
                "execute code (hgprune accepts only tensors and plain containers; re-save the weights as a state dict)"
            ) from None
        raise HgpruneError(f"{path}: not a PyTorch checkpoint (unrecognised or corrupt content)") from None
    except _CORRUPT_FILE_ERRORS as exc:
        message = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise HgpruneError(f"{path}: not a readable checkpoint, truncated or corrupt ({message[:120]})") from None
