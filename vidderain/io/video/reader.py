"""Decoding a video into upright RGB frames, each with the time the source gave it.

ffmpeg decodes the first video stream to raw RGB24 on its stdout and logs each
frame's presentation time through `showinfo` on its stderr; the reader pairs the
two, so every frame leaves with its time.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
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


class TimedFrame(NamedTuple):
    """One decoded frame and its presentation time.

    Attributes:
        image: np.ndarray. RGB uint8, height x width x 3, upright as displayed.
        time: Fraction. Seconds from the start of the clip read.
    """

    image: np.ndarray
    time: Fraction


class VideoReader:
    """Decode a video's first video stream into upright RGB uint8 frames.

    ffmpeg applies the display rotation, so frames are `width` x `height` as displayed
    (`info.display_width` x `info.display_height`). Every decoded frame comes out
    exactly once, in order (`-fps_mode passthrough`: nothing is dropped or repeated),
    with its presentation time in seconds, counted from `start` (for constant-rate
    video, put back on the exact frame grid where the container rounded it).
    Iterating gives the frames; `timed()` gives each with its time, which is how a
    frame's time travels with it to a writer in another thread. The times are also
    appended to `timestamps`, for reading in this thread or once the frames have run
    out. A reader is iterated once; leaving
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
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        start: float | None = None,
        duration: float | None = None,
        info: VideoInfo | None = None,
    ) -> None:
        self.path = check_readable_file(path, "a video")
        start = check_seconds("start", start, allow_zero=True)
        duration = check_seconds("duration", duration, allow_zero=False)
        self.clip = Clip(info if info is not None else probe_video(self.path), start, duration)
        self.width = self.info.display_width
        self.height = self.info.display_height
        self.time_base = self.info.time_base
        self.timestamps: list[Fraction] = []
        # Frame times logged by showinfo and not yet matched to a frame. A queue, not a
        # map by frame number: showinfo counts from 0 again when the graph is rebuilt.
        self._pts: deque[int | None] = deque()
        self._grid_origin: Fraction | None = None
        self._pts_ready = threading.Condition()
        self._process: FfmpegProcess | None = None
        self._started = False
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
        self._process = FfmpegProcess(self._command(), stdout=True, on_line=self._on_log_line)
        return self._frames(self._process)

    def close(self) -> None:
        """Stop ffmpeg if it still runs; safe to call more than once."""
        if self._process is not None:
            self._process.stop()

    def _command(self) -> list[str]:
        args = ffmpeg_command("info")
        if self.info.rotation and not has_display_matrix(self.path):
            # A legacy `rotate` tag alone is not applied by autorotation; restate it as
            # a display matrix (counter-clockwise) so ffmpeg turns the frames upright.
            args += ["-display_rotation", str(-self.info.rotation)]
        if self.start is not None:
            args += ["-ss", seconds_arg(self.start)]
        if self.duration is not None:
            args += ["-t", seconds_arg(self.duration)]
        args += ["-i", file_url(self.path), "-map", "0:V:0", "-vf", "showinfo=checksum=0", "-fps_mode", "passthrough"]
        # ffmpeg's default YUV -> RGB conversion: `accurate_rnd+full_chroma_int` gained
        # 0.3 dB on sharp colour edges but doubled the conversion time at 720p.
        args += ["-pix_fmt", "rgb24", "-c:v", "rawvideo", "-f", "rawvideo", "pipe:1"]
        return args

    def _on_log_line(self, line: str | None) -> None:
        # Runs in the stderr thread; showinfo logs a frame before ffmpeg writes it to stdout.
        if line is None:
            with self._pts_ready:
                self._pts_ready.notify_all()
            return
        match = SHOWINFO_FRAME.search(line)
        if match:
            with self._pts_ready:
                self._pts.append(None if match[2] == "NOPTS" else int(match[2]))
                self._pts_ready.notify_all()
            return
        config = SHOWINFO_CONFIG.search(line)
        if config and int(config[1]) and int(config[2]):
            self.time_base = Fraction(int(config[1]), int(config[2]))

    def _frames(self, process: FfmpegProcess) -> Iterator[TimedFrame]:
        frame_bytes = self.width * self.height * 3
        try:
            while True:
                frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
                got = _read_into(process.stdout, memoryview(frame).cast("B"))
                if got == 0:
                    break
                if got < frame_bytes:
                    summary = process.error_summary()
                    raise InputError(f"{self.path}: ffmpeg stopped in the middle of a frame ({summary})")
                time = self._timestamp(process)
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

    def _timestamp(self, process: FfmpegProcess) -> Fraction:
        with self._pts_ready:
            self._pts_ready.wait_for(lambda: self._pts or process.log_done, timeout=_PTS_WAIT_S)
            pts = self._pts.popleft() if self._pts else None
        if pts is None:
            # No timestamp for this frame: continue at the nominal rate.
            return self.timestamps[-1] + 1 / self.info.fps if self.timestamps else Fraction(0)
        return self._on_frame_grid(pts * self.time_base)

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


def _read_into(stream, buffer: memoryview) -> int:
    """Fill `buffer` from `stream`; return the bytes read (fewer only at end of stream)."""
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(buffer[filled:])
        if not got:
            break
        filled += got
    return filled

