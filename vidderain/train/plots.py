"""Small charts drawn with OpenCV, so training needs no plotting library."""

from __future__ import annotations

import csv
import os

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


def plot_training_log(log_path: str | os.PathLike, path: str | os.PathLike, bins: int = 200) -> None:
    """Draw a training run's loss (blue, left scale) and validation PSNR (red, right scale) against steps.

    Args:
        log_path: str or PathLike. The run's `log.csv` (columns `step`, `loss`, `val_psnr`).
        path: str or PathLike. PNG to write (atomically).
        bins: int. The loss is averaged over this many equal runs of steps, to show the trend. Defaults to 200.
    """
    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = np.array([int(r["step"]) for r in rows])
    losses = np.array([float(r["loss"]) for r in rows])
    validated = [(int(r["step"]), float(r["val_psnr"])) for r in rows if r.get("val_psnr")]
    canvas = np.full((_H, _W, 3), 255, np.uint8)
    box = (_M + 16, _M // 2, _W - _M - 16, _H - _M)
    cv2.rectangle(canvas, box[:2], box[2:], (200, 200, 200), 1)
    if len(steps):
        x_range = (0, int(steps.max()))
        groups = np.array_split(np.arange(len(steps)), min(bins, len(steps)))
        bin_steps = [steps[g].mean() for g in groups]
        bin_losses = [losses[g].mean() for g in groups]
        lo, hi = min(bin_losses), max(bin_losses)
        _polyline(canvas, bin_steps, bin_losses, x_range, (lo, hi), (40, 90, 200), box)
        _label(canvas, f"loss {hi:.4f}", (4, box[1] + 10), (40, 90, 200))
        _label(canvas, f"{lo:.4f}", (4, box[3]), (40, 90, 200))
        if validated:
            ps = [p for _, p in validated]
            _polyline(canvas, [s for s, _ in validated], ps, x_range, (min(ps), max(ps)), (200, 40, 40), box)
            _label(canvas, f"val PSNR {max(ps):.2f} dB", (box[2] - 150, box[1] + 14), (200, 40, 40))
            _label(canvas, f"{min(ps):.2f}", (box[2] + 2, box[3]), (200, 40, 40))
        _label(canvas, f"step {int(steps.max())}", (box[2] - 90, _H - 12), (60, 60, 60))
    _label(canvas, "0", (box[0], _H - 12), (60, 60, 60))
    write_image(path, canvas)


def _label(canvas, text, origin, colour):
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
