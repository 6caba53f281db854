"""Safe file handling shared by the image and video writers."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from vidderain.errors import DiskFullError, InputError

PART_MARK = ".vidderain-part"
# Bytes of the output's stem kept in a temporary name: with the mark, 8 hex digits and
# the suffix it stays far below the 255-byte limit of a file name, however long the
# output's name is (a 250-byte unicode name must not make its temporary name too long).
_STEM_BYTES = 80
# What a write fails with when the destination is full: no space, over quota, or over
# the size limit for one file (a FAT32 stick's 4 GiB, `ulimit -f`).
_OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Give a temporary path beside `path`; move it onto `path` only if the block succeeds.

    The temporary name keeps the suffix, so encoders that pick a format by extension
    still work, and lives in the destination folder, so the final rename is atomic.
    On any exception (Ctrl-C included) the temporary file is removed and `path` is untouched.

    Args:
        path: str or PathLike. The final output path.

    Yields:
        The temporary path to write to.
    """
    path = Path(path)
    tmp_path = _create_temporary(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _create_temporary(path: Path) -> Path:
    # Not tempfile.mkstemp: it creates files readable by their owner only, and the
    # rename would hand that mode to the output. Mode 0o666 lets the umask decide,
    # as it does for any file a program creates.
    stem = _short_stem(path)
    for _ in range(100):
        tmp = path.with_name(f".{stem}{secrets.token_hex(4)}{PART_MARK}{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path.parent}: cannot find a free temporary name for {path.name}")


def _short_stem(path: Path) -> str:
    return os.fsencode(path.stem)[:_STEM_BYTES].decode("utf-8", errors="ignore")  # whole characters only


def is_partial(path: str | os.PathLike) -> bool:
    """Return True if `path` is a temporary file left by `atomic_output`."""
    return PART_MARK in Path(path).name


def leftover_partials(path: str | os.PathLike) -> list[Path]:
    """Temporary files that `atomic_output(path)` left behind when its process was killed.

    A process killed outright (SIGKILL, a lost machine) cannot remove its temporary file;
    whoever knows that the writer is gone may remove these.
    """
    path = Path(path)
    prefix, suffix = f".{_short_stem(path)}", f"{PART_MARK}{path.suffix}"
    if not path.parent.is_dir():
        return []
    found = []
    for candidate in path.parent.iterdir():
        name = candidate.name
        token = name[len(prefix) : len(name) - len(suffix)]
        # The 8 hex digits of `_create_temporary` tell them from another output's, e.g. "a" and "ab".
        if name.startswith(prefix) and name.endswith(suffix) and len(token) == 8 and _is_hex(token):
            found.append(candidate)
    return sorted(found)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def is_out_of_space(exc: OSError) -> bool:
    """Return True if `exc` says the destination is full (no space, over quota or over a file-size limit)."""
    return exc.errno in _OUT_OF_SPACE


def make_output_folder(folder: str | os.PathLike) -> None:
    """Create `folder` and its parents if missing.

    Raises:
        DiskFullError: the disk is full.
        InputError: it cannot be created for another reason (permissions, a file in the way).
    """
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_out_of_space(exc):
            raise DiskFullError(f"{folder}: cannot be created, the disk is full ({exc.strerror or exc})") from None
        raise InputError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from None
