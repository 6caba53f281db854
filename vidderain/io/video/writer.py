"""Encoding RGB frames into a video file, written atomically, with the source's timing, audio and colour.

Frames reach ffmpeg in a small live Matroska stream (`vidderain.io.video.mkv`)
that carries each frame's time; audio, subtitles, attachments, metadata and colour
tags come from the source file, trimmed like the frames.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

from vidderain.errors import DiskFullError, InputError, ParameterError, no_such, not_a_file
from vidderain.io.files import atomic_output, check_output_location, is_out_of_space, write_error
from vidderain.io.video.encoding import (
    EncoderSettings,
    check_container_codec,
    container_for,
    encoder_args,
    encoder_for,
)
from vidderain.io.video.ffmpeg import (
    NS_PER_SECOND,
    FfmpegProcess,
    ffmpeg_command,
    ffmpeg_exe,
    file_url,
    run_ffmpeg,
    seconds_arg,
)
from vidderain.io.video.mkv import mkv_block_header, mkv_header
from vidderain.io.video.probe import Clip, VideoInfo
from vidderain.io.video.reader import VideoReader

# When the source's audio cannot be copied into the output container, re-encode it to this.
_AUDIO_FALLBACK = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus", "avi": "libmp3lame"}
# Text subtitles that cannot be copied are converted to this; None: the container holds none.
_SUBTITLE_FALLBACK = {"mp4": "mov_text", "mov": "mov_text", "matroska": "srt", "webm": "webvtt", "avi": None}
_MAX_TIMESCALE = 2**31 - 1


class VideoWriter:
    """Encode RGB frames (uint8, or uint16 for more than 8 bits per sample) into a video file, written atomically.

    Frames go to ffmpeg inside a Matroska stream that carries each frame's time, so
    the output keeps the source's timing exactly: its rational rate for constant-rate
    video (stored exactly in MP4/MOV; Matroska/WebM keep millisecond times, which
    ffmpeg reads back as the nearest rate it can express) and every interval for
    variable-rate video. Each frame's time is handed to `write` with the frame
    (`VideoReader.timed` gives it); frames written without one follow each other at
    `fps`. With a `source`, its audio and subtitle streams are all copied over,
    trimmed like the frames (the clip's `start` and `duration`) so they stay in sync,
    and its colour tags and metadata are kept. A stream the container cannot
    hold as it is gets re-encoded (audio: AAC for MP4/MOV/MKV, Opus for WebM, MP3 for
    AVI; text subtitles: mov_text for MP4/MOV, WebVTT for WebM) or, failing that,
    left out; `notes` says which. With `copy_streams` False the file holds the video
    stream alone (a segment, to be joined with the others and the source's streams by
    `vidderain.io.video.segments.join_segments`).

    The file appears under `path` only when `close` succeeds (a `with` block without
    an exception); otherwise nothing is left, not even the temporary file.

    Example:
        with VideoReader("in.mp4") as reader, VideoWriter.matching("out.mp4", reader) as writer:
            for frame, time in reader.timed():
                writer.write(frame, time)

    Args:
        path: str or PathLike. The output; its suffix (.mp4, .m4v, .mov, .mkv, .webm, .avi) picks the container.
        width: int. Frame width in pixels.
        height: int. Frame height in pixels.
        fps: Fraction, int or str. Nominal frame rate, e.g. Fraction(30000, 1001) or "30000/1001".
        settings: EncoderSettings or None. Codec, quality, preset and pixel format.
            Defaults to None: `encoder_for(path)`, the container's defaults.
        source: Clip or None. The stretch of video the frames came from: audio,
            subtitles, colour tags, metadata and time base are taken from it. Defaults to None.
        sample_aspect_ratio: Fraction. Pixel shape of the frames. Defaults to 1 (square).
        dtype: np.uint8 or np.uint16. The frames' samples: 16-bit frames carry a source of
            more than 8 bits per sample to an encoder that keeps them. Defaults to np.uint8.
        copy_streams: bool. Copy the source's audio, subtitles and metadata into the file.
            Defaults to True.
        name: Path or None. The output that errors name, where `path` is a part of it (a
            segment). Defaults to None (`path`).

    Raises:
        InputError: a setting, the path, or the source cannot be used.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: Fraction | int | str,
        *,
        settings: EncoderSettings | None = None,
        source: Clip | None = None,
        sample_aspect_ratio: Fraction = Fraction(1),
        dtype: np.dtype | type = np.uint8,
        copy_streams: bool = True,
        name: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = Path(name) if name is not None else self.path
        self.width, self.height = _check_size(width, height)
        self.fps = _check_fps(fps)
        self.dtype = _check_dtype(dtype)
        container = _check_output(self.path, source)
        settings = encoder_for(self.path) if settings is None else settings
        settings.check()
        self.settings, self.notes = settings.for_frame_size(self.width, self.height)
        check_container_codec(self.path, self.settings.codec)
        info = source.info if source is not None else None
        tick = _output_tick(self.fps, info.time_base if info else None)
        streams, stream_notes = plan_source_streams(info, container) if info and copy_streams else ([], [])
        video_args, video_notes = encoder_args(self.settings, info, Fraction(sample_aspect_ratio), tick)
        self.notes += stream_notes + video_notes
        video_input = ["-f", "matroska", "-i", "pipe:0"]
        args = mux_command(video_input, source if copy_streams else None, streams, video_args, container)
        self._tick_ns = math.ceil(NS_PER_SECOND * tick)
        self._lock = threading.RLock()
        self._count = 0
        self._last_pts: Fraction | None = None
        self._last_ns: int | None = None
        self._last_step_ns = round(NS_PER_SECOND / self.fps)
        self._pending: tuple[int, np.ndarray] | None = None
        self._closed = False
        self._process: FfmpegProcess | None = None
        self._atomic = atomic_output(self.path)
        try:
            tmp = self._atomic.__enter__()
        except OSError as exc:
            raise write_error(self.name, exc.strerror or str(exc), is_out_of_space(exc)) from None
        try:
            self._process = FfmpegProcess([*args, file_url(tmp)], stdin=True)
            self._send(mkv_header(self.width, self.height, self._last_step_ns, deep=self.dtype == np.uint16))
        except BaseException as exc:
            self._abort(exc)
            raise

    @classmethod
    def matching(
        cls, path: str | os.PathLike, reader: VideoReader, settings: EncoderSettings | None = None
    ) -> VideoWriter:
        """Return a writer for frames of `reader`'s size, rate, audio and colour.

        Write each frame with the time the reader gave it (`reader.timed()`).

        Args:
            path: str or PathLike. The output file.
            reader: VideoReader. The source being read.
            settings: EncoderSettings or None. How to encode. Defaults to None (`encoder_for(path)`).
        """
        return cls(
            path,
            reader.width,
            reader.height,
            reader.info.fps,
            settings=settings,
            source=reader.clip,
            sample_aspect_ratio=reader.info.display_sample_aspect_ratio,
            dtype=reader.dtype,
        )

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc)

    @property
    def frames_written(self) -> int:
        """Frames accepted so far."""
        return self._count

    def write(self, frame: np.ndarray, pts: Fraction | None = None) -> None:
        """Queue one frame for encoding; calls from several threads are serialised.

        Args:
            frame: np.ndarray. RGB of the writer's `dtype`, `height` x `width` x 3.
            pts: Fraction or None. Presentation time in seconds; None: `1/fps` after the previous frame.

        Raises:
            ValueError: the frame has the wrong shape or type.
            InputError: ffmpeg stopped (its error, e.g. an unknown codec option or a full disk).
        """
        if frame.dtype != self.dtype or frame.shape != (self.height, self.width, 3):
            raise ValueError(
                f"Expected an RGB {self.dtype} frame of shape {(self.height, self.width, 3)}. "
                f"Received: shape={frame.shape}, dtype={frame.dtype}"
            )
        with self._lock:
            if self._closed:
                raise InputError(f"{self.name}: the writer is already closed")
            time_ns = self._next_time_ns(pts)
            if self._pending is not None:
                self._send_frame(*self._pending, duration_ns=None)
            # Held back one frame: only the next frame tells how long this one lasts. 16-bit
            # samples go to ffmpeg little-endian (RGB48LE), whatever this machine's order.
            self._pending = (time_ns, np.array(frame, dtype=self.dtype.newbyteorder("<"), copy=True, order="C"))
            self._count += 1

    def close(self) -> None:
        """Finish the file and move it onto `path`; safe to call more than once.

        Raises:
            InputError: no frame was written, ffmpeg failed, or the file could not be
                moved into place; nothing is left under `path` then.
        """
        with self._lock:
            if self._closed:
                return
            try:
                if self._pending is None:
                    raise InputError(f"{self.name}: no frames were written")
                self._send_frame(*self._pending, duration_ns=self._last_step_ns)
                self._pending = None
                self._process.close_stdin()
                if self._process.wait() != 0:
                    raise self._ffmpeg_error("ffmpeg failed")
                self._process.stop()  # it has exited: this only closes the pipes
                self._closed = True
                try:
                    self._atomic.__exit__(None, None, None)
                except OSError as exc:
                    raise write_error(self.name, exc.strerror or str(exc), is_out_of_space(exc)) from None
            except BaseException as exc:
                self._abort(exc)
                raise

    def kill(self) -> None:
        """End ffmpeg now, from any thread, without waiting for a write or `close` in progress.

        Whatever was writing or closing then fails, and the temporary file is removed
        as on any failure: the way a stop ends a writer that another thread is finishing.
        """
        if self._process is not None:
            self._process.stop()

    def _abort(self, exc: BaseException) -> None:
        """Stop ffmpeg and remove the temporary file."""
        with self._lock:
            if self._process is not None:
                self._process.stop()
            if not self._closed:
                self._closed = True
                self._pending = None
                self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def _next_time_ns(self, pts: Fraction | None) -> int:
        """Nanosecond time of the next frame, kept rising."""
        if pts is None:
            # Exact fractions, so a long run at 30000/1001 does not drift by rounding.
            pts = Fraction(0) if self._last_pts is None else self._last_pts + 1 / self.fps
        pts = Fraction(pts)
        time_ns = max(round(pts * NS_PER_SECOND), 0)
        if self._last_ns is not None and time_ns < self._last_ns + self._tick_ns:
            # Containers need rising times: a repeated or backward time (a broken
            # source) moves to one output tick after the previous frame.
            time_ns = self._last_ns + self._tick_ns
            pts = Fraction(time_ns, NS_PER_SECOND)
        if self._last_ns is not None:
            self._last_step_ns = time_ns - self._last_ns
        self._last_pts, self._last_ns = pts, time_ns
        return time_ns

    def _send_frame(self, time_ns: int, frame: np.ndarray, duration_ns: int | None) -> None:
        self._send(mkv_block_header(time_ns, frame.nbytes, duration_ns))
        self._send(memoryview(frame).cast("B"))

    def _send(self, data: bytes | memoryview) -> None:
        try:
            self._process.stdin.write(data)
        except (OSError, ValueError):
            # The pipe broke (or was closed): ffmpeg has stopped; its log says why.
            self._process.wait_briefly()
            raise self._ffmpeg_error("ffmpeg stopped") from None

    def _ffmpeg_error(self, what: str) -> InputError | DiskFullError:
        """The error for an ffmpeg that failed while writing, told apart: a full disk ends the whole run."""
        return ffmpeg_write_error(self.name, self._process, what)


