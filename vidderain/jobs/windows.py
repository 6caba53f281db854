"""A stream of decoded frames as the windows a temporal model reads, one per frame.

A temporal model derains frame t from frames t-K ... t+K stacked on channels
(`vidderain.temporal`). A video job sees its frames one at a time and may not know how
many there are, so the windows are made from a ring buffer of the last 2K+1 frames:
the window centred on frame t is stacked as soon as frame t+K has been decoded, or the
stream has ended. The first K and the last K frames get the replicated edges of
`window_indices` (the first or last frame repeated), so every frame gets a window and
the output has as many frames as the input. Memory holds 2K+1 prepared frames however
long the video is.

The stacking (with alignment, the optical flow) runs in the thread that iterates the
windows; the video job iterates them in its decoding thread, so the flow overlaps the
network.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np

from vidderain.engine import Engine
from vidderain.temporal import PreparedFrame, WindowSpec, WindowStacker, window_indices

Key = TypeVar("Key")

SINGLE_FRAME = WindowSpec(frames=1)
# Stacked windows waiting for the network, for a single-frame model; a window of n frames
# is n times the bytes, so fewer wait (but at least 2, so stacking and the network overlap).
READ_AHEAD = 4


def stack_windows(frames: Iterable[tuple[Key, np.ndarray]], spec: WindowSpec, skip: int = 0,
                  wanted: Callable[[Key], bool] | None = None) -> Iterator[tuple[Key, np.ndarray]]:
    """Turn a stream of frames into the stream of their windows, in order, one per frame.

    Args:
        frames: iterable of (key, frame). Each frame float32 HxWx3 in [0, 1], all of one size.
        spec: WindowSpec. Frames per window and whether to align them.
        skip: int. The first `skip` frames are read as neighbours only, and get no window:
            a job that starts after the first frame (a resumed one) reads the K frames
            before it first (or all of them, when fewer), so its windows are those of
            a run from the first frame. Defaults to 0.
        wanted: callable or None. `wanted(key)` False: that frame is read as a neighbour only
            and gets no window (nothing is stacked for it). Defaults to None (every frame
            after `skip` gets one).

    Yields:
        (key, window): the key of the window's centre frame and the float32 HxWx(3*frames)
        window, stacked by `WindowStacker` (neighbours aligned to the centre as `spec.align` says).
    """
    stacker = WindowStacker(spec)
    radius = spec.radius
    ring: deque[tuple[Key, PreparedFrame]] = deque(maxlen=spec.frames)
    count = 0  # frames read so far; the ring holds the last len(ring) of them

    def windows(centre: int, total: int) -> Iterator[tuple[Key, np.ndarray]]:
        first = count - len(ring)
        key = ring[centre - first][0]
        if centre >= skip and (wanted is None or wanted(key)):
            yield key, stacker.stack([ring[index - first][1] for index in window_indices(centre, total, radius)])

    for key, frame in frames:
        ring.append((key, stacker.prepare(frame)))
        count += 1
        if count > radius:  # frame `count - 1` is the last neighbour of the window centred `radius` before it
            yield from windows(count - 1 - radius, count)
    for centre in range(max(0, count - radius), count):  # the last K frames: their future is the last frame
        yield from windows(centre, count)


def model_inputs(frames: Iterable[tuple[Key, np.ndarray]], spec: WindowSpec,
                 skip: int = 0) -> Iterable[tuple[Key, np.ndarray]]:
    """What the engine reads for each frame: the frame itself for a single-frame model, else its window.

    The first `skip` frames get none (`stack_windows`).
    """
    if spec.frames == 1:
        return itertools.islice(frames, skip, None) if skip else frames
    return stack_windows(frames, spec, skip)


def read_ahead(spec: WindowSpec) -> int:
    """How many of `model_inputs`' items to queue ahead of the network: about the bytes of 4 single frames."""
    return max(2, READ_AHEAD // spec.frames) if spec.frames > 1 else READ_AHEAD


def check_window(engine: Engine, spec: WindowSpec) -> None:
    """Raise ValueError if `engine`'s model does not read windows of `spec.frames` RGB frames."""
    if engine.in_channels != 3 * spec.frames:
        raise ValueError(f"the engine's model reads {engine.in_channels} channels, not a window of {spec.frames} "
                         f"RGB frames; pass its WindowSpec (WindowSpec.from_metadata). Received: spec={spec}")
