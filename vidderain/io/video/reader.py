"""Decoding a video into upright RGB frames, each with the time the source gave it.

ffmpeg decodes the first video stream to raw RGB (24 bits, or 48 for a source of
more than 8 bits per sample) on its stdout and logs each frame's presentation time
through `showinfo` on its stderr; the reader pairs the two, so every frame leaves
with its time. A read can begin at a frame found on an earlier read (`FrameMark`):
ffmpeg seeks to a keyframe before it and the frames decoded before it are dropped,
or, where seeking cannot be trusted, the clip is decoded from its start.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import NamedTuple

import numpy as np

from vidderain.errors import InputError
from vidderain.io.files import check_readable_file
from vidderain.io.video.ffmpeg import FfmpegProcess, ffmpeg_command, file_url, seconds_arg
from vidderain.io.video.probe import (
    SHOWINFO_CONFIG,
    SHOWINFO_FRAME,
    Clip,
    VideoInfo,
    check_seconds,
    has_display_matrix,
    probe_video,
)

_PTS_WAIT_S = 10.0  # how long a frame waits for its time from the log before it gets the nominal one
# Demuxers whose seeking lands on a keyframe at or before the time asked for, with the
# frames' own timestamps: a resumed read seeks in these and decodes other files from the start.
_SEEKABLE = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
# A resumed read seeks this far before the frame it wants: a keyframe's decoding time can
# precede its presentation time by the encoder's reordering delay, a few frames.
_SEEK_MARGIN_S = Fraction(1)
# Native byte order, so the samples need no swapping on their way into numpy.
_RGB48 = "rgb48le" if sys.byteorder == "little" else "rgb48be"


class TimedFrame(NamedTuple):
    """One decoded frame and its presentation time.

    Attributes:
        image: np.ndarray. RGB, height x width x 3, upright as displayed: uint8, or uint16
            for a source of more than 8 bits per sample.
        time: Fraction. Seconds from the start of the clip read.
    """

    image: np.ndarray
    time: Fraction


@dataclass(frozen=True)
class FrameMark:
    """A frame of a clip, as a reader gave it, to begin a later read of the same clip at.

    Attributes:
        index: int. Frames before it in the clip.
        time: Fraction. The time a reader gave it.
        origin: Fraction or None. The time a reader gave the clip's first frame, where the
            grid that constant-rate times are put back on begins; None if not known (a read
            of a constant-rate clip then decodes from the start).
    """

    index: int
    time: Fraction
    origin: Fraction | None = None


class VideoReader:
    """Decode a video's first video stream into upright RGB frames (uint16 from a deeper source, else uint8).

    ffmpeg applies the display rotation, so frames are `width` x `height` as displayed
    (`info.display_width` x `info.display_height`). Every decoded frame comes out
    exactly once, in order (`-fps_mode passthrough`: nothing is dropped or repeated),
    with its presentation time in seconds, counted from `start` (for constant-rate
    video, put back on the exact frame grid where the container rounded it).
    Iterating gives the frames; `timed()` gives each with its time, which is how a
    frame's time travels with it to a writer in another thread. The times are also
    appended to `timestamps`, for reading in this thread or once the frames have run
    out. With `begin`, the read starts at that frame of the clip: in MP4, MOV,
    Matroska and WebM files read whole, ffmpeg seeks to a keyframe before it and the
    frames decoded before it are dropped, and the frame found must have the time the
    mark records; anywhere else, or if it does not, the clip is decoded from its start
    and the frames before it are dropped (`sought` tells which). Either way the frames
    and their times are those a read from the start gives. A reader is iterated once; leaving
    the `with` block, or dropping the iterator, stops ffmpeg at once. If ffmpeg
    reported errors while decoding (a truncated or damaged file, of which it decodes
    what it can), `damage` holds its first error line once the frames have run out.

    Example:
        with VideoReader("in.mp4") as reader:
            for frame in reader:
                ...
        with VideoReader("in.mp4") as reader:
            for frame, time in reader.timed():
                ...

    Args:
        path: str or PathLike. The video file.
        start: float or None. Seconds to skip at the beginning. Defaults to None (none).
        duration: float or None. Seconds to read from `start`. Defaults to None (to the end).
        info: VideoInfo or None. The file's `probe_video` result, if already known.
        begin: FrameMark or None. The frame to begin at, from an earlier read of the same
            clip. Defaults to None (the first frame).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        start: float | None = None,
        duration: float | None = None,
        info: VideoInfo | None = None,
        begin: FrameMark | None = None,
    ) -> None:
        self.path = check_readable_file(path, "a video")
        start = check_seconds("start", start, allow_zero=True)
        duration = check_seconds("duration", duration, allow_zero=False)
        self.clip = Clip(info if info is not None else probe_video(self.path), start, duration)
        self.width = self.info.display_width
        self.height = self.info.display_height
        self.dtype = np.dtype(np.uint16 if self.info.bit_depth > 8 else np.uint8)
        self.time_base = self.info.time_base
        self.timestamps: list[Fraction] = []
        self.begin = begin
        self.sought: bool | None = None
        self._grid_origin: Fraction | None = None
        self._last_time: Fraction | None = None
        self._lock = threading.Lock()
        self._process: FfmpegProcess | None = None
        self._started = False
        self._closed = False
        self.damage: str | None = None

    @property
    def info(self) -> VideoInfo:
        """The probed video file."""
        return self.clip.info

    @property
    def start(self) -> float | None:
        """Seconds skipped at the beginning, or None."""
        return self.clip.start

    @property
    def duration(self) -> float | None:
        """Seconds read from `start`, or None for all the rest."""
        return self.clip.duration

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        return (frame.image for frame in self.timed())

    def timed(self) -> Iterator[TimedFrame]:
        """The frames, each with its presentation time in seconds; like iterating, once per reader."""
        if self._started:
            raise InputError(f"{self.path}: a VideoReader can be iterated only once; open a new one")
        self._started = True
        if self.begin is None or self.begin.index == 0:
            return self._decode()
        return self._from_mark(self.begin)

    def close(self) -> None:
        """Stop ffmpeg if it still runs; safe to call more than once, from any thread."""
        with self._lock:
            self._closed = True
            if self._process is not None:
                self._process.stop()

    @property
    def grid_origin(self) -> Fraction | None:
        """The measured time of the first frame read, where a constant-rate clip's time grid begins."""
        return self._grid_origin

    def _decode(self, seek_to: Fraction | None = None) -> Iterator[TimedFrame]:
        """Start ffmpeg (seeking to a keyframe at or before `seek_to`, timestamps as stored) and give its frames."""
        log = _FrameTimes(self)
        with self._lock:
            if self._closed:
                raise InputError(f"{self.path}: the reader is closed")
            self._process = FfmpegProcess(self._command(seek_to), stdout=True, on_line=log.on_line)
        return self._frames(self._process, log, stored_times=seek_to is not None)

    def _from_mark(self, mark: FrameMark) -> Iterator[TimedFrame]:
        """The frames from `mark` on: found by seeking where that can be trusted, else by decoding from the start."""
        if self._can_seek(mark):
            self._grid_origin = mark.origin
            frames = self._decode(max(mark.time - _SEEK_MARGIN_S, Fraction(0)))
            found = next((frame for frame in frames if frame.time >= mark.time), None)
            if found is not None and found.time == mark.time:
                self.sought = True
                self.timestamps[:] = [found.time]
                yield found
                yield from frames
                return
            # The seek landed after the frame, or the times differ from a read from the start.
            frames.close()
            self._grid_origin = self._last_time = None
        frames = self._decode()
        for index in range(mark.index):
            if next(frames, None) is None:
                raise InputError(f"{self.path}: ends after {index} frames, before frame {mark.index} "
                                 "where the read was to begin")
        self.sought = False
        self.timestamps.clear()
        yield from frames

    def _can_seek(self, mark: FrameMark) -> bool:
        return (self.info.container in _SEEKABLE and self.start is None and self.duration is None
                and self.info.start_time is not None
                and (mark.origin is not None or self.info.variable_frame_rate))

    def _command(self, seek_to: Fraction | None = None) -> list[str]:
        args = ffmpeg_command("info")
        if self.info.rotation and not has_display_matrix(self.path):
            # A legacy `rotate` tag alone is not applied by autorotation; restate it as
            # a display matrix (counter-clockwise) so ffmpeg turns the frames upright.
            args += ["-display_rotation", str(-self.info.rotation)]
        if seek_to is not None:
            # Timestamps as stored (-copyts), every frame from the keyframe on (-noaccurate_seek):
            # the frames before the one wanted are told apart by their exact times here.
            args += ["-copyts", "-noaccurate_seek", "-ss", seconds_arg(float(seek_to))]
        elif self.start is not None:
            args += ["-ss", seconds_arg(self.start)]
        if self.duration is not None:
            args += ["-t", seconds_arg(self.duration)]
        args += ["-i", file_url(self.path), "-map", "0:V:0", "-vf", "showinfo=checksum=0", "-fps_mode", "passthrough"]
        # ffmpeg's default YUV -> RGB conversion: `accurate_rnd+full_chroma_int` gained
        # 0.3 dB on sharp colour edges but doubled the conversion time at 720p.
        pix_fmt = _RGB48 if self.dtype == np.uint16 else "rgb24"
        args += ["-pix_fmt", pix_fmt, "-c:v", "rawvideo", "-f", "rawvideo", "pipe:1"]
        return args

    def _frames(self, process: FfmpegProcess, log: _FrameTimes, stored_times: bool = False) -> Iterator[TimedFrame]:
        frame_bytes = self.width * self.height * 3 * self.dtype.itemsize
        try:
            while True:
                frame = np.empty((self.height, self.width, 3), dtype=self.dtype)
                got = _read_into(process.stdout, memoryview(frame).cast("B"))
                if got == 0:
                    break
                if got < frame_bytes:
                    summary = process.error_summary()
                    raise InputError(f"{self.path}: ffmpeg stopped in the middle of a frame ({summary})")
                time = self._timestamp(log.next_pts(process), stored_times)
                self.timestamps.append(time)
                yield TimedFrame(frame, time)
            if process.wait() != 0:
                raise InputError(f"{self.path}: ffmpeg could not decode it ({process.error_summary()})")
            if process.logged_errors:
                # ffmpeg decodes what it can of a damaged or truncated file and says so
                # only in its log; keep that, so the caller can tell the user.
                self.damage = process.error_summary()
        finally:
            process.stop()

    def _timestamp(self, pts: int | None, stored: bool) -> Fraction:
        if pts is None:
            # No timestamp for this frame: continue at the nominal rate.
            time = self._last_time + 1 / self.info.fps if self._last_time is not None else Fraction(0)
        else:
            if stored:
                # ffmpeg reading from the start subtracts the file's start time, in whole ticks
                # rounded to the nearest (half away from zero); times kept as stored get the same.
                pts -= _round_half_away(self.info.start_time / self.time_base)
            time = self._on_frame_grid(pts * self.time_base)
        self._last_time = time
        return time

    def _on_frame_grid(self, measured: Fraction) -> Fraction:
        """Put a constant-rate frame time back on the exact frame grid it was rounded from.

        Containers store times rounded to their time base (Matroska to milliseconds:
        29.97 fps reads 0, 0.033, 0.067, ...). Within one tick of the grid the exact
        time is restored, so the output keeps the exact rational rate.
        """
        if self.info.variable_frame_rate:
            return measured
        if self._grid_origin is None:
            self._grid_origin = measured
        slot = round((measured - self._grid_origin) * self.info.fps)
        exact = self._grid_origin + slot / self.info.fps
        return exact if abs(exact - measured) <= self.time_base else measured


