"""Safe file handling shared by the image and video writers."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

PART_MARK = ".vidderain-part"


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:80]}", suffix=f"{PART_MARK}{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def is_partial(path: str | os.PathLike) -> bool:
    """Return True if `path` is a temporary file left by `atomic_output`."""
    return PART_MARK in Path(path).name
