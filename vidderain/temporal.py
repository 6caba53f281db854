"""Windows of video frames for temporal models: each frame with its neighbours, aligned to it.

A temporal model derains frame t from frames t-K ... t+K stacked on channels. At
the ends of a video the window repeats the first or last frame (replicated edges),
so every frame gets a full window and the output has as many frames as the input.
A model that aligns its input has every neighbour warped onto the centre frame
first, so a moving camera still puts each scene point at the same pixel in every
frame of the window. Both alignments start from OpenCV's DIS optical flow computed
on blurred grey versions of the two frames (the blur hides the rain, which moves
differently from the scene):

- `flow` warps each pixel by the flow itself. The flow of rainy frames is noisy,
  and a noisy warp smears a still scene that needed no warp at all.
- `camera` warps by the camera's motion alone: a similarity transform (pan, zoom,
  turn) fitted with RANSAC to the flow on a 16-pixel grid. The fit averages the
  rain's noise away; its flow is computed after a grey erosion, which takes out
  the thin bright streaks before the blur; and a motion that moves no corner of
  the frame by half a pixel counts as none, since warping by the fit's own noise
  only blurs a still camera's frames. On the synthetic video test set, the
  per-pixel minimum over a 5-frame window keeps 31.4 dB of the clean frame with
  it, 26.2 with `flow` and 29.8 unaligned (`python benchmarks/video_testset.py
  bound DIR`). What moves on its own is not aligned: the network has the centre
  frame to fall back on there.
- `layered` warps by the camera's motion and then by what the flow adds to it,
  smoothed so that only regions far larger than a streak move: the remainder is
  averaged over 8x8-pixel blocks, median-filtered over 5x5 blocks, blurred, and
  taken as none below 0.3 px; and it is used only where it matches the centre
  frame's eroded, blurred grey image better than the camera's motion alone (dense
  rain falls coherently and its flow survives the smoothing). It follows what
  sits at another depth than the scene the camera model fits (a parked car, a
  near wall) and large things that move, where `camera` leaves them doubled in
  the window. On the test set's still and moving clips it scores as `camera`
  does, on clips with a near layer better (docs/networks.md).

The alignment is the model's input preparation, done on whole frames before the
engine tiles the stacked window like any frame; the model file's metadata names it.

Training (`vidderain.data.patches.ClipBatches`) and inference (the video job) both stack
windows here, so the network sees the same preparation in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vidderain.errors import ModelError

FLOW_BLUR_SIGMA = 2.0  # px; as the real-rain figure of ../shared/tools/rainresidual.py
ALIGNMENTS = ("none", "flow", "camera", "layered")
CAMERA_GRID = 16  # px between the flow vectors the camera model is fitted to
CAMERA_RANSAC_THRESHOLD = 1.0  # px; flow vectors farther than this from the fitted motion are outliers
CAMERA_STILL = 0.5  # px; a fitted motion that moves no corner of the frame this far is taken as none
CAMERA_ERODE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))  # wider than a streak is thick
LAYER_BLOCK = 8  # px; `layered` averages the flow's remainder over blocks this size
LAYER_MEDIAN = 5  # blocks; then takes the median over this many on a side
LAYER_SIGMA = 2.0  # blocks; then blurs it
LAYER_DEAD = 0.3  # px; a remainder this small is taken as none (fading in over as much again)
LAYER_GAIN = 2.0  # grey levels; the layered warp starts where it lowers the mismatch this much, fully at twice


@dataclass(frozen=True)
class WindowSpec:
    """How a temporal model wants its input.

    Attributes:
        frames: int. Frames in a window, odd: the centre and `radius` on each side.
        align: str. How the neighbours are warped onto the centre frame: "none", "flow"
            (by the optical flow), "camera" (by a camera motion fitted to it) or "layered"
            (the camera motion and the flow's smoothed remainder). Defaults to "none".
    """

    frames: int
    align: str = "none"

    def __post_init__(self) -> None:
        if self.frames < 1 or self.frames % 2 == 0:
            raise ValueError(f"frames must be odd and positive. Received: frames={self.frames}")
        if self.align not in ALIGNMENTS:
            raise ValueError(f"align must be one of {', '.join(ALIGNMENTS)}. Received: align={self.align!r}")

    @property
    def radius(self) -> int:
        """Neighbours on each side of the centre frame (K)."""
        return self.frames // 2

    @property
    def aligned(self) -> bool:
        """Whether the neighbours are warped at all (and so need optical flow)."""
        return self.align != "none"

    def describe(self) -> str:
        """A few words for the user, e.g. "windows of 5 frames aligned by the camera's motion"."""
        how = {"none": "", "flow": " aligned by optical flow", "camera": " aligned by the camera's motion",
               "layered": " aligned by the camera's motion and what moves apart from it"}
        return f"windows of {self.frames} frames{how[self.align]}"

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> "WindowSpec":
        """The window a model file's metadata describes; one unaligned frame for single-frame models.

        Files written before the camera alignment existed say `"align": true` for flow alignment.

        Raises:
            ModelError: the metadata names an alignment this version does not know.
        """
        align = metadata.get("align", "none")
        if isinstance(align, bool):
            align = "flow" if align else "none"
        if align not in ALIGNMENTS:
            raise ModelError(f"the model aligns its frames by {align!r}, which this version of vidderain does not "
                             f"know ({', '.join(ALIGNMENTS)}); a newer vidderain may")
        return cls(frames=int(metadata.get("frames", 1)), align=str(align))


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
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if spec.aligned else None

    def prepare(self, rgb: np.ndarray) -> PreparedFrame:
        """Wrap a float32 HxWx3 frame in [0, 1] with what stacking it needs (its blurred grey image)."""
        if not self.spec.aligned:
            return PreparedFrame(rgb)
        if self.spec.align in ("camera", "layered"):
            grey = cv2.GaussianBlur(cv2.erode(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), CAMERA_ERODE), (0, 0),
                                    FLOW_BLUR_SIGMA)
        else:
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
        if self.spec.align == "camera":
            matrix = camera_motion(flow)
            if np.array_equal(matrix, np.eye(2, 3)):
                return frame.rgb
            return cv2.warpAffine(frame.rgb, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REPLICATE)
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        if self.spec.align == "layered":
            matrix = camera_motion(flow)
            camera = np.stack([matrix[0, 0] * grid_x + matrix[0, 1] * grid_y + matrix[0, 2],
                               matrix[1, 0] * grid_x + matrix[1, 1] * grid_y + matrix[1, 2]], axis=2).astype(np.float32)
            flow += np.stack([grid_x, grid_y], axis=2)
            remainder = smooth_remainder(flow - camera)
            remainder *= _matches_better(frame.grey, centre.grey, camera, camera + remainder)
            if np.array_equal(matrix, np.eye(2, 3)) and not remainder.any():
                return frame.rgb
            camera += remainder
            return cv2.remap(frame.rgb, camera[..., 0], camera[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        flow[..., 0] += grid_x
        flow[..., 1] += grid_y
        return cv2.remap(frame.rgb, flow[..., 0], flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def smooth_remainder(remainder: np.ndarray) -> np.ndarray:
    """The part of a flow field's remainder (after the camera's motion) that moves regions, not streaks.

    Averaged over `LAYER_BLOCK`-pixel blocks, median-filtered and blurred at that scale,
    brought back to full size; displacements under `LAYER_DEAD` pixels fade to none, so
    a still region is not resampled by the noise of the flow.
    """
    height, width = remainder.shape[:2]
    small = cv2.resize(remainder, (max(1, width // LAYER_BLOCK), max(1, height // LAYER_BLOCK)),
                       interpolation=cv2.INTER_AREA)
    small = np.stack([cv2.medianBlur(np.ascontiguousarray(small[..., axis]), LAYER_MEDIAN) for axis in range(2)], axis=2)
    small = cv2.GaussianBlur(small, (0, 0), LAYER_SIGMA)
    smooth = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    length = np.sqrt(np.square(smooth).sum(axis=2, keepdims=True))
    return (smooth * np.clip(length / LAYER_DEAD - 1.0, 0.0, 1.0)).astype(np.float32)


def _matches_better(grey: np.ndarray, centre: np.ndarray, camera: np.ndarray, layered: np.ndarray) -> np.ndarray:
    """Where the layered warp matches the centre frame's (rain-free) grey image clearly better than the camera's.

    Dense rain falls coherently, so its flow survives smoothing; warping by it matches
    nothing better on the eroded, blurred grey images, and it is dropped there.
    """
    def mismatch(warp: np.ndarray) -> np.ndarray:
        warped = cv2.remap(grey, warp[..., 0], warp[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        error = np.abs(warped.astype(np.float32) - centre.astype(np.float32))
        return cv2.GaussianBlur(error, (0, 0), LAYER_BLOCK)

    gain = mismatch(camera) - mismatch(layered)
    return np.clip(gain / LAYER_GAIN - 1.0, 0.0, 1.0)[..., None]


def camera_motion(flow: np.ndarray) -> np.ndarray:
    """The similarity transform (2x3) that best explains a dense flow field, fitted with RANSAC.

    The flow is read on a grid of `CAMERA_GRID` pixels; a point x of the centre frame is
    found at `matrix @ [x, y, 1]` in the neighbour. The identity (the neighbour used as it
    is) where no transform fits (too few points, a degenerate field) and where the fitted
    one moves no corner of the frame by `CAMERA_STILL` pixels.
    """
    height, width = flow.shape[:2]
    half = CAMERA_GRID // 2
    ys, xs = np.mgrid[min(half, height // 2):height:CAMERA_GRID, min(half, width // 2):width:CAMERA_GRID]
    ys, xs = ys.ravel(), xs.ravel()
    points = np.stack([xs, ys], axis=1).astype(np.float32)
    matrix = None
    if len(points) >= 3:
        matrix, _ = cv2.estimateAffinePartial2D(points, points + flow[ys, xs], method=cv2.RANSAC,
                                                ransacReprojThreshold=CAMERA_RANSAC_THRESHOLD)
    if matrix is None:
        return np.eye(2, 3)
    corners = np.array([[0, width, 0, width], [0, 0, height, height], [1, 1, 1, 1]], np.float64)
    if np.abs(matrix @ corners - corners[:2]).max() < CAMERA_STILL:
        return np.eye(2, 3)
    return matrix