class _FrameTimes:
    """The frame times one ffmpeg logs through `showinfo`, in order, for the frames it writes.

    A queue, not a map by frame number: showinfo counts from 0 again when the graph is rebuilt.
    """

    def __init__(self, reader: VideoReader) -> None:
        self._reader = reader
        self._pts: deque[int | None] = deque()
        self._ready = threading.Condition()

    def on_line(self, line: str | None) -> None:
        # Runs in the stderr thread; showinfo logs a frame before ffmpeg writes it to stdout.
        if line is None:
            with self._ready:
                self._ready.notify_all()
            return
        match = SHOWINFO_FRAME.search(line)
        if match:
            with self._ready:
                self._pts.append(None if match[2] == "NOPTS" else int(match[2]))
                self._ready.notify_all()
            return
        config = SHOWINFO_CONFIG.search(line)
        if config and int(config[1]) and int(config[2]):
            self._reader.time_base = Fraction(int(config[1]), int(config[2]))

    def next_pts(self, process: FfmpegProcess) -> int | None:
        """The next frame's timestamp in `time_base` units; None if ffmpeg logged none for it."""
        with self._ready:
            self._ready.wait_for(lambda: self._pts or process.log_done, timeout=_PTS_WAIT_S)
            return self._pts.popleft() if self._pts else None


def _round_half_away(value: Fraction) -> int:
    """`value` rounded to the nearest integer, halves away from zero (ffmpeg's av_rescale_q)."""
    magnitude = int(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def _read_into(stream, buffer: memoryview) -> int:
    """Fill `buffer` from `stream`; return the bytes read (fewer only at end of stream)."""
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(buffer[filled:])
        if not got:
            break
        filled += got
    return filled

