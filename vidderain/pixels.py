"""Colour layout and value range, converted in one place.

Inside vidderain a frame is RGB, float32 in [0, 1] while it is computed on, and
an integer array (uint8 or uint16) at the edges. Grayscale and alpha are split
off here before the network sees a frame and put back after.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma


def to_float(image: np.ndarray) -> np.ndarray:
    """Return an integer image as float32 in [0, 1], scaled by its dtype's maximum.

    Args:
        image: np.ndarray. uint8 or uint16 pixels of any layout.

    Returns:
        A float32 array of the same shape.
    """
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1 / 255)
    if image.dtype == np.uint16:
        return image.astype(np.float32) * np.float32(1 / 65535)
    raise ValueError(f"Expected a uint8 or uint16 image. Received: dtype={image.dtype}")


def to_integer(image: np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """Return a float image in [0, 1] as rounded integers of `dtype`, clipping the range.

    Args:
        image: np.ndarray. float pixels, nominally in [0, 1].
        dtype: np.uint8 or np.uint16. The integer type to produce. Defaults to uint8.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.uint16):
        raise ValueError(f"Expected uint8 or uint16 output. Received: dtype={dtype}")
    peak = np.float32(np.iinfo(dtype).max)
    scaled = np.clip(image, 0.0, 1.0) * peak
    return np.rint(scaled, out=scaled).astype(dtype)


@dataclass(frozen=True)
class Layout:
    """How an image was laid out before it became an RGB frame.

    Attributes:
        channels: int. 1 (grayscale), 3 (RGB) or 4 (RGBA).
        dtype: np.dtype. The integer type it came in (uint8 or uint16).
    """

    channels: int
    dtype: np.dtype


def split_rgb(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, Layout]:
    """Split an integer image into a float RGB frame, its alpha plane and its layout.

    Args:
        image: np.ndarray. HxW (gray), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA), uint8 or uint16.

    Returns:
        (rgb, alpha, layout): rgb is float32 HxWx3 in [0, 1]; alpha is the untouched
        integer alpha plane (HxW) or None.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        gray = to_float(image)
        return np.repeat(gray[:, :, None], 3, axis=2), None, Layout(1, image.dtype)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"Expected a gray, RGB or RGBA image. Received: shape={image.shape}")
    if image.shape[2] == 4:
        return to_float(image[:, :, :3]), image[:, :, 3].copy(), Layout(4, image.dtype)
    return to_float(image), None, Layout(3, image.dtype)


def merge_rgb(rgb: np.ndarray, alpha: np.ndarray | None, layout: Layout) -> np.ndarray:
    """Turn a float RGB frame back into the layout `split_rgb` took it from.

    Args:
        rgb: np.ndarray. float32 HxWx3 in [0, 1].
        alpha: np.ndarray or None. The alpha plane split off, put back unchanged.
        layout: Layout. The layout to restore.
    """
    if layout.channels == 1:
        return to_integer(rgb @ _GRAY_WEIGHTS, layout.dtype)
    out = to_integer(rgb, layout.dtype)
    if layout.channels == 4:
        if alpha is None:
            raise ValueError("An RGBA layout needs its alpha plane back. Received: alpha=None")
        out = np.concatenate([out, alpha[:, :, None]], axis=2)
    return out
