"""The inference engine: frames in, derained frames out, as numpy arrays.

A frame is padded to a multiple of the network's stride, cut into equal tiles
whose origins lie on multiples of the stride (so every tile sees the pooling grid
the whole frame would), and the tiles of one or more frames are packed into
fixed-shape batches for one compiled network function. Outputs are blended back
with smooth separable weights and cropped. A model with a veil estimate then has
the veil of heavy rain lifted off each whole frame (`vidderain.veil`). The engine
never opens a file.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vidderain.errors import ParameterError
from vidderain.veil import estimate_veils, lift, thumbnail, thumbnail_size, thumbnails

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class TileSettings:
    """How the engine runs frames: tiles, batches, and an optional mirrored second pass.

    Attributes:
        tile: int. Longest tile side in pixels, a multiple of the network's stride; a
            frame whose sides fit runs whole, a larger one is cut into the fewest equal
            tiles per axis that cover it. 0 runs every frame whole. Defaults to 1024:
            on a CPU, whole frames and large tiles at batch 1 were fastest
            (docs/benchmarks.md), while a 10000x10000 image still runs as 11x11 tiles of 944,
            so memory stays bounded whatever the frame size.
        overlap: int. Pixels shared by neighbouring tiles, blended smoothly. Defaults to 32.
        batch: int. Tiles (or whole frames when tile=0) per network call. Defaults to 1.
        ensemble: bool. Also run each frame mirrored left to right and average the two
            results (a test-time self-ensemble): twice the network time for a cleaner
            result (models/README.md has the measured gain). Defaults to False.
    """

    tile: int = 1024
    overlap: int = 32
    batch: int = 1
    ensemble: bool = False


def check_settings(settings: TileSettings, stride: int) -> None:
    """Raise ParameterError (a ValueError), naming the setting and its value, if `settings` cannot work with `stride`.

    A tile that is not a multiple of the stride is refused with the nearest two that are.
    """
    if settings.batch < 1:
        raise ParameterError("batch", settings.batch, "at least 1")
    if settings.tile < 0:
        raise ParameterError("tile", settings.tile, f"0 (whole frames) or a positive multiple of {stride}")
    if settings.tile % stride:
        below = settings.tile // stride * stride
        raise ParameterError("tile", settings.tile, f"0 (whole frames) or a multiple of the model's stride, "
                             f"{stride}; the nearest are {below} and {below + stride}")
    # Above tile - stride, neighbours would share fewer pixels than `overlap`, or none.
    limit = min(settings.tile // 2, settings.tile - stride)
    if settings.tile and not 0 <= settings.overlap <= limit:
        raise ParameterError("overlap", settings.overlap, f"between 0 and {limit} for tile={settings.tile}")


def tile_side(length: int, tile: int, overlap: int, stride: int) -> int:
    """Side of the tiles along one axis: the fewest tiles of at most `tile` covering `length`, made equal.

    Equal tiles just large enough to cover the canvas compute the least overlap twice:
    1088 px with tiles of at most 1024 become two tiles of 560, not two of 1024. The
    count is the fewest when `overlap` is a multiple of `stride` (the bundled models'
    is); otherwise `tile_origins` rounds the step down and may add one tile.

    Args:
        length: int. Side of the padded canvas, a multiple of `stride`.
        tile: int. Longest allowed side, a multiple of `stride`; 0 means no limit.
        overlap: int. Minimum pixels shared by neighbours.
        stride: int. The network's total stride.

    Returns:
        A multiple of `stride`, at most `length` and at most `tile` (when given).
    """
    if not tile or length <= tile:
        return length
    count = math.ceil((length - overlap) / (tile - overlap))
    return math.ceil((length + (count - 1) * overlap) / count / stride) * stride


def tile_origins(length: int, tile: int, overlap: int, stride: int) -> list[int]:
    """Origins of tiles of side `tile` covering `length` pixels, each a multiple of `stride`.

    Args:
        length: int. Side of the padded canvas, a multiple of `stride`, at least `tile`.
        tile: int. Tile side, a multiple of `stride`.
        overlap: int. Minimum pixels shared by neighbours.
        stride: int. The network's total stride.

    Returns:
        Increasing origins; the last tile ends exactly at `length`.
    """
    if length <= tile:
        return [0]
    step = max(stride, (tile - overlap) // stride * stride)
    origins = list(range(0, length - tile, step))
    origins.append(length - tile)
    return origins


def _ramp(length: int) -> np.ndarray:
    # Raised cosine from near 0 to near 1; a ramp and its mirror image add up to 1.
    i = np.arange(length, dtype=np.float32)
    return (0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / length)).astype(np.float32)


def tile_weights(origins: list[int], tile: int, overlap: int) -> list[np.ndarray]:
    """One 1-D blending weight per origin.

    Weights are 1 inside a tile. Where a neighbour overlaps, they are 0 over the outer
    quarter of the overlap, where the tile's own zero padding spoils the network's
    output, then rise along a raised cosine to 1 over the middle half.
    """
    margin = overlap // 4
    weights = []
    for k, origin in enumerate(origins):
        w = np.ones(tile, dtype=np.float32)
        if overlap:
            ramp = _ramp(overlap - 2 * margin)
            if k > 0:
                w[:margin] = 0
                w[margin : overlap - margin] = ramp
            if k < len(origins) - 1:
                w[tile - overlap + margin : tile - margin] = ramp[::-1]
                w[tile - margin :] = 0
        weights.append(w)
    return weights


def pad_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad a HxWxC frame at the bottom and right to `height` x `width` by mirroring it."""
    pad_h, pad_w = height - frame.shape[0], width - frame.shape[1]
    if pad_h == 0 and pad_w == 0:
        return frame
    # Mirror padding needs at least two pixels along an axis; a 1-pixel side is repeated.
    mode = "reflect" if min(frame.shape[:2]) > 1 else "edge"
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


