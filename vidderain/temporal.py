"""Windows of video frames for temporal models: each frame with its neighbours, aligned to it.

A temporal model derains frame t from frames t-K ... t+K stacked on channels. At
the ends of a video the window repeats the first or last frame (replicated edges),
so every frame gets a full window and the output has as many frames as the input.
A model that aligns its input has every neighbour warped onto the centre frame
first, with OpenCV's DIS optical flow computed on blurred grey versions of the two
frames (the blur hides the rain, which moves differently from the scene), so a
moving camera still puts each scene point at the same pixel in every frame of the
window. The alignment is the model's input preparation, done on whole frames
before the engine tiles the stacked window like any frame.

Training (`vidderain.data.patches.ClipBatches`) and inference (the video job) both stack
windows here, so the network sees the same preparation in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

FLOW_BLUR_SIGMA = 2.0  # px; as the real-rain figure of ../shared/tools/rainresidual.py


@dataclass(frozen=True)
class WindowSpec:
    """How a temporal model wants its input.

    Attributes:
        frames: int. Frames in a window, odd: the centre and `radius` on each side.
        align: bool. Warp the neighbours onto the centre frame with optical flow.
    """

    frames: int
    align: bool

    def __post_init__(self) -> None:
        if self.frames < 1 or self.frames % 2 == 0:
            raise ValueError(f"frames must be odd and positive. Received: frames={self.frames}")

    @property
    def radius(self) -> int:
        """Neighbours on each side of the centre frame (K)."""
        return self.frames // 2

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> "WindowSpec":
        """The window a model file's metadata describes; one unaligned frame for single-frame models."""
        return cls(frames=int(metadata.get("frames", 1)), align=bool(metadata.get("align", False)))


def window_indices(centre: int, count: int, radius: int) -> list[int]:
    """Frame indices of the window around `centre` in a clip of `count` frames, edges replicated."""
    return [min(max(i, 0), count - 1) for i in range(centre - radius, centre + radius + 1)]


@dataclass
class PreparedFrame:
    """A float32 RGB frame and, for aligned windows, the grey image its optical flow is computed on."""

    rgb: np.ndarray
    grey: np.ndarray | None = None


class WindowStacker:
    """Stacks windows of frames for one temporal model; holds the optical-flow solver.

    One instance per thread (OpenCV's DIS object keeps state between calls).

    Args:
        spec: WindowSpec. The model's window.
    """

    def __init__(self, spec: WindowSpec):
        self.spec = spec
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if spec.align else None

    def prepare(self, rgb: np.ndarray) -> PreparedFrame:
        """Wrap a float32 HxWx3 frame in [0, 1] with what stacking it needs (its blurred grey image)."""
        if not self.spec.align:
            return PreparedFrame(rgb)
        grey = cv2.cvtColor(cv2.GaussianBlur(rgb, (0, 0), FLOW_BLUR_SIGMA), cv2.COLOR_RGB2GRAY)
        return PreparedFrame(rgb, np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8))

    def stack(self, window: Sequence[PreparedFrame]) -> np.ndarray:
        """Stack a window of prepared frames (oldest first) into one float32 HxWx(3*frames) array.

        With alignment, each neighbour is warped onto the centre frame; a neighbour that is
        the centre frame itself (a replicated edge) is used as it is.
        """
        if len(window) != self.spec.frames:
            raise ValueError(f"Expected a window of {self.spec.frames} frames. Received: {len(window)}")
        centre = window[self.spec.radius]
        planes = []
        for frame in window:
            if self._flow is None or frame is centre:
                planes.append(frame.rgb)
            else:
                planes.append(self._warp_onto(frame, centre))
        return np.ascontiguousarray(np.concatenate(planes, axis=2), dtype=np.float32)

    def _warp_onto(self, frame: PreparedFrame, centre: PreparedFrame) -> np.ndarray:
        # flow(x) says where centre pixel x is found in `frame`; sample `frame` there.
        flow = self._flow.calc(centre.grey, frame.grey, None)
        height, width = flow.shape[:2]
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        flow[..., 0] += grid_x
        flow[..., 1] += grid_y
        return cv2.remap(frame.rgb, flow[..., 0], flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