def ffmpeg_write_error(name: Path, process: FfmpegProcess, what: str) -> InputError | DiskFullError:
    """The error for an ffmpeg that failed while writing `name`, told apart: a full disk ends the whole run."""
    summary = process.error_summary()
    if hasattr(signal, "SIGXFSZ") and process.returncode == -signal.SIGXFSZ:
        # Over `ulimit -f`, the kernel ends ffmpeg with SIGXFSZ before it can log anything.
        return write_error(name, "the file size limit was reached", out_of_space=True)
    if any(text in summary.lower() for text in _OUT_OF_SPACE_TEXTS):
        return write_error(name, summary, out_of_space=True)
    return InputError(f"{name}: {what} ({summary})")


# How ffmpeg words a write that failed because the destination is full (strerror of ENOSPC, EDQUOT, EFBIG).
_OUT_OF_SPACE_TEXTS = ("no space left on device", "disk quota exceeded", "file too large")


def mux_command(
    video_input: list[str],
    source: Clip | None,
    streams: list[tuple[str, int, str]],
    video_args: list[str],
    container: str,
) -> list[str]:
    """ffmpeg's arguments, up to the output path: video from `video_input`, the rest from `source`.

    Args:
        video_input: list of str. The first input's options and `-i` (frames on stdin, or segments to join).
        source: Clip or None. Where audio, subtitles, attachments and metadata come from, trimmed like the frames.
        streams: list of (kind, index, codec). What `plan_source_streams` chose for each stream of `source`.
        video_args: list of str. How the video stream is written (`encoder_args`, or a copy).
        container: str. The output's muxer.
    """
    args = [*ffmpeg_command("warning"), "-y", *video_input]
    if source is not None:
        # The same trim as the reader's, so audio and subtitles stay in sync with the frames.
        if source.start is not None:
            args += ["-ss", seconds_arg(source.start)]
        if source.duration is not None:
            args += ["-t", seconds_arg(source.duration)]
        args += ["-i", file_url(source.info.path)]
    args += ["-map", "0:v:0"]
    for kind, index, _ in streams:
        args += ["-map", f"1:{kind}:{index}"]
    if source is not None and container == "matroska":
        args += ["-map", "1:t?"]  # attachments: the fonts that styled subtitles need
    # Global metadata (creation time, location, title) comes from the source, not the pipe.
    args += ["-map_metadata", "1" if source is not None else "-1", *video_args]
    for kind in ("a", "s"):
        # Output stream specifiers count only the streams mapped, in mapping order.
        planned = [codec for k, _, codec in streams if k == kind]
        for out_index, codec in enumerate(planned):
            args += [f"-c:{kind}:{out_index}", codec]
    if container in ("mp4", "mov"):
        args += ["-movflags", "+faststart"]
    return args + ["-f", container]


