"""Path rules and safe file handling, shared by the readers, the writers and the jobs.

An input is checked before any work starts (it exists, is the kind of path wanted,
can be read); an output may never be, or hold, its input; and every output is
written under a temporary name and renamed when complete, so a file under its
final name is always a finished one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from vidderain.errors import (
    DiskFullError,
    InputError,
    choose_another_output,
    no_such,
    not_a_file,
    not_a_folder,
    permission_denied,
)

PART_MARK = ".vidderain-part"
RESUME_MARK = ".vidderain-resume"  # ends the name of a video's working folder (`working_folder`)
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


def working_folder(destination: str | os.PathLike) -> Path:
    """The hidden folder beside the video `destination` where its finished segments wait.

    `.NAME.vidderain-resume`, in the destination's folder and never under its name, so
    an unfinished video never looks finished; a very long name is shortened, with a
    digest of the whole name so that two outputs never share a folder.

    Args:
        destination: str or PathLike. The output video.
    """
    path = Path(destination)
    name = path.name
    if len(os.fsencode(name)) > 2 * _STEM_BYTES:
        digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
        name = f"{_short_stem(path)}-{digest}{path.suffix}"
    return path.with_name(f".{name}{RESUME_MARK}")


def natural_key(path: Path) -> tuple[list[int | str], str]:
    """Sort key for file names with digit runs compared as numbers (frame2 before frame10)."""
    parts = re.split(r"(\d+)", path.name.lower())
    # Even positions are text, odd positions digit runs, so comparisons never mix types.
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], path.name


def is_working_folder(path: str | os.PathLike) -> bool:
    """Return True if `path` is named as a video's working folder (`working_folder`)."""
    return Path(path).name.endswith(RESUME_MARK)


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


def write_error(path: str | os.PathLike, reason: str, out_of_space: bool) -> InputError | DiskFullError:
    """The error for an output that could not be written, `PATH: cannot be written (REASON)`.

    A full destination is a DiskFullError, which ends the whole run (every later
    write would fail the same way); anything else fails this one output.
    """
    if out_of_space:
        return DiskFullError(f"{path}: cannot be written, the disk is full ({reason})")
    return InputError(f"{path}: cannot be written ({reason})")


def check_readable_file(path: str | os.PathLike, wanted: str = "a file") -> Path:
    """Return `path` if it is a file this process can read.

    Args:
        path: str or PathLike. The input.
        wanted: str. What the input should be, for the message: "a video", "an image". Defaults to "a file".

    Raises:
        InputError: it is missing, a folder, or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(no_such(path))
    if path.is_dir():
        raise InputError(not_a_file(path, wanted))
    if not os.access(path, os.R_OK):
        raise InputError(permission_denied(path))
    return path


def check_readable_folder(path: str | os.PathLike, wanted: str = "a folder") -> Path:
    """Return `path` if it is a folder whose files this process can list and read.

    Args:
        path: str or PathLike. The input folder.
        wanted: str. What the folder should be, for the message: "a folder of frames". Defaults to "a folder".

    Raises:
        InputError: it is missing, a file, or cannot be listed.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(no_such(path, "folder"))
    if not path.is_dir():
        raise InputError(not_a_folder(path, wanted))
    if not os.access(path, os.R_OK | os.X_OK):
        raise InputError(permission_denied(path, "the folder cannot be read"))
    return path


def check_output_location(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Refuse a destination that would overwrite or be read back as the source.

    Raises:
        InputError: `destination` is `source`, or `source` lies inside `destination`.
    """
    src, dst = Path(source).resolve(), Path(destination).resolve()
    if src == dst or _same_file(source, destination):
        raise InputError(choose_another_output(destination, "the output is the input"))
    if src.is_dir() and dst in src.parents:
        raise InputError(choose_another_output(destination, "the output folder contains the input folder"))


def check_output_folder(folder: str | os.PathLike) -> None:
    """Refuse an output folder that is a file or lies in a folder that cannot be written to.

    Raises:
        InputError: `folder`, or the nearest part of its path that exists, is a file or
            is not writable.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(not_a_folder(existing, "a folder for the results"))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(permission_denied(existing, "the results cannot be written there"))


def is_finished(destination: str | os.PathLike) -> bool:
    """Whether the output `destination` is already done, so that a run skips it unless told to redo it.

    Outputs appear under their final name only when complete (`atomic_output`), so an
    existing file is a finished one.
    """
    return Path(destination).exists()


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False  # one of them does not exist (yet)
