"""A folder of numbered image frames as a video source.

The frames are listed in natural order (frame2 before frame10) and decoded one by
one into RGB frames of one size and sample type (uint8, or uint16 for 16-bit PNG and
TIFF), the form a video reader gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidderain.errors import InputError
from vidderain.io.files import check_readable_folder, is_partial, natural_key
from vidderain.io.images import is_image_path, read_image
from vidderain.pixels import split_rgb, to_integer


def read_frame_folder(folder: str | os.PathLike) -> list[Path]:
    """List the image frames of a folder in natural order (frame2 before frame10).

    Hidden files and unfinished outputs (`*.vidderain-part*`) are skipped.

    Args:
        folder: str or PathLike. A folder of numbered image frames.

    Returns:
        The frame paths, sorted by name with digit runs compared as numbers.

    Raises:
        InputError: the folder is missing, not a folder, or holds no images.
    """
    folder = check_readable_folder(folder, "a folder of frames")
    frames = [
        p
        for p in folder.iterdir()
        if p.is_file() and is_image_path(p) and not p.name.startswith(".") and not is_partial(p)
    ]
    if not frames:
        raise InputError(f"{folder}: holds no image frames")
    return sorted(frames, key=natural_key)


def read_frames(paths: list[Path], dtype: np.dtype | type = np.uint8) -> Iterator[np.ndarray]:
    """Decode image frames into RGB frames of `dtype` (3 channels), as a video reader gives them.

    Raises:
        InputError: a frame cannot be read, or differs in size from the first.
    """
    first_shape = None
    for path in paths:
        rgb, _, _ = split_rgb(read_image(path))
        if first_shape is None:
            first_shape = rgb.shape
        elif rgb.shape != first_shape:
            raise InputError(f"{path}: is {rgb.shape[1]}x{rgb.shape[0]}, the first frame {first_shape[1]}x{first_shape[0]}")
        yield to_integer(rgb, dtype)