def _check_size(width: int, height: int) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(name, value, "a positive integer")
    return int(width), int(height)


def _check_dtype(dtype: np.dtype | type) -> np.dtype:
    checked = np.dtype(dtype)
    if checked not in (np.uint8, np.uint16):
        raise ParameterError("dtype", checked, "uint8 or uint16")
    return checked


def _check_fps(fps: Fraction | int | str) -> Fraction:
    try:
        rate = Fraction(fps)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ParameterError("fps", fps, "a positive number or ratio like 30000/1001") from None
    if rate <= 0 or rate > 10_000:
        raise ParameterError("fps", fps, "between 0 and 10000")
    return rate


def _check_output(path: Path, source: Clip | None) -> str:
    """The muxer for an output path, once the path is known to be usable."""
    fmt = container_for(path)
    if not path.parent.is_dir():
        raise InputError(no_such(path.parent, "folder"))
    if path.is_dir():
        raise InputError(not_a_file(path, "a video file"))
    if source is not None:
        check_output_location(source.info.path, path)
    return fmt


def _output_tick(fps: Fraction, source_time_base: Fraction | None) -> Fraction:
    """A clock unit on which both frame-rate steps and source timestamps fall exactly."""
    units = fps.numerator
    if source_time_base is not None:
        units = math.lcm(units, source_time_base.denominator)
        if units > _MAX_TIMESCALE:
            units = source_time_base.denominator
    return Fraction(1, min(units, _MAX_TIMESCALE))


