"""Derain one video (or a folder of numbered frames) into a new video file.

Decoding runs in a background thread, the network in the caller's thread and the
hand-over to the encoder in another thread, with bounded queues between them, so
memory stays flat however long the video is. Every decoded frame is written once,
in order, with the time the source gave it; audio, subtitles, rotation and colour
tags are kept by `vidderain.io.video`. A source of more than 8 bits per sample is
decoded to 16-bit RGB and written at its depth.

The video is written in segments into a hidden working folder beside the output
(`vidderain.jobs.resume`), then joined and renamed into place; a stopped run keeps
its finished segments, and a re-run with the same source, model and settings
continues after the last of them.
"""

from __future__ import annotations

import functools
import hashlib
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
from vidderain.io.files import check_output_location
from vidderain.io.images import read_image
from vidderain.io.video import (
    Clip,
    EncoderChoice,
    EncoderSettings,
    FrameMark,
    TimedFrame,
    VideoInfo,
    VideoReader,
    VideoWriter,
    check_container_codec,
    container_for,
    encoder_for,
    join_segments,
    probe_video,
    read_frame_folder,
    read_frames,
)
from vidderain.jobs.resume import SEGMENT_SECONDS, JobIdentity, NetworkIdentity, WorkingFolder
from vidderain.jobs.segments import SegmentedWriter
from vidderain.pipeline import BackgroundWorker, prefetch
from vidderain.pixels import to_float, to_integer
from vidderain.temporal import WindowSpec

SPLIT_PERIOD_SECONDS = 6.0  # one sweep of the split line across the frame and back
# What a re-run does with a video whose job was stopped, for the user. A stopped job
# leaves nothing under the output's name; its finished segments stay in the hidden
# working folder beside it (`vidderain.jobs.resume`), and a re-run continues after them.
RERUN_OF_A_STOPPED_VIDEO = ("resumes it after its last finished segment, kept in a hidden folder beside it "
                            "(or starts it again if none was finished)")
