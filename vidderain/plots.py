"""Small charts drawn with OpenCV, so training needs no plotting library."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from vidderain.io.images import write_image

_W, _H, _M = 720, 360, 48


def _polyline(canvas, xs, ys, x_range, y_range, colour, box):
    x0, y0, x1, y1 = box
    if len(xs) == 0:
        return
    (lo_x, hi_x), (lo_y, hi_y) = x_range, y_range
    px = x0 + (np.asarray(xs, float) - lo_x) / max(hi_x - lo_x, 1e-12) * (x1 - x0)
    py = y1 - (np.asarray(ys, float) - lo_y) / max(hi_y - lo_y, 1e-12) * (y1 - y0)
    points = np.stack([px, py], axis=1).round().astype(np.int32)
    cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
    for p in points[-1:]:
        cv2.circle(canvas, tuple(int(v) for v in p), 3, colour, -1, cv2.LINE_AA)


def plot_history(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Draw training loss (left axis, blue) and validation PSNR (right axis, red) against steps.

    Args:
        history: sequence of dicts with `step`, `loss` and `val_psnr` (None where not validated).
        path: str or PathLike. PNG to write (atomically).
    """
    canvas = np.full((_H, _W, 3), 255, np.uint8)
    box = (_M + 16, _M // 2, _W - _M - 16, _H - _M)
    cv2.rectangle(canvas, box[:2], box[2:], (200, 200, 200), 1)
    steps = [h["step"] for h in history]
    if steps:
        x_range = (0, max(steps))
        losses = [h["loss"] for h in history]
        psnrs = [(h["step"], h["val_psnr"]) for h in history if h.get("val_psnr") is not None]
        lo, hi = min(losses), max(losses)
        _polyline(canvas, steps, losses, x_range, (lo, hi), (40, 90, 200), box)
        _label(canvas, f"loss {hi:.4f}", (4, box[1] + 10), (40, 90, 200))
        _label(canvas, f"{lo:.4f}", (4, box[3]), (40, 90, 200))
        if psnrs:
            ps = [p for _, p in psnrs]
            _polyline(canvas, [s for s, _ in psnrs], ps, x_range, (min(ps), max(ps)), (200, 40, 40), box)
            _label(canvas, f"PSNR {max(ps):.2f} dB", (box[2] - 120, box[1] + 14), (200, 40, 40))
            _label(canvas, f"{min(ps):.2f}", (box[2] + 2, box[3]), (200, 40, 40))
        _label(canvas, f"step {max(steps)}", (box[2] - 90, _H - 12), (60, 60, 60))
    _label(canvas, "0", (box[0], _H - 12), (60, 60, 60))
    write_image(path, canvas)


def _label(canvas, text, origin, colour):
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
