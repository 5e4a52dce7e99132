"""Reading a user's data file without trusting it: regular files only, sizes checked from headers before
anything is allocated, decompression bounded, every corruption a :class:`DataError` naming the file.

- text (CSV, corpora), plain or gzip: at most the memory limit divided by what parsing costs per byte;
- ``.npy``: the header's shape × dtype must match the file's size and fit the memory limit;
- ``.npz``: each member's header likewise, against the size the archive declares for it (zipfile never
  inflates past that size, and a bad CRC is an error, not a silent truncation).

The memory limit is :func:`layerforge.limits.data_memory_limit` (``LAYERFORGE_MAX_DATA_BYTES``); an error
past it names the limit and how to raise it.
"""
from __future__ import annotations

import gzip
import math
import os
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import DataError
from ..files import NotARegularFile, open_regular
from ..limits import data_memory_limit, memory_hint

CORRUPT = "check that the file is complete and not corrupted"
NUMPY_HINT = "write it with np.save / np.savez"


def check_memory(need: int, where: str, what: str, fix: str | None = None) -> None:
    """Refuse ``need`` bytes of data past the memory limit, naming the limit and how to raise it (after
    ``fix``, a way to need less, when there is one)."""
    limit = data_memory_limit()
    if need > limit:
        raise DataError(f"{where}: {what} would take {need:,} bytes in memory, more than the limit of {limit:,} bytes",
                        hint=(f"{fix}; or, " if fix else "") + memory_hint(need))


def _refused(e: OSError, where: str) -> DataError:
    if isinstance(e, NotARegularFile):
        return DataError(f"{where}: is {e.kind}, not a regular file", hint="give the path of a data file")
    return DataError(f"{where}: cannot read the file ({e})", hint=CORRUPT)


def read_text(path: Path, where: str, bytes_per_byte: int) -> str:
    """A UTF-8 text file (``.gz``: decompressed), at most ``limit / bytes_per_byte`` bytes of text, where
    ``bytes_per_byte`` is what parsing the text costs in memory per byte of it."""
    budget = data_memory_limit() // bytes_per_byte
    try:
        with open_regular(path) as f:
            if path.name.lower().endswith(".gz"):
                with gzip.GzipFile(fileobj=f) as gz:
                    raw = gz.read(budget + 1)
            else:
                raw = f.read(budget + 1)
    except (zlib.error, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{where}: cannot read the compressed file, it is damaged ({e})", hint=CORRUPT) from None
    except OSError as e:
        raise _refused(e, where) from None
    if len(raw) > budget:
        what = "its text (decompressed)" if path.name.lower().endswith(".gz") else "its text"
        raise DataError(f"{where}: {what} is more than {budget:,} bytes; parsing takes about {bytes_per_byte} bytes "
                        f"of memory per byte, past the limit of {data_memory_limit():,} bytes",
                        hint=memory_hint(len(raw) * bytes_per_byte))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 text (byte {e.start})", hint="save the file as UTF-8") from None


# --- .npy headers ----------------------------------------------------------------------------------
def _header(f: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes of data) from an .npy header, the file positioned at the data. Refuses
    object arrays (pickles) before anything else is read."""
    try:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = reader(f)
    except (ValueError, EOFError, OSError, SyntaxError, TypeError, tokenize.TokenError) as e:  # numpy parses the header
        raise DataError(f"{where}: not a valid .npy array ({e})", hint=NUMPY_HINT) from None
    if dtype.hasobject:
        raise DataError(f"{where}: holds Python objects (pickled), which layerforge does not load",
                        hint="save plain numeric (or string) arrays, e.g. np.save(path, x.astype('float32'))")
    return tuple(shape), dtype, math.prod(shape) * dtype.itemsize


def load_npy(path: Path, where: str, mmap: bool = False) -> np.ndarray:
    """One .npy file: its header checked against the file's size and the memory limit before loading
    (``mmap``: mapped read-only instead, for a quick look at the first rows)."""
    try:
        with open_regular(path) as f:
            shape, dtype, nbytes = _header(f, where)
            start, size = f.tell(), os.fstat(f.fileno()).st_size
            if start + nbytes != size:
                raise DataError(f"{where}: the header says {shape} of {dtype} ({nbytes:,} bytes) but the file holds "
                                f"{max(size - start, 0):,} bytes of data", hint=CORRUPT)
            if mmap:
                return np.load(path, allow_pickle=False, mmap_mode="r")
            check_memory(nbytes, where, f"the array {shape} of {dtype}")
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, EOFError) as e:
        raise DataError(f"{where}: not a valid .npy array ({e})", hint=NUMPY_HINT) from None
    except OSError as e:
        raise _refused(e, where) from None


class NpzArchive:
    """An .npz archive opened for checked reading: :meth:`keys`, then :meth:`read` each array needed
    (every array's size counts toward the memory limit, from its header before it is inflated)."""

    def __init__(self, path: Path, where: str) -> None:
        self.where = where
        try:
            self._file = open_regular(path)
        except OSError as e:
            raise _refused(e, where) from None
        try:
            self._zip = zipfile.ZipFile(self._file)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            self._file.close()
            raise DataError(f"{where}: cannot read the .npz archive ({e})", hint=NUMPY_HINT) from None
        self._members = {i.filename[:-4]: i for i in self._zip.infolist() if i.filename.endswith(".npy")}
        self._used = 0

    def keys(self) -> list[str]:
        return list(self._members)

    def read(self, key: str) -> np.ndarray:
        info = self._members[key]
        what = f"array '{key}'"
        try:
            with self._zip.open(info) as f:
                shape, dtype, nbytes = _header(f, f"{self.where}: {what}")
                if f.tell() + nbytes != info.file_size:
                    raise DataError(f"{self.where}: {what}: the header says {shape} of {dtype} ({nbytes:,} bytes) but "
                                    f"the archive holds {max(info.file_size - f.tell(), 0):,} bytes for it", hint=CORRUPT)
            self._used += nbytes
            check_memory(self._used, self.where, f"the arrays read so far (last {what}, {shape} of {dtype})")
            with self._zip.open(info) as f:  # inflated at most to the size checked above
                return np.lib.format.read_array(f, allow_pickle=False)
        except DataError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, NotImplementedError) as e:
            raise DataError(f"{self.where}: {what} is damaged ({e})", hint=CORRUPT) from None

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def __enter__(self) -> "NpzArchive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def magic(path: Path, n: int = 6) -> bytes:
    """The first ``n`` bytes of a regular file (b"" if it cannot be read): ``PK`` starts an .npz (a zip),
    ``\\x93NUMPY`` an .npy."""
    try:
        with open_regular(path) as f:
            return f.read(n)
    except OSError:
        return b""