def plan_source_streams(source: VideoInfo, fmt: str) -> tuple[list[tuple[str, int, str]], list[str]]:
    """Choose, for each audio and subtitle stream of `source`, how it goes into `fmt`.

    Each choice is tried on the real stream (ffmpeg writes a header to the null
    device), so the answer is this ffmpeg's, not a table's: copy if the container
    takes the stream as it is, else the container's fallback codec, else leave it out.

    Returns:
        [(kind "a"/"s", index in the source, codec or "copy")] and notes on what was not copied.
    """
    plan, notes = [], []
    kinds = (
        ("a", source.audio_streams, _AUDIO_FALLBACK.get(fmt)),
        ("s", source.subtitle_streams, _SUBTITLE_FALLBACK.get(fmt)),
    )
    for kind, count, fallback in kinds:
        label = "audio" if kind == "a" else "subtitle"
        for index in range(count):
            if _container_accepts(source.path, kind, index, "copy", fmt):
                plan.append((kind, index, "copy"))
            elif fallback and _container_accepts(source.path, kind, index, fallback, fmt):
                plan.append((kind, index, fallback))
                notes.append(f"{label} stream {index} re-encoded to {fallback}: {fmt} cannot hold it as it is")
            else:
                notes.append(f"{label} stream {index} left out: {fmt} cannot hold it")
    return plan, notes


def _container_accepts(path: Path, kind: str, index: int, codec: str, fmt: str) -> bool:
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", file_url(path)]
    args += ["-map", f"0:{kind}:{index}", f"-c:{kind}", codec, "-t", "0", "-f", fmt, "-y", os.devnull]
    return run_ffmpeg(args).returncode == 0