@dataclass(frozen=True)
class TilePlan:
    """How frames of one size are cut into tiles.

    Attributes:
        canvas_height, canvas_width: int. The frame padded to the network's stride.
        tile_height, tile_width: int. The shape of every tile (the canvas when run whole).
        origins_y, origins_x: tuple of int. Tile origins along each axis.
    """

    canvas_height: int
    canvas_width: int
    tile_height: int
    tile_width: int
    origins_y: tuple[int, ...]
    origins_x: tuple[int, ...]

    @property
    def count(self) -> int:
        """Tiles per frame."""
        return len(self.origins_y) * len(self.origins_x)


def plan_tiles(height: int, width: int, settings: TileSettings, stride: int) -> TilePlan:
    """Cut a `height` x `width` frame into tiles: pad to `stride`, fewest equal tiles per axis."""
    canvas_h = math.ceil(height / stride) * stride
    canvas_w = math.ceil(width / stride) * stride
    # Frames of one size (one video) all get one tile shape, hence one compiled function.
    tile_h = tile_side(canvas_h, settings.tile, settings.overlap, stride)
    tile_w = tile_side(canvas_w, settings.tile, settings.overlap, stride)
    return TilePlan(
        canvas_height=canvas_h,
        canvas_width=canvas_w,
        tile_height=tile_h,
        tile_width=tile_w,
        origins_y=tuple(tile_origins(canvas_h, tile_h, settings.overlap, stride)),
        origins_x=tuple(tile_origins(canvas_w, tile_w, settings.overlap, stride)),
    )


@dataclass
class _Frame:
    key: Hashable
    height: int
    width: int
    canvas: np.ndarray
    origins_y: list[int]
    origins_x: list[int]
    weights_y: list[np.ndarray]
    weights_x: list[np.ndarray]
    accum: np.ndarray
    pending: int = 0
    thumbnail: np.ndarray | None = None  # the frame as it came in, shrunk for a veil estimate