AFTER_A_STOP = f"nothing was written under the output's name; a re-run {RERUN_OF_A_STOPPED_VIDEO}"


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
        segment: float. Seconds of video per segment: a stopped run loses at most the
            segment it was writing. Defaults to SEGMENT_SECONDS (10).
        resume: bool. Continue from the finished segments of a stopped run with the same
            source, model and settings; False starts again (--overwrite). Defaults to True.
    """

    encoder: EncoderChoice = EncoderChoice()
    start: float | None = None
    duration: float | None = None
    compare: str | None = None
    fps: Fraction | None = None
    segment: float = SEGMENT_SECONDS
    resume: bool = True

    def check(self) -> None:
        """Raise ParameterError naming a setting that cannot work."""
        if self.compare is not None and self.compare not in COMPARE_MODES:
            raise ParameterError("compare", self.compare, f"one of {', '.join(COMPARE_MODES)}")
        if self.fps is not None and self.fps <= 0:
            raise ParameterError("fps", self.fps, "positive")
        if isinstance(self.segment, bool) or not isinstance(self.segment, (int, float)) or not self.segment > 0:
            raise ParameterError("segment", self.segment, "a positive number of seconds")

    def check_encoder(self, destination: Path) -> None:
        """Refuse encoder settings that cannot write the video file `destination`.

        Raises:
            InputError: `destination` has no video suffix.
            ParameterError: a setting this ffmpeg cannot use, or a codec its container cannot hold.
        """
        container_for(destination)
        encoder = encoder_for(destination, self.encoder)
        encoder.check()
        check_container_codec(destination, encoder.codec)


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
    check_output_location(source, destination)
    options.check_encoder(destination)


def derain_video(
    engine: Engine,
    source: Path,
    destination: Path,
    options: VideoOptions = VideoOptions(),
    on_progress: Callable[[int, int | None], None] | None = None,
    window: WindowSpec = SINGLE_FRAME,
    network: NetworkIdentity | None = None,
    on_note: Callable[[str], None] | None = None,
) -> list[str]:
    """Derain `source` (a video file or a folder of frames) into the video file `destination`.

    The frames are written in segments of about `options.segment` seconds into a hidden
    working folder beside `destination`, which are then joined, with the source's audio
    and subtitles, and renamed into place. If that folder holds the finished segments of
    a stopped run for the same source, model and settings, the run continues after the
    last of them, frame for frame as an uninterrupted run; otherwise it starts again.

    Args:
        engine: Engine. Runs the network.
        source: Path. A video file, or a folder of numbered image frames (then `options.fps` is needed).
        destination: Path. The output video; its suffix picks the container. Written atomically.
        options: VideoOptions. Trimming, encoding, comparison, segments. Defaults to VideoOptions().
        on_progress: callable or None. Called as `(frames_done, frames_total_or_None)` once
            before the first frame (frames done by a stopped run that is resumed, else 0) and
            after each frame.
        window: WindowSpec. The frames the model reads for each output frame (its file's metadata,
            `WindowSpec.from_metadata`): each frame with its neighbours for a temporal model
            (`vidderain.jobs.windows`), which a resumed run reads before its first frame too.
            Defaults to one frame.
        network: NetworkIdentity or None. The model file and precision the engine runs:
            finished segments are resumed only for the same. Defaults to None (never resumed).
        on_note: callable or None. Called with each line worth telling as the run starts (the
            encoder chosen for a deep source, a resumed or restarted run); None adds them to
            the notes returned.

    Returns:
        Notes: streams re-encoded or left out, pixel-format switches, and a damaged or
        truncated source of which only the frames that decode were derained.

    Raises:
        InputError: a bad source, destination or option; the destination is then untouched.
        DiskFullError: the destination filled up; nothing is left under its name.
    """
    check_video_job(source, destination, options)
    check_window(engine, window)
    notes: list[str] = []
    tell = on_note or notes.append
    described = _describe_source(source, options)
    encoder = encoder_for(destination, options.encoder, described.bit_depth)
    if encoder.reason:
        tell(encoder.reason)
    identity = _identity(described, engine, network, options, encoder)
    with WorkingFolder(destination, identity, resume=options.resume and network is not None) as work:
        if work.discarded:
            tell(f"starting again from the first frame: {work.discarded}")
        progress = work.progress
        total = described.total
        if progress.finished:
            tell(f"resuming: all {progress.frames_done} frames were derained before; joining its segments")
        elif progress.segments:
            tell(f"resuming at frame {progress.frames_done + 1} of {total if total is not None else '?'}")
        if not progress.finished:
            notes += _derain_segments(engine, described, destination, options, encoder, window, work, on_progress)
        notes[:0] = join_segments(work.segments(), destination, encoder, source=described.clip(options),
                                  name=destination)
        work.finish()
    return notes


def _derain_segments(engine: Engine, described: _Described, destination: Path, options: VideoOptions,
                     encoder: EncoderSettings, window: WindowSpec, work: WorkingFolder,
                     on_progress: Callable[[int, int | None], None] | None) -> list[str]:
    """Derain the frames not yet in a finished segment into segments; return notes on the source."""
    progress = work.progress
    video, reader = _open_source(described, options, progress.begin)
    # A resumed run reads the frames a temporal model sees before its first as neighbours only.
    skip = progress.next.index - video.first if progress.next is not None else 0
    out_width = video.width * 2 if options.compare == "side" else video.width
    open_segment = functools.partial(
        VideoWriter, width=out_width, height=video.height, fps=video.fps, settings=encoder, source=video.clip,
        sample_aspect_ratio=video.sample_aspect_ratio, dtype=video.dtype, copy_streams=False, name=destination)
    try:
        with SegmentedWriter(work, open_segment, options.segment, context=window.radius) as segments:
            segments.start(progress.next.index if progress.next is not None else 0)

            def decoded() -> Iterator[tuple[_Frame, np.ndarray]]:
                for index, (frame, time) in enumerate(video.frames, start=video.first):
                    yield _Frame(index, time, frame if options.compare else None), to_float(frame)

            def encode(key: _Frame, derained: np.ndarray) -> None:
                result = to_integer(derained, video.dtype)
                if options.compare:
                    result = compose(key.original, result, options.compare, split_position(key.index, video.fps))
                segments.write(result, key.index, key.time)

            done = progress.frames_done
            if on_progress:
                on_progress(done, video.total)
            # A full disk (DiskFullError) is raised as it is, to end a folder job as well.
            with BackgroundWorker(depth=4, name="encode-video", fatal=(DiskFullError,)) as encoder_thread:
                inputs = prefetch(model_inputs(decoded(), window, skip), depth=read_ahead(window),
                                  name="decode-video")
                try:
                    for key, derained in engine.run(inputs):
                        encoder_thread.submit(key.index, encode, key, derained)
                        _raise_first(encoder_thread.completed())
                        done += 1
                        if on_progress:
                            on_progress(done, video.total)
                    _raise_first(encoder_thread.finish())
                except BaseException:
                    segments.kill()  # a segment the encoder thread is finishing ends now, not after a slow flush
                    raise
                finally:
                    inputs.close()  # stops the decoding thread now, not when the generator is collected
            if done == progress.frames_done:
                raise InputError(f"{destination}: no frames were written")
            segments.finish()
        notes = list(segments.notes)
        if reader is not None and reader.damage:
            notes.append(f"damaged or truncated: ffmpeg reported {reader.damage!r}; "
                         f"the {done} frames it could decode were derained")
        if done == 1 and window.frames > 1:
            notes.append("a single frame: this model derains each frame from the frames around it, and leaves a "
                         "frame alone nearly as it is (--model default derains it)")
        return notes
    finally:
        if reader is not None:
            reader.close()


@dataclass(frozen=True)
class VideoSource:
    """The frames a video job derains, and what its output keeps of where they came from.

    Attributes:
        frames: iterator of TimedFrame. RGB frames, uint8 or (for a source of more than 8
            bits per sample) uint16, each with its time in seconds.
        width: int. Frame width in pixels.
        height: int. Frame height in pixels.
        fps: Fraction. Nominal frame rate.
        total: int or None. Frames to expect, for progress; None when unknown.
        clip: Clip or None. The stretch of a video file whose audio, subtitles, colour
            tags and metadata the output keeps; None for a folder of frames.
        sample_aspect_ratio: Fraction. Pixel shape of the frames.
        first: int. The index in the clip of the first frame of `frames`. Defaults to 0.
        dtype: np.dtype. The frames' samples. Defaults to uint8.
    """

    frames: Iterator[TimedFrame]
    width: int
    height: int
    fps: Fraction
    total: int | None
    clip: Clip | None
    sample_aspect_ratio: Fraction = Fraction(1)
    first: int = 0
    dtype: np.dtype = np.dtype(np.uint8)


@dataclass(frozen=True, eq=False)
class _Frame:
    """What travels with a frame through the engine to the encoder thread (the engine's key)."""

    index: int
    time: Fraction  # presentation time in seconds, handed to the writer with the frame
    original: np.ndarray | None  # the input frame, kept when the output compares it with the result


@dataclass(frozen=True)
class _Described:
    """A source before any frame is read: a probed video file, or the listed frames of a folder."""

    path: Path
    info: VideoInfo | None
    frame_paths: list[Path] | None
    total: int | None
    first_frame: np.ndarray | None = None  # a folder's first frame, whose size and samples all frames share

    @property
    def bit_depth(self) -> int:
        return self.info.bit_depth if self.info is not None else 8 * self.first_frame.dtype.itemsize

    def clip(self, options: VideoOptions) -> Clip | None:
        return Clip(self.info, options.start, options.duration) if self.info is not None else None


def _describe_source(source: Path, options: VideoOptions) -> _Described:
    if source.is_dir():
        paths = read_frame_folder(source)
        return _Described(source, None, paths, len(paths), first_frame=read_image(paths[0]))
    info = probe_video(source)
    return _Described(source, info, None, _expected_frames(Clip(info, options.start, options.duration)))


def _open_source(described: _Described, options: VideoOptions,
                 begin: FrameMark | None) -> tuple[VideoSource, VideoReader | None]:
    """The frames of a video file (and its open reader, to close), or of a folder of frames (and None), from `begin`."""
    first = begin.index if begin is not None else 0
    if described.frame_paths is not None:
        paths = described.frame_paths
        height, width = described.first_frame.shape[:2]
        fps = options.fps
        dtype = described.first_frame.dtype  # uint16 for 16-bit frames (PNG, TIFF), else uint8
        decoded = read_frames(paths[first:], dtype)
        frames = (TimedFrame(frame, index / fps) for index, frame in enumerate(decoded, first))
        return VideoSource(frames, width, height, fps, total=len(paths), clip=None, first=first, dtype=dtype), None
    reader = VideoReader(described.path, start=options.start, duration=options.duration, info=described.info,
                         begin=begin)
    video = VideoSource(reader.timed(), reader.width, reader.height, reader.info.fps, total=described.total,
                        clip=reader.clip, sample_aspect_ratio=reader.info.display_sample_aspect_ratio, first=first,
                        dtype=reader.dtype)
    return video, reader


def _identity(described: _Described, engine: Engine, network: NetworkIdentity | None, options: VideoOptions,
              encoder: EncoderSettings) -> JobIdentity:
    """What the output depends on: the source as it is now, the model, every setting that changes pixels.

    The batch size is left out: it groups the same computations differently, so a
    stopped run can be resumed with another that fits the memory better.
    """
    if described.info is not None:
        stat = described.path.stat()
        probe = {key: value for key, value in vars(described.info).items() if key != "path"}
        source = {"size": stat.st_size, "modified_ns": stat.st_mtime_ns, "probe": probe}
    else:
        listing = "\n".join(f"{p.name}\t{p.stat().st_size}\t{p.stat().st_mtime_ns}" for p in described.frame_paths)
        source = {"frames": len(described.frame_paths), "listing_sha256": hashlib.sha256(listing.encode()).hexdigest()}
    model = {"sha256": network.sha256 if network else None, "precision": network.precision if network else None}
    tiles = engine.settings
    settings = {
        "tile": tiles.tile, "overlap": tiles.overlap, "ensemble": tiles.ensemble,
        "codec": encoder.codec, "crf": encoder.crf, "preset": encoder.preset, "pix_fmt": encoder.pix_fmt,
        "tag": encoder.tag, "start": options.start, "duration": options.duration, "compare": options.compare,
        "fps": options.fps if described.info is None else None,
    }
    return JobIdentity(source, model, settings)


def _raise_first(outcomes: list[tuple]) -> None:
    for _, error in outcomes:
        if error is not None:
            raise InputError(error)


def _expected_frames(clip: Clip) -> int | None:
    count = clip.info.frame_count
    if count is None:
        return None
    if clip.start or clip.duration:
        remaining = (clip.info.duration or 0) - (clip.start or 0)
        seconds = min(remaining, clip.duration) if clip.duration else remaining
        return max(0, min(count, math.ceil(seconds * float(clip.info.fps))))
    return count
