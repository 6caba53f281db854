"""Derain one video (or a folder of numbered frames) into a new video file.

Decoding runs in a background thread, the network in the caller's thread and the
hand-over to the encoder in another thread, with bounded queues between them, so
memory stays flat however long the video is. Every decoded frame is written once,
in order, with the time the source gave it; audio, subtitles, rotation and colour
tags are kept by `vidderain.io.video`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidderain.jobs.compare import COMPARE_MODES, compose
from vidderain.jobs.windows import SINGLE_FRAME, check_window, model_inputs, read_ahead
from vidderain.engine import Engine
from vidderain.errors import NAME, DiskFullError, InputError, ParameterError, no_such, not_a_file, permission_denied
from vidderain.io.files import check_output_location, make_output_folder
from vidderain.io.images import read_image
from vidderain.io.video import (
    Clip,
    EncoderChoice,
    TimedFrame,
    VideoReader,
    VideoWriter,
    check_container_codec,
    container_for,
    encoder_for,
    read_frame_folder,
    read_frames,
)
from vidderain.pipeline import BackgroundWorker, prefetch
from vidderain.pixels import to_float, to_integer
from vidderain.temporal import WindowSpec

SPLIT_PERIOD_SECONDS = 6.0  # one sweep of the split line across the frame and back
# What a re-run does with a video whose job was stopped, for the user. A stopped job
# leaves nothing under the output's name (the writer removes its temporary file), so a
# re-run derains the video from its first frame; resuming a video would change this.
RERUN_OF_A_STOPPED_VIDEO = "from its first frame"
AFTER_A_STOP = f"nothing was written under the output's name; a re-run derains the video again {RERUN_OF_A_STOPPED_VIDEO}"


@dataclass(frozen=True)
class VideoOptions:
    """How a video is read and written.

    Attributes:
        encoder: EncoderChoice. The codec, CRF, preset and pixel format asked for; the
            rest are `encoder_for`'s defaults for each output's container (H.264, or VP9
            for .webm). Defaults to EncoderChoice() (all defaults).
        start: float or None. Seconds to skip at the start. Defaults to None.
        duration: float or None. Seconds to process from `start`. Defaults to None (to the end).
        compare: str or None. "side" writes input | derained side by side; "split" one
            frame whose left part is the input, with a moving split line. Defaults to None.
        fps: Fraction or None. Frame rate of a folder of frames (ignored for video files).
    """

    encoder: EncoderChoice = EncoderChoice()
    start: float | None = None
    duration: float | None = None
    compare: str | None = None
    fps: Fraction | None = None

    def check(self) -> None:
        """Raise ParameterError naming a setting that cannot work."""
        if self.compare is not None and self.compare not in COMPARE_MODES:
            raise ParameterError("compare", self.compare, f"one of {', '.join(COMPARE_MODES)}")
        if self.fps is not None and self.fps <= 0:
            raise ParameterError("fps", self.fps, "positive")


def split_position(index: int, fps: Fraction) -> float:
    """Where the moving split line of compare mode "split" stands in frame `index` (fraction of the width)."""
    return 0.5 + 0.4 * math.sin(2 * math.pi * index / (float(fps) * SPLIT_PERIOD_SECONDS))


def check_video_job(source: Path, destination: Path, options: VideoOptions = VideoOptions()) -> None:
    """Refuse a video job that cannot work, before a model is loaded or anything is written.

    Raises:
        InputError: a missing or unreadable source; a destination that is a folder, has
            no video suffix, or is the source.
        ParameterError: a bad option or encoder setting; a folder of frames without `options.fps`.
    """
    options.check()
    if not source.exists():
        raise InputError(no_such(source))
    if not os.access(source, os.R_OK):
        raise InputError(permission_denied(source))
    if source.is_dir() and options.fps is None:
        raise ParameterError("fps", sentence=f"a folder of frames needs {NAME}, its frame rate "
                             "(e.g. 25 or 30000/1001)", path=source)
    if destination.is_dir():
        raise InputError(not_a_file(destination, "a video file"))
    container_for(destination)
    check_output_location(source, destination)
    encoder = encoder_for(destination, options.encoder)
    encoder.check()
    check_container_codec(destination, encoder.codec)


def derain_video(
    engine: Engine,
    source: Path,
    destination: Path,
    options: VideoOptions = VideoOptions(),
    on_progress: Callable[[int, int | None], None] | None = None,
    window: WindowSpec = SINGLE_FRAME,
) -> list[str]:
    """Derain `source` (a video file or a folder of frames) into the video file `destination`.

    Args:
        engine: Engine. Runs the network.
        source: Path. A video file, or a folder of numbered image frames (then `options.fps` is needed).
        destination: Path. The output video; its suffix picks the container. Written atomically.
        options: VideoOptions. Trimming, encoding, comparison. Defaults to VideoOptions().
        on_progress: callable or None. Called as `(frames_done, frames_total_or_None)` after each frame.
        window: WindowSpec. The frames the model reads for each output frame (its file's metadata,
            `WindowSpec.from_metadata`): each frame with its neighbours for a temporal model
            (`vidderain.jobs.windows`). Defaults to one frame.

    Returns:
        Notes: streams re-encoded or left out, pixel-format switches, and a damaged or
        truncated source of which only the frames that decode were derained.

    Raises:
        InputError: a bad source, destination or option; the destination is then untouched.
        DiskFullError: the destination filled up; nothing is left under its name.
    """
    check_video_job(source, destination, options)
    check_window(engine, window)
    encoder = encoder_for(destination, options.encoder)
    video, reader = _open_source(source, options)
    out_width = video.width * 2 if options.compare == "side" else video.width
    try:
        make_output_folder(destination.parent)
        with VideoWriter(destination, out_width, video.height, video.fps, settings=encoder, source=video.clip,
                         sample_aspect_ratio=video.sample_aspect_ratio) as writer:

            def decoded() -> Iterator[tuple[_Frame, np.ndarray]]:
                for index, (frame, time) in enumerate(video.frames):
                    yield _Frame(index, time, frame if options.compare else None), to_float(frame)

            def encode(key: _Frame, derained: np.ndarray) -> None:
                result = to_integer(derained)
                if options.compare:
                    result = compose(key.original, result, options.compare, split_position(key.index, video.fps))
                writer.write(result, key.time)

            done = 0
            # A full disk (DiskFullError) is raised as it is, to end a folder job as well.
            with BackgroundWorker(depth=4, name="encode-video", fatal=(DiskFullError,)) as encoder_thread:
                inputs = prefetch(model_inputs(decoded(), window), depth=read_ahead(window), name="decode-video")
                for key, derained in engine.run(inputs):
                    encoder_thread.submit(key.index, encode, key, derained)
                    _raise_first(encoder_thread.completed())
                    done += 1
                    if on_progress:
                        on_progress(done, video.total)
                _raise_first(encoder_thread.finish())
            notes = list(writer.notes)
        if reader is not None and reader.damage:
            notes.append(f"damaged or truncated: ffmpeg reported {reader.damage!r}; "
                         f"the {done} frames it could decode were derained")
        return notes
    finally:
        if reader is not None:
            reader.close()


@dataclass(frozen=True)
class VideoSource:
    """The frames a video job derains, and what its output keeps of where they came from.

    Attributes:
        frames: iterator of TimedFrame. RGB uint8 frames, each with its time in seconds.
        width: int. Frame width in pixels.
        height: int. Frame height in pixels.
        fps: Fraction. Nominal frame rate.
        total: int or None. Frames to expect, for progress; None when unknown.
        clip: Clip or None. The stretch of a video file whose audio, subtitles, colour
            tags and metadata the output keeps; None for a folder of frames.
        sample_aspect_ratio: Fraction. Pixel shape of the frames.
    """

    frames: Iterator[TimedFrame]
    width: int
    height: int
    fps: Fraction
    total: int | None
    clip: Clip | None
    sample_aspect_ratio: Fraction = Fraction(1)


@dataclass(frozen=True, eq=False)
class _Frame:
    """What travels with a frame through the engine to the encoder thread (the engine's key)."""

    index: int
    time: Fraction  # presentation time in seconds, handed to the writer with the frame
    original: np.ndarray | None  # the input frame, kept when the output compares it with the result


def _open_source(source: Path, options: VideoOptions) -> tuple[VideoSource, VideoReader | None]:
    """The frames of a video file (and its open reader, to close), or of a folder of frames (and None)."""
    if source.is_dir():
        paths = read_frame_folder(source)
        height, width = read_image(paths[0]).shape[:2]
        fps = options.fps
        frames = (TimedFrame(frame, index / fps) for index, frame in enumerate(read_frames(paths)))
        return VideoSource(frames, width, height, fps, total=len(paths), clip=None), None
    reader = VideoReader(source, start=options.start, duration=options.duration)
    video = VideoSource(reader.timed(), reader.width, reader.height, reader.info.fps, total=_expected_frames(reader),
                        clip=reader.clip, sample_aspect_ratio=reader.info.display_sample_aspect_ratio)
    return video, reader


def _raise_first(outcomes: list[tuple]) -> None:
    for _, error in outcomes:
        if error is not None:
            raise InputError(error)


def _expected_frames(reader: VideoReader) -> int | None:
    count = reader.info.frame_count
    if count is None:
        return None
    if reader.start or reader.duration:
        remaining = (reader.info.duration or 0) - (reader.start or 0)
        seconds = min(remaining, reader.duration) if reader.duration else remaining
        return max(0, min(count, math.ceil(seconds * float(reader.info.fps))))
    return count
