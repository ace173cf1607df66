"""Atomic file writes and safe checkpoint reads.

Every checkpoint, metrics file and report goes through these helpers so a crash or a full disk mid-write leaves the
previous version intact (temp file in the same directory + fsync + rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import socket
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
        sweep_stale_temps(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_WRITER}-", suffix=".tmp", dir=path.parent)
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


# A temp file of hgprune's: a dot file with a ``.tmp`` part (``.x.1234@0a1b2c3d-ab12.tmp``,
# ``.clip.pose.1234@0a1b2c3d.tmp.mp4``, and the older ``.x.ab12.tmp`` / ``.clip.pose.tmp.mp4``). The part before
# ``.tmp`` names the writer: its pid and a tag of its host (a shared file system may hold another machine's writes).
_TEMP_NAME = re.compile(r"^\..+?\.tmp(\.[A-Za-z0-9]{1,5})?$")
_TEMP_WRITER = re.compile(r"\.(\d{1,10})(?:@([0-9a-f]{8}))?(?:-[^.]*)?\.tmp(?:\.[A-Za-z0-9]{1,5})?$")
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_WRITER = f"{os.getpid()}@{_HOST}"
_SWEPT: set[str] = set()


def temp_path(path: str | os.PathLike) -> Path:
    """Where to build ``path`` before renaming it into place, for writers that need a name rather than a handle
    (OpenCV's video writer): ``.NAME.PID.tmp.SUFFIX`` beside it, so :func:`sweep_stale_temps` knows whose it is."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}@{_HOST}.tmp{path.suffix}")


def _writer_alive(name: str) -> bool:
    """Whether the writer a temp name records may still be writing (another host's writers cannot be checked)."""
    found = _TEMP_WRITER.search(name)
    if found is None:
        return False
    pid, host = int(found.group(1)), found.group(2)
    if host is not None and host != _HOST:
        return True
    if pid == os.getpid():
        return True
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def sweep_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove the temp files a killed writer (``kill -9``, a lost machine) left in ``directory``: hgprune's temp
    names whose writer is a process of this host that no longer exists (names without a pid are from older versions:
    stale too). Done once per directory per process, before the first write there; returns what was removed."""
    directory = Path(directory)
    key = str(directory.resolve()) if directory.exists() else str(directory)
    if key in _SWEPT:
        return []
    _SWEPT.add(key)
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        if not _TEMP_NAME.match(entry.name) or _writer_alive(entry.name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


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
        recorder = _RecordingWriter(handle)
        try:
            torch.save(obj, recorder)
        except (RuntimeError, OSError) as exc:
            raise HgpruneError(f"{path}: write failed ({_write_failure(exc, recorder, Path(path))}); any previous "
                               "version is intact") from None  # fmt: skip


class _RecordingWriter(io.RawIOBase):
    """A write-only file that remembers the OS error of a failed write: torch's zip writer swallows it and reports
    only a position mismatch ("unexpected pos 64 vs 0"), which would hide a full disk."""

    def __init__(self, handle) -> None:
        super().__init__()
        self.handle = handle
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        try:
            self.handle.flush()
        except OSError as exc:
            self.error = exc
            raise


def _write_failure(exc: BaseException, recorder: _RecordingWriter, path: Path) -> str:
    """The cause of a failed torch.save in words: the OS error behind it when there is one."""
    cause = recorder.error or (exc if isinstance(exc, OSError) else None)
    if cause is not None:
        return str(cause.strerror or cause)[:160]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    if "unexpected pos" in lines[-1] or "file write failed" in lines[-1]:
        with contextlib.suppress(OSError):
            if shutil.disk_usage(path.parent).free < 1 << 20:
                return "No space left on device"
    return lines[-1][:160]


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
    check_zip_inflation(path)
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


# A torch file is a zip whose entries torch stores uncompressed; one that a compressed entry would inflate past this
# (times the file's own size, plus a fixed allowance) is refused before anything is read, so memory is bounded by
# what the file holds rather than by what it declares.
MAX_INFLATION = 4
INFLATION_ALLOWANCE = 64 << 20


def check_zip_inflation(path: str | os.PathLike) -> None:
    """Refuse a zip-format checkpoint whose entries declare more bytes than :data:`MAX_INFLATION` × its size
    (+ :data:`INFLATION_ALLOWANCE`): a 1 MB file that would inflate to gigabytes. Non-zip files pass (torch reads
    their storages from the file itself, which bounds them)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            declared = sum(max(info.file_size, 0) for info in archive.infolist())
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return  # torch.load names what is wrong with it
    limit = MAX_INFLATION * size + INFLATION_ALLOWANCE
    if declared > limit:
        raise HgpruneError(
            f"{path}: its entries would inflate to {declared:,} bytes from a {size:,}-byte file (limit {limit:,}); "
            "not a checkpoint hgprune wrote, refused unread"
        )


def first_line(exc: BaseException, limit: int = 120) -> str:
    """An exception's message as one short line (its type name when it has none)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Parse a secondary file (a run's own recipe, step metadata, a boxes file) inside this: anything it raises
    other than a :class:`HgpruneError` (a YAML tag, deep nesting, a missing key, a wrong type, memory) becomes one
    line naming the file and what it should have been. Files are data: their failures are never tracebacks."""
    try:
        yield
    except HgpruneError as exc:  # already one line; make sure it names the file
        if str(path) in str(exc):
            raise
        raise HgpruneError(f"{path}: {exc}") from None
    except (Exception, RecursionError, MemoryError) as exc:  # noqa: BLE001 - any parse failure is the file's
        raise HgpruneError(f"{path}: unreadable {what} ({type(exc).__name__}: {first_line(exc)})") from None


def read_limited(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of ``path``: a larger file is refused without reading it all."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise HgpruneError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise HgpruneError(f"{path}: is a directory, expected a {what}") from None
    except OSError as exc:
        raise HgpruneError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise HgpruneError(f"{path}: larger than {limit:,} bytes; not a {what}")
    return data


def load_json_limited(path: str | os.PathLike, limit: int, what: str) -> object:
    """A JSON file of at most ``limit`` bytes; bad JSON, absurd nesting or numbers are one line naming it."""
    data = read_limited(path, limit, what)
    with reading(path, what):
        return json.loads(data.decode("utf-8"))
