"""Opening a file layerforge was told to read (a spec, a data file, a run directory's files): regular files
only, never blocking, never more than a bound.

A path can name a FIFO (reading it waits for a writer forever), a device (``/dev/zero`` never ends) or a
symlink to either. :func:`open_regular` opens without blocking and checks what it opened (``fstat`` on the
open descriptor, so a file swapped between a check and the open is still caught); :func:`read_bytes`
refuses to read past a limit. Both raise ``OSError`` subclasses, which every reader already turns into its
own error (SpecError, DataError, CheckpointError) naming the file. A leaf module: the standard library only.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class NotARegularFile(OSError):
    """The path names something other than a regular file (after following symlinks)."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.kind = kind


class TooLarge(OSError):
    """The file holds more bytes than the caller allows."""

    def __init__(self, path: str | os.PathLike[str], size: int, limit: int) -> None:
        super().__init__(f"{path} holds more than {limit:,} bytes")
        self.size, self.limit = size, limit


def kind_of(mode: int) -> str | None:
    """What a non-regular ``st_mode`` is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """``os.stat`` (following symlinks) that refuses anything but a regular file."""
    st = os.stat(path)
    kind = kind_of(st.st_mode)
    if kind is not None:
        raise NotARegularFile(path, kind)
    return st


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading in binary; never blocks on a FIFO, refuses devices and sockets."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotARegularFile(path, kind)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes (else :class:`TooLarge`)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise TooLarge(path, size, limit)
        data = f.read(limit + 1)
    if len(data) > limit:  # the file grew while being read
        raise TooLarge(path, len(data), limit)
    return data


def is_regular(path: Path) -> bool:
    """True for a regular file (or a symlink to one); never raises."""
    try:
        return kind_of(os.stat(path).st_mode) is None
    except (OSError, ValueError):
        return False