class Engine:
    """Runs a derain network over frames of any size, tiled and batched.

    Args:
        model: keras.Model. Maps float32 NHWC [0, 1] RGB to derained RGB of the same size.
        stride: int. The network's total stride; input sides must be multiples of it.
        settings: TileSettings. Tiling and batching. Defaults to TileSettings().
        veil: keras.Model or None. The model file's veil estimate (`vidderain.nets.veil`), run
            once per frame on the reassembled result to lift heavy rain's veil; None for none.
            Defaults to None.
    """

    def __init__(self, model: keras.Model, stride: int, settings: TileSettings = TileSettings(),
                 veil: keras.Model | None = None):
        check_settings(settings, stride)
        self.model = model
        self.stride = stride
        self.settings = settings
        self.veil = veil
        # A temporal model takes a window of frames stacked on channels and returns one frame.
        self.in_channels = _channels(model, "inputs")
        self.out_channels = _channels(model, "outputs")
        if veil is not None and self.in_channels != 3:
            raise ValueError(f"A veil estimate reads single RGB frames. Received: a model of {self.in_channels} channels")

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Derain one float32 HxWxC frame in [0, 1] (C the model's input channels); returns float32 HxWx3."""
        return next(iter(self.run([(0, frame)])))[1]

    def run(self, frames: Iterable[tuple[Hashable, np.ndarray]]) -> Iterator[tuple[Hashable, np.ndarray]]:
        """Derain a stream of frames, yielding them in order as soon as each is complete.

        Args:
            frames: iterable of (key, frame). Each frame float32 HxWxC in [0, 1], any size, C the
                model's input channels: 3 for an RGB frame, 3 per frame for a temporal model's
                window of frames stacked on channels. The key travels with the frame and is
                yielded back with its result.

        Yields:
            (key, derained): derained is float32 HxWx3 (the model's output channels) in [0, 1],
            the size of the input.
        """
        if not self.settings.ensemble:
            yield from self._run(frames)
            return
        # Each frame is followed by its mirror image through the same batches; the engine
        # yields in order, so the two results arrive one after the other.
        results = self._run(_with_mirror_images(frames))
        for (key, _), derained in results:
            _, mirrored = next(results)
            derained += mirrored[:, ::-1]
            derained *= 0.5
            yield key, derained

    def _run(self, frames: Iterable[tuple[Hashable, np.ndarray]]) -> Iterator[tuple[Hashable, np.ndarray]]:
        batch_size = self.settings.batch
        buffer: np.ndarray | None = None
        slots: list[tuple[_Frame, int, int]] = []
        waiting: deque[_Frame] = deque()

        def flush():
            nonlocal buffer
            # The short last batch keeps its shape (stale slots are ignored) so the
            # compiled function is never retraced.
            out = np.asarray(self.model.predict_on_batch(buffer))
            for n, (state, iy, ix) in enumerate(slots):
                y, x = state.origins_y[iy], state.origins_x[ix]
                h, w = out.shape[1], out.shape[2]
                tile = out[n]
                # Weighted in place, row weights then column weights: no temporary per tile.
                if len(state.origins_y) > 1:
                    tile *= state.weights_y[iy][:, None, None]
                if len(state.origins_x) > 1:
                    tile *= state.weights_x[ix][None, :, None]
                state.accum[y : y + h, x : x + w] += tile
                state.pending -= 1
            slots.clear()

        def finished():
            while waiting and waiting[0].pending == 0:
                state = waiting.popleft()
                result = state.accum[: state.height, : state.width]
                # Along an axis with one tile the weights are 1; otherwise divide by the rows'
                # and the columns' total weight, in place (no frame-sized temporary).
                if len(state.origins_y) > 1:
                    result /= _coverage(state.origins_y, state.weights_y, state.accum.shape[0])[: state.height, None, None]
                if len(state.origins_x) > 1:
                    result /= _coverage(state.origins_x, state.weights_x, state.accum.shape[1])[None, : state.width, None]
                np.clip(result, 0.0, 1.0, out=result)  # float rounding in the blend can step past 1
                if self.veil is not None:
                    seen = thumbnails(state.thumbnail, result, thumbnail_size(self.veil))
                    result = lift(result, estimate_veils(self.veil, [seen])[0])
                yield state.key, result

        for key, frame in frames:
            state = self._plan(key, frame)
            tile_shape = (len(state.weights_y[0]), len(state.weights_x[0]))
            if buffer is None or buffer.shape[1:3] != tile_shape:
                if slots:
                    flush()
                    yield from finished()
                buffer = np.zeros((batch_size, *tile_shape, self.in_channels), dtype=np.float32)
            waiting.append(state)
            th, tw = tile_shape
            for iy, y in enumerate(state.origins_y):
                for ix, x in enumerate(state.origins_x):
                    buffer[len(slots)] = state.canvas[y : y + th, x : x + tw]
                    slots.append((state, iy, ix))
                    if len(slots) == batch_size:
                        flush()
                        yield from finished()
            state.canvas = None  # every tile is copied out; free the padded copy early
        if slots:
            flush()
        yield from finished()

    def plan(self, height: int, width: int) -> TilePlan:
        """How a frame of `height` x `width` pixels is cut into tiles with these settings."""
        return plan_tiles(height, width, self.settings, self.stride)

    def _plan(self, key: Hashable, frame: np.ndarray) -> _Frame:
        if frame.ndim != 3 or frame.shape[2] != self.in_channels or frame.dtype != np.float32:
            raise ValueError(f"Expected a float32 HxWx{self.in_channels} frame. "
                             f"Received: shape={frame.shape}, dtype={frame.dtype}")
        height, width = frame.shape[:2]
        if height == 0 or width == 0:
            raise ValueError(f"Expected a frame with pixels. Received: shape={frame.shape}")
        plan = self.plan(height, width)
        overlap = self.settings.overlap
        return _Frame(
            key=key,
            height=height,
            width=width,
            canvas=pad_frame(frame, plan.canvas_height, plan.canvas_width),
            origins_y=list(plan.origins_y),
            origins_x=list(plan.origins_x),
            weights_y=tile_weights(list(plan.origins_y), plan.tile_height, overlap),
            weights_x=tile_weights(list(plan.origins_x), plan.tile_width, overlap),
            accum=np.zeros((plan.canvas_height, plan.canvas_width, self.out_channels), dtype=np.float32),
            pending=plan.count,
            thumbnail=thumbnail(frame, thumbnail_size(self.veil)) if self.veil is not None else None,
        )


def _channels(model, which: str) -> int:
    # A functional model declares its channels; a subclassed one (wrapping another) is RGB.
    try:
        return int(getattr(model, which)[0].shape[-1])
    except (AttributeError, TypeError, IndexError):
        return 3


def _with_mirror_images(frames: Iterable[tuple[Hashable, np.ndarray]]) -> Iterator[tuple[tuple, np.ndarray]]:
    for key, frame in frames:
        yield (key, False), frame
        yield (key, True), frame[:, ::-1]


def _coverage(origins: list[int], weights: list[np.ndarray], length: int) -> np.ndarray:
    total = np.zeros(length, dtype=np.float32)
    for origin, w in zip(origins, weights):
        total[origin : origin + len(w)] += w
    return total
