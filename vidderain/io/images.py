"""Read and write still images in every layout vidderain supports.

Images come out as numpy arrays in RGB order (RGBA with alpha, HxW for
grayscale), uint8 or uint16 as stored, with JPEG EXIF orientation applied.
OpenCV's BGR order stays inside this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from vidderain.errors import InputError, no_such, not_a_file, permission_denied
from vidderain.io.files import atomic_output, is_out_of_space, write_error

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
_EIGHT_BIT_ONLY = frozenset({".jpg", ".jpeg", ".bmp", ".webp"})
JPEG_QUALITY = 95
WEBP_QUALITY = 95


def is_image_path(path: str | os.PathLike) -> bool:
    """Return True if `path` has the suffix of an image format vidderain reads."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file.

    Args:
        path: str or PathLike. A PNG, JPEG, BMP, TIFF or WebP file.

    Returns:
        HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA) array, uint8 or uint16 as stored,
        JPEGs turned upright by their EXIF orientation.

    Raises:
        InputError: the file is missing, unreadable, empty, or not a decodable image.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except IsADirectoryError:
        raise InputError(not_a_file(path, "an image")) from None
    except FileNotFoundError:
        raise InputError(no_such(path)) from None
    except PermissionError:
        raise InputError(permission_denied(path)) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise InputError(f"{path}: empty file")
    # IMREAD_UNCHANGED keeps alpha and 16 bits but ignores EXIF orientation, which
    # only JPEGs carry in practice; for them decode with orientation applied.
    if path.suffix.lower() in _JPEG_SUFFIXES:
        flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
    else:
        flags = cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(data, flags)
    if image is None or image.size == 0:
        raise InputError(f"{path}: not a readable image (corrupt or unsupported format)")
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: {image.dtype} pixels are not supported (8- or 16-bit integers only)")
    return _from_opencv(image)


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Encode `image` to `path` atomically, in the format its suffix names.

    Args:
        path: str or PathLike. Destination; its suffix picks the format.
        image: np.ndarray. Gray, RGB or RGBA, uint8 or uint16 (16-bit only for PNG and TIFF).

    Raises:
        InputError: the format cannot hold this image or the file cannot be written.
        DiskFullError: the destination is full; nothing is left under `path` or a temporary name.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"{path}: unknown image format {suffix!r}; use one of {', '.join(sorted(IMAGE_SUFFIXES))}")
    if image.dtype == np.uint16 and suffix in _EIGHT_BIT_ONLY:
        raise InputError(f"{path}: {suffix} cannot hold 16-bit pixels; write PNG or TIFF instead")
    if image.ndim == 3 and image.shape[2] == 4 and suffix in _JPEG_SUFFIXES:
        # OpenCV would drop the alpha plane without a word.
        raise InputError(f"{path}: {suffix} cannot hold an alpha channel; write PNG, TIFF or WebP instead")
    params: list[int] = []
    if suffix in _JPEG_SUFFIXES:
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, WEBP_QUALITY]
    ok, encoded = cv2.imencode(suffix, _to_opencv(image), params)
    if not ok:
        raise InputError(f"{path}: OpenCV could not encode this image as {suffix}")
    try:
        # A Python file, not ndarray.tofile: numpy's error for a short write has no errno,
        # and the errno is what tells a full disk from other failures.
        with atomic_output(path) as tmp, open(tmp, "wb") as file:
            file.write(memoryview(encoded))
    except OSError as exc:
        raise write_error(path, exc.strerror or str(exc), is_out_of_space(exc)) from None


def _from_opencv(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _to_opencv(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
