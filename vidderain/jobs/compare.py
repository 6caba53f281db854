"""Before/after comparisons, the pictures people share to show a result."""

from __future__ import annotations

import numpy as np

COMPARE_MODES = ("side", "split")


def compose(before: np.ndarray, after: np.ndarray, mode: str | None, split: float = 0.5) -> np.ndarray:
    """Combine an input and its result into one picture of the same layout and dtype.

    Args:
        before: np.ndarray. The input, any layout (gray, RGB, RGBA), uint8 or uint16.
        after: np.ndarray. The result, same shape and dtype as `before`.
        mode: str or None. "side": `before | after` side by side; "split": `before` left of a
            vertical line at `split`, `after` right of it; None: `after` alone.
        split: float. Position of the split line as a fraction of the width. Defaults to 0.5.
    """
    if mode is None:
        return after
    if before.shape != after.shape or before.dtype != after.dtype:
        raise ValueError(f"before and after must match. Received: {before.shape} {before.dtype}, {after.shape} {after.dtype}")
    if mode == "side":
        return np.concatenate([before, after], axis=1)
    if mode != "split":
        raise ValueError(f"mode must be one of {COMPARE_MODES} or None. Received: mode={mode!r}")
    width = before.shape[1]
    x = min(max(int(round(width * split)), 0), width)
    picture = after.copy()
    picture[:, :x] = before[:, :x]
    line = max(1, width // 400)
    picture[:, max(x - line // 2, 0) : min(x - line // 2 + line, width)] = np.iinfo(picture.dtype).max
    return picture
