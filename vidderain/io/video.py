"""Read and write videos through the ffmpeg binary that imageio-ffmpeg ships.

Frames cross this module as RGB uint8 arrays, HxWx3, **upright as displayed**: the
reader lets ffmpeg apply the display rotation (autorotation) and the writer stores
upright frames with no rotation flag. Upright frames matter to the network, which
learnt rain falling down the picture, and an upright file plays the same way up in
every player, including those that ignore rotation flags.

Timing is kept frame for frame. The reader records each frame's presentation time
(`VideoReader.timestamps`, read from ffmpeg's `showinfo` filter) and the writer
hands frames to ffmpeg inside a small Matroska stream that carries those times,
so constant-rate sources keep their exact rational rate (30000/1001 stays
30000/1001 in MP4 and MOV) and variable-rate sources keep their irregular timing,
and the audio, copied from the source, stays in sync either way.

ffmpeg is always run with an argument list, never through a shell; its stderr is
drained by a thread so its pipe never fills; every process is stopped and reaped in
a `finally`.
"""

from __future__ import annotations

import functools
import math
import os
import re
import signal
import struct
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import imageio_ffmpeg
import numpy as np

from vidderain.errors import DiskFullError, InputError
from vidderain.io.files import atomic_output, is_out_of_space, is_partial
from vidderain.io.images import is_image_path

# Output suffix -> ffmpeg muxer.
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
VIDEO_SUFFIXES = frozenset(VIDEO_FORMATS)

# When the source's audio cannot be copied into the output container, re-encode it to this.
_AUDIO_FALLBACK = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus", "avi": "libmp3lame"}
# Text subtitles that cannot be copied are converted to this; None: the container holds none.
_SUBTITLE_FALLBACK = {"mp4": "mov_text", "mov": "mov_text", "matroska": "srt", "webm": "webvtt", "avi": None}
_WEBM_VIDEO_CODECS = frozenset({"vp8", "vp9", "av1"})
_X26X_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
)
# Encoders that store odd frame sizes with subsampled chroma (they round the chroma planes up).
_ODD_SIZE_SUBSAMPLED_OK = frozenset({"libaom-av1", "libsvtav1", "librav1e", "libvpx", "libvpx-vp9"})
# libvpx only runs in constant-quality mode with a zero target bitrate.
_NEEDS_ZERO_BITRATE_FOR_CRF = frozenset({"libvpx", "libvpx-vp9"})
_NS_PER_SECOND = 1_000_000_000
_MAX_TIMESCALE = 2**31 - 1
_STOP_TIMEOUT_S = 5.0
_PTS_WAIT_S = 10.0


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg binary bundled with imageio-ffmpeg."""
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise InputError(f"no ffmpeg binary found ({exc})") from None


def is_video_path(path: str | os.PathLike) -> bool:
    """Return True if `path` has the suffix of a container vidderain writes."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


# ---------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as far as vidderain needs to know.

    Attributes:
        path: Path. The file described.
        width: int. Stored frame width in pixels, before rotation.
        height: int. Stored frame height in pixels, before rotation.
        fps: Fraction. Exact frame rate of the video stream as ffmpeg reads it
            (`r_frame_rate`), e.g. Fraction(30000, 1001). For variable-rate video this
            is the base rate, not the average.
        time_base: Fraction. Unit of the stream's timestamps, e.g. Fraction(1, 30000).
        frame_count: int or None. Frames in the video stream (packets counted), None if not counted.
        duration: float or None. Seconds the video stream lasts (container duration if not counted).
        rotation: int. Clockwise display rotation in degrees: 0, 90, 180 or 270, from the
            display matrix or the legacy `rotate` tag (90 = a phone held upright).
        audio_streams: int. Number of audio streams.
        subtitle_streams: int. Number of subtitle streams.
        codec: str. Video codec name, e.g. "h264".
        pix_fmt: str. Pixel format as decoded, e.g. "yuv420p".
        color_range: str or None. "tv" (limited) or "pc" (full), None if untagged.
        color_space: str or None. YUV matrix, e.g. "bt709", None if untagged.
        color_primaries: str or None. e.g. "bt709", None if untagged.
        color_transfer: str or None. e.g. "bt709", "smpte2084", None if untagged.
        sample_aspect_ratio: Fraction. Pixel shape as stored; 1 for square pixels.
        variable_frame_rate: bool. True if frame intervals vary (best effort).
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frame_count: int | None
    duration: float | None
    rotation: int
    audio_streams: int
    subtitle_streams: int
    codec: str
    pix_fmt: str
    color_range: str | None
    color_space: str | None
    color_primaries: str | None
    color_transfer: str | None
    sample_aspect_ratio: Fraction
    variable_frame_rate: bool

    @property
    def display_width(self) -> int:
        """Width of the picture as displayed, after rotation."""
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        """Height of the picture as displayed, after rotation."""
        return self.width if self.rotation in (90, 270) else self.height

    @property
    def display_sample_aspect_ratio(self) -> Fraction:
        """Pixel shape of upright frames (a quarter turn inverts it)."""
        return 1 / self.sample_aspect_ratio if self.rotation in (90, 270) else self.sample_aspect_ratio


def probe_video(path: str | os.PathLike, *, count_frames: bool = True) -> VideoInfo:
    """Describe the first video stream of a file.

    ffmpeg decodes one frame (through `showinfo`, which prints the exact rational
    rate and the colour tags) and, with `count_frames`, copies the whole video
    stream to `framecrc` to count frames and check the intervals; that pass reads
    the file but decodes nothing.

    Args:
        path: str or PathLike. The video file.
        count_frames: bool. Count frames and detect variable frame rate. Defaults to True.

    Returns:
        A VideoInfo.

    Raises:
        InputError: the file is missing, not a video ffmpeg can read, or has no video stream.
    """
    path = _existing_file(path)
    lines, framecrc = _run_probe(path, count_frames)
    header = _parse_input_header(lines)
    if header is None:
        raise InputError(f"{path}: has no video stream")
    frame = _parse_first_frame(lines)
    if frame is None:
        raise InputError(f"{path}: no video frame could be decoded ({_error_summary([], lines)})")
    # ffmpeg itself assumes 25 fps for a stream that states no rate.
    fps = frame["fps"] or header["fps"] or Fraction(25)
    frame_count, duration, variable = None, header["duration"], header["variable_guess"]
    packets = _parse_framecrc(framecrc) if count_frames else None
    if packets is not None:
        frame_count, packet_duration, variable = _summarise_packets(*packets, fps)
        duration = packet_duration if packet_duration is not None else duration
    width, height = _stored_size(header, frame)
    time_base = frame["time_base"] or Fraction(1, _NS_PER_SECOND)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        time_base=time_base,
        frame_count=frame_count,
        duration=duration,
        rotation=header["rotation"],
        audio_streams=header["audio_streams"],
        subtitle_streams=header["subtitle_streams"],
        codec=header["codec"],
        pix_fmt=header["pix_fmt"],
        color_range=frame["color_range"],
        color_space=frame["color_space"],
        color_primaries=frame["color_primaries"],
        color_transfer=frame["color_transfer"],
        sample_aspect_ratio=header["sample_aspect_ratio"],
        variable_frame_rate=variable,
    )


def _run_probe(path: Path, count_frames: bool) -> tuple[list[str], str]:
    """Run ffmpeg's probe pass; return its log lines and the `framecrc` packet list."""
    args = [*_ffmpeg_base("info"), "-i", _url(path), "-map", "0:V:0", "-frames:v", "1"]
    args += ["-vf", "showinfo=checksum=0", "-f", "null", "-"]
    if count_frames:
        args += ["-map", "0:V:0", "-c", "copy", "-f", "framecrc", "pipe:1"]
    result = _run(args)
    lines, errors = _parse_log(result.stderr)
    if result.returncode != 0:
        if any("matches no streams" in line for line in lines):
            raise InputError(f"{path}: has no video stream")
        raise InputError(f"{path}: not a video ffmpeg can read ({_error_summary(errors, lines)})")
    return lines, result.stdout


def _stored_size(header: dict, frame: dict) -> tuple[int, int]:
    """Frame width and height before rotation, as decoded."""
    if frame["size"] is None:
        return header["width"], header["height"]
    # The decoded size is the truth (a container can crop); showinfo saw it after
    # autorotation, which only a display matrix triggers.
    width, height = frame["size"]
    if header["display_matrix"] and header["rotation"] in (90, 270):
        return height, width
    return width, height


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a video")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    return path


_STREAM_RE = re.compile(r"^\s*Stream #\d+:(\d+)\S*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_SIZE_RE = re.compile(r"^(\d+)x(\d+)")
_SAR_RE = re.compile(r"SAR (\d+):(\d+)")
_MATRIX_RE = re.compile(r"display ?matrix: rotation of (-?[\d.]+) degrees", re.IGNORECASE)
_ROTATE_TAG_RE = re.compile(r"^\s*rotate\s*:\s*(-?\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
_RATE_RE = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")


def _parse_input_header(lines: list[str]) -> dict | None:
    """Read the stream list ffmpeg prints for input #0; None if it has no video stream."""
    section = _input_section(lines)
    streams = _stream_blocks(section)
    video = next((s for s in streams if s[0] == "Video" and "(attached pic)" not in s[1][0]), None)
    if video is None:
        return None
    fields = _split_top_level(video[1][0].split(": Video: ", 1)[1])
    codec = fields[0].split(" ", 1)[0]
    pix_fmt = fields[1].split("(", 1)[0].strip() if len(fields) > 1 else "unknown"
    size = next((m for f in fields[1:] if (m := _SIZE_RE.match(f.strip()))), None)
    if size is None:
        return None
    sar = _SAR_RE.search(video[1][0])
    sample_aspect_ratio = Fraction(int(sar[1]), int(sar[2])) if sar and int(sar[1]) and int(sar[2]) else Fraction(1)
    rates = {kind: _rate_from_text(value, k) for value, k, kind in _RATE_RE.findall(video[1][0])}
    duration = next((m for line in section if (m := _DURATION_RE.search(line))), None)
    return {
        "codec": codec,
        "pix_fmt": pix_fmt,
        "width": int(size[1]),
        "height": int(size[2]),
        "sample_aspect_ratio": sample_aspect_ratio,
        "rotation": _parse_rotation(video[1]),
        "display_matrix": any(_MATRIX_RE.search(line) for line in video[1]),
        "fps": rates.get("tbr") or rates.get("fps"),
        # Without a packet scan, differing average and base rates are the best hint of VFR.
        "variable_guess": bool(rates.get("fps") and rates.get("tbr") and rates["fps"] != rates["tbr"]),
        "duration": int(duration[1]) * 3600 + int(duration[2]) * 60 + float(duration[3]) if duration else None,
        "audio_streams": sum(1 for kind, _ in streams if kind == "Audio"),
        "subtitle_streams": sum(1 for kind, _ in streams if kind == "Subtitle"),
    }


def _input_section(lines: list[str]) -> list[str]:
    start = next((i for i, line in enumerate(lines) if line.startswith("Input #0")), len(lines))
    section = []
    for line in lines[start + 1 :]:
        if not line.startswith(" "):
            break
        section.append(line)
    return section


def _stream_blocks(section: list[str]) -> list[tuple[str, list[str]]]:
    """Group the input section into (kind, [stream line, its metadata and side-data lines])."""
    blocks: list[tuple[str, list[str]]] = []
    for line in section:
        match = _STREAM_RE.match(line)
        if match:
            blocks.append((match[2], [line]))
        elif blocks and len(line) - len(line.lstrip()) > 2:
            blocks[-1][1].append(line)
    return blocks


def _split_top_level(text: str) -> list[str]:
    """Split ffmpeg's stream description at commas outside parentheses and brackets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return parts


def _parse_rotation(block: list[str]) -> int:
    """Clockwise display rotation of a video stream, snapped to quarter turns."""
    for line in block:
        match = _MATRIX_RE.search(line)
        if match:
            # The display matrix angle is counter-clockwise; the legacy tag is clockwise.
            return _quarter_turns(-float(match[1]))
    for line in block:
        match = _ROTATE_TAG_RE.match(line)
        if match:
            return _quarter_turns(float(match[1]))
    return 0


def _quarter_turns(degrees: float) -> int:
    nearest = round(degrees / 90) * 90
    # ffmpeg's autorotation ignores angles more than 2 degrees off a quarter turn; so do we.
    if abs(degrees - nearest) > 2:
        return 0
    return int(nearest) % 360


def _rate_from_text(value: str, kilo: str) -> Fraction | None:
    """Turn a rounded rate ffmpeg printed ("29.97", "1k") into the rational it stands for."""
    rate = float(value) * (1000 if kilo else 1)
    if rate <= 0:
        return None
    # NTSC-style rates print as 23.98, 29.97, 59.94: they are n*1000/1001.
    ntsc = round(rate * 1.001)
    if abs(rate - ntsc / 1.001) < 0.006 and abs(rate - round(rate)) > 0.006:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(value).limit_denominator(1000) * (1000 if kilo else 1)


_CONFIG_RE = re.compile(r"config in time_base: (\d+)/(\d+), frame_rate: (\d+)/(\d+)")
_FRAME_RE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+|NOPTS)")
_FRAME_SIZE_RE = re.compile(r" s:(\d+)x(\d+) ")
_COLOR_RE = re.compile(r"color_range:(\S+) color_space:(\S+) color_primaries:(\S+) color_trc:(\S+)")


def _parse_first_frame(lines: list[str]) -> dict | None:
    """Read time base, exact frame rate and colour tags from `showinfo`'s first lines."""
    config = next((m for line in lines if (m := _CONFIG_RE.search(line))), None)
    first = next((line for line in lines if _FRAME_RE.search(line)), None)
    if first is None:
        return None
    size = _FRAME_SIZE_RE.search(first)
    color = next((m for line in lines if (m := _COLOR_RE.search(line))), None)
    tags = [None if not color or color[i] in ("unknown", "unspecified", "reserved") else color[i] for i in range(1, 5)]
    time_base = fps = None
    if config and int(config[1]) and int(config[2]):
        time_base = Fraction(int(config[1]), int(config[2]))
    if config and int(config[3]) and int(config[4]):
        fps = Fraction(int(config[3]), int(config[4]))
    return {
        "time_base": time_base,
        "fps": fps,
        "color_range": tags[0],
        "color_space": tags[1],
        "color_primaries": tags[2],
        "color_transfer": tags[3],
        "size": (int(size[1]), int(size[2])) if size else None,
    }


def _parse_framecrc(text: str) -> tuple[Fraction, list[int], list[int]] | None:
    """Time base, presentation times and durations of the packets `framecrc` listed."""
    time_base = None
    pts: list[int] = []
    durations: list[int] = []
    for line in text.splitlines():
        if line.startswith("#tb 0:"):
            num, den = line.split(":", 1)[1].strip().split("/")
            time_base = Fraction(int(num), int(den))
        elif line and not line.startswith("#"):
            fields = [f.strip() for f in line.split(",")]
            flags = next((int(f[2:], 16) for f in fields if f.startswith("F=")), 0)
            # Packets flagged discard (0x4) lie before an edit-list start; they are never shown.
            if len(fields) >= 4 and not flags & 0x4:
                pts.append(int(fields[2]))
                durations.append(int(fields[3]))
    if time_base is None:
        return None
    return time_base, pts, durations


def _summarise_packets(
    time_base: Fraction, pts: list[int], durations: list[int], fps: Fraction
) -> tuple[int, float | None, bool]:
    """Frame count, duration in seconds and whether intervals vary, from packet timestamps."""
    valid = sorted(p for p in pts if p > -(2**62))  # drop AV_NOPTS_VALUE
    if len(valid) < 2:
        return len(pts), None, False
    intervals = [b - a for a, b in zip(valid, valid[1:])]
    expected = 1 / (fps * time_base)
    # A timestamp rounded to the time base can be off by one tick without the rate varying.
    variable = any(abs(step - expected) > 1 for step in intervals)
    last = max(range(len(pts)), key=lambda i: pts[i])
    last_duration = max(durations[last], 0) or intervals[-1]
    duration = float((valid[-1] + last_duration - valid[0]) * time_base)
    return len(pts), duration, variable


# ---------------------------------------------------------------------------- reading


class VideoReader:
    """Decode a video's first video stream into upright RGB uint8 frames.

    ffmpeg applies the display rotation, so frames are `width` x `height` as displayed
    (`info.display_width` x `info.display_height`). Every decoded frame comes out
    exactly once, in order (`-fps_mode passthrough`: nothing is dropped or repeated),
    and its presentation time in seconds, counted from `start`, is appended to
    `timestamps` as it is yielded (for constant-rate video, put back on the exact
    frame grid where the container rounded it). A reader is iterated once; leaving
    the `with` block, or dropping the iterator, stops ffmpeg at once. If ffmpeg
    reported errors while decoding (a truncated or damaged file, of which it decodes
    what it can), `damage` holds its first error line once the frames have run out.

    Example:
        with VideoReader("in.mp4") as reader:
            for frame in reader:
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
        self.path = _existing_file(path)
        self.start = _check_seconds("start", start, allow_zero=True)
        self.duration = _check_seconds("duration", duration, allow_zero=False)
        self.info = info if info is not None else probe_video(self.path)
        self.width = self.info.display_width
        self.height = self.info.display_height
        self.time_base = self.info.time_base
        self.timestamps: list[Fraction] = []
        # Frame times logged by showinfo and not yet matched to a frame. A queue, not a
        # map by frame number: showinfo counts from 0 again when the graph is rebuilt.
        self._pts: deque[int | None] = deque()
        self._grid_origin: Fraction | None = None
        self._pts_ready = threading.Condition()
        self._process: _FfmpegProcess | None = None
        self._started = False
        self.damage: str | None = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._started:
            raise InputError(f"{self.path}: a VideoReader can be iterated only once; open a new one")
        self._started = True
        self._process = _FfmpegProcess(self._command(), stdout=True, on_line=self._on_log_line)
        return self._frames(self._process)

    def close(self) -> None:
        """Stop ffmpeg if it still runs; safe to call more than once."""
        if self._process is not None:
            self._process.stop()

    def _command(self) -> list[str]:
        args = _ffmpeg_base("info")
        if self.info.rotation and not self._has_display_matrix():
            # A legacy `rotate` tag alone is not applied by autorotation; restate it as
            # a display matrix (counter-clockwise) so ffmpeg turns the frames upright.
            args += ["-display_rotation", str(-self.info.rotation)]
        if self.start is not None:
            args += ["-ss", _seconds_arg(self.start)]
        if self.duration is not None:
            args += ["-t", _seconds_arg(self.duration)]
        args += ["-i", _url(self.path), "-map", "0:V:0", "-vf", "showinfo=checksum=0", "-fps_mode", "passthrough"]
        # ffmpeg's default YUV -> RGB conversion: `accurate_rnd+full_chroma_int` gained
        # 0.3 dB on sharp colour edges but doubled the conversion time at 720p.
        args += ["-pix_fmt", "rgb24", "-c:v", "rawvideo", "-f", "rawvideo", "pipe:1"]
        return args

    def _has_display_matrix(self) -> bool:
        result = _run([*_ffmpeg_base("info"), "-i", _url(self.path)])
        return any(_MATRIX_RE.search(line) for line in _parse_log(result.stderr)[0])

    def _on_log_line(self, line: str | None) -> None:
        # Runs in the stderr thread; showinfo logs a frame before ffmpeg writes it to stdout.
        if line is None:
            with self._pts_ready:
                self._pts_ready.notify_all()
            return
        match = _FRAME_RE.search(line)
        if match:
            with self._pts_ready:
                self._pts.append(None if match[2] == "NOPTS" else int(match[2]))
                self._pts_ready.notify_all()
            return
        config = _CONFIG_RE.search(line)
        if config and int(config[1]) and int(config[2]):
            self.time_base = Fraction(int(config[1]), int(config[2]))

    def _frames(self, process: _FfmpegProcess) -> Iterator[np.ndarray]:
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
                self.timestamps.append(self._timestamp(process))
                yield frame
            if process.wait() != 0:
                raise InputError(f"{self.path}: ffmpeg could not decode it ({process.error_summary()})")
            if process.logged_errors:
                # ffmpeg decodes what it can of a damaged or truncated file and says so
                # only in its log; keep that, so the caller can tell the user.
                self.damage = process.error_summary()
        finally:
            process.stop()

    def _timestamp(self, process: _FfmpegProcess) -> Fraction:
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


def _check_seconds(name: str, value: float | None, *, allow_zero: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise InputError(f"{name} must be a number of seconds. Received: {name}={value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds. Received: {name}={value!r}")
    return float(value)


def _seconds_arg(seconds: float) -> str:
    return f"{seconds:.6f}"


def _read_into(stream, buffer: memoryview) -> int:
    """Fill `buffer` from `stream`; return the bytes read (fewer only at end of stream)."""
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(buffer[filled:])
        if not got:
            break
        filled += got
    return filled


# ---------------------------------------------------------------------------- encoding settings


@dataclass(frozen=True)
class EncoderSettings:
    """How the video stream of an output file is encoded.

    Attributes:
        codec: str. ffmpeg encoder name: "libx264", "libx265", "libsvtav1",
            "libaom-av1", "libvpx-vp9", ... Defaults to "libx264" (plays everywhere).
        crf: int or None. Constant rate factor: lower is better, 0 is lossless for
            libx264/libx265 (with `pix_fmt` "yuv444p" the colour round trip then
            costs at most 2 levels). Ignored by encoders without a crf. None: the
            encoder's default. Defaults to 18 (visually lossless for H.264).
        preset: str or None. Speed/size trade-off for encoders that have one:
            "ultrafast" ... "placebo" for x264/x265, "0" ... "13" for SVT-AV1. None: the
            encoder's default. Defaults to "medium".
        pix_fmt: str. Stored pixel format. Defaults to "yuv420p", the one every player
            decodes. A frame with an odd side cannot be stored in 4:2:0 by most
            encoders; `for_frame_size` then switches to the 4:4:4 variant.
    """

    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str = "yuv420p"

    def check(self) -> None:
        """Raise InputError naming the first setting this ffmpeg cannot use."""
        if not isinstance(self.codec, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.codec):
            raise InputError(f"codec must be an ffmpeg encoder name. Received: codec={self.codec!r}")
        encoder = _encoders().get(self.codec)
        if encoder is None or encoder[0] != "V":
            raise InputError(f"ffmpeg has no video encoder {self.codec!r} (see `ffmpeg -encoders`)")
        if self.crf is not None:
            if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 63:
                raise InputError(f"crf must be an integer from 0 to 63. Received: crf={self.crf!r}")
            if self.codec in ("libx264", "libx264rgb", "libx265") and self.crf > 51:
                raise InputError(f"{self.codec} takes crf from 0 to 51. Received: crf={self.crf}")
        if self.preset is not None:
            if not isinstance(self.preset, str) or not re.fullmatch(r"-?[A-Za-z0-9_]+", self.preset):
                raise InputError(f"preset must be a name or number. Received: preset={self.preset!r}")
            if self.codec in ("libx264", "libx264rgb", "libx265") and self.preset not in _X26X_PRESETS:
                raise InputError(
                    f"{self.codec} has no preset {self.preset!r}; use one of {', '.join(_X26X_PRESETS)}"
                )
            if self.codec == "libsvtav1" and not re.fullmatch(r"-?\d+", self.preset):
                raise InputError(f"libsvtav1 takes a numeric preset (-1 to 13). Received: preset={self.preset!r}")
        if not isinstance(self.pix_fmt, str) or self.pix_fmt not in _pixel_formats():
            raise InputError(f"ffmpeg has no pixel format {self.pix_fmt!r} (see `ffmpeg -pix_fmts`)")
        supported = _encoder_help(self.codec).pix_fmts
        if supported and self.pix_fmt not in supported:
            raise InputError(f"{self.codec} cannot store pix_fmt {self.pix_fmt!r}; it takes {', '.join(supported)}")

    def for_frame_size(self, width: int, height: int) -> tuple[EncoderSettings, list[str]]:
        """Return settings that can store `width` x `height` frames at their exact size.

        4:2:0 and 4:2:2 halve the chroma planes, so H.264, H.265 and most other
        encoders refuse odd sides; padding would change the displayed size and
        cropping or scaling would lose pixels. Those encoders switch to 4:4:4 (H.264
        High 4:4:4, which desktop players decode, unlike some browsers and phones);
        AV1 and VP9 encoders keep 4:2:0, as they store odd sizes themselves.

        Args:
            width: int. Frame width in pixels.
            height: int. Frame height in pixels.

        Returns:
            The settings to use and notes (one line each) on what was changed and why.

        Raises:
            InputError: the encoder has no pixel format that keeps this size.
        """
        halves_width, halves_height = _chroma_subsampling(self.pix_fmt)
        odd = (halves_width and width % 2) or (halves_height and height % 2)
        if not odd or self.codec in _ODD_SIZE_SUBSAMPLED_OK:
            return self, []
        full = _full_chroma_variant(self.pix_fmt)
        supported = _encoder_help(self.codec).pix_fmts
        if supported and full not in supported:
            raise InputError(
                f"{self.codec} cannot store {width}x{height} frames: odd sizes need full chroma "
                f"({full}), which it lacks; use libx264, libsvtav1 or libvpx-vp9"
            )
        note = f"pix_fmt {self.pix_fmt} -> {full}: {width}x{height} has an odd side, which {self.pix_fmt} cannot store"
        return replace(self, pix_fmt=full), [note]


def _chroma_subsampling(pix_fmt: str) -> tuple[bool, bool]:
    """Whether `pix_fmt` halves the chroma width and height."""
    if pix_fmt.startswith(("nv12", "nv21", "p010", "p012", "p016")):
        return True, True
    # J:a:b notation: a < 4 thins chroma across, b = 0 thins it down too (4:2:0, 4:4:0, 4:1:0).
    match = re.search(r"4([0-4])([0-4])", pix_fmt)
    if not match:
        return False, False
    return match[1] != "4", match[2] == "0"


def _full_chroma_variant(pix_fmt: str) -> str:
    if pix_fmt.startswith(("nv12", "nv21")):
        return "yuv444p"
    if pix_fmt.startswith(("p010", "p012", "p016")):
        return "yuv444p" + pix_fmt[1:3] + "le"
    return re.sub(r"4[0-4][0-4]", "444", pix_fmt, count=1)


@dataclass(frozen=True)
class _EncoderHelp:
    pix_fmts: tuple[str, ...]
    options: frozenset[str]


@functools.lru_cache(maxsize=None)
def _encoders() -> dict[str, tuple[str, str]]:
    """Encoder name -> (kind letter "V"/"A"/"S", codec id) for this ffmpeg build."""
    text = _run([ffmpeg_exe(), "-hide_banner", "-encoders"]).stdout
    encoders = {}
    for line in text.split("------", 1)[-1].splitlines():
        fields = line.split(None, 2)
        if len(fields) >= 2 and len(fields[0]) == 6:
            codec = re.search(r"\(codec (\S+)\)", line)
            encoders[fields[1]] = (fields[0][0], codec[1] if codec else fields[1])
    return encoders


@functools.lru_cache(maxsize=None)
def _encoder_help(codec: str) -> _EncoderHelp:
    text = _run([ffmpeg_exe(), "-hide_banner", "-h", f"encoder={codec}"]).stdout
    formats = re.search(r"Supported pixel formats: (.*)", text)
    options = frozenset(re.findall(r"^\s+-(\w+)\s", text, re.MULTILINE))
    return _EncoderHelp(tuple(formats[1].split()) if formats else (), options)


@functools.lru_cache(maxsize=1)
def _pixel_formats() -> frozenset[str]:
    text = _run([ffmpeg_exe(), "-hide_banner", "-pix_fmts"]).stdout
    return frozenset(m[1] for line in text.split("-----", 1)[-1].splitlines() if (m := re.match(r"\S{5} (\S+)", line)))


# ---------------------------------------------------------------------------- writing


class VideoWriter:
    """Encode RGB uint8 frames into a video file, written atomically.

    Frames go to ffmpeg inside a Matroska stream that carries each frame's time, so
    the output keeps the source's timing exactly: its rational rate for constant-rate
    video (stored exactly in MP4/MOV; Matroska/WebM keep millisecond times, which
    ffmpeg reads back as the nearest rate it can express) and every interval for
    variable-rate video. With a `source`, its audio and subtitle streams are all
    copied over, trimmed by the same `start` and `duration` as the video so they stay
    in sync, and its colour tags and metadata are kept. A stream the container cannot
    hold as it is gets re-encoded (audio: AAC for MP4/MOV/MKV, Opus for WebM, MP3 for
    AVI; text subtitles: mov_text for MP4/MOV, WebVTT for WebM) or, failing that,
    left out; `notes` says which.

    The file appears under `path` only when `close` succeeds (a `with` block without
    an exception); otherwise nothing is left, not even the temporary file.

    Example:
        with VideoReader("in.mp4") as reader, VideoWriter.matching("out.mp4", reader) as writer:
            for frame in reader:
                writer.write(frame)

    Args:
        path: str or PathLike. The output; its suffix (.mp4, .m4v, .mov, .mkv, .webm, .avi) picks the container.
        width: int. Frame width in pixels.
        height: int. Frame height in pixels.
        fps: Fraction, int or str. Nominal frame rate, e.g. Fraction(30000, 1001) or "30000/1001".
        settings: EncoderSettings. Codec, quality, preset and pixel format.
        source: VideoInfo or None. The video the frames came from: audio, subtitles,
            colour tags, metadata and time base are taken from it. Defaults to None.
        start: float or None. Seconds skipped at the start of `source` (as given to the reader).
        duration: float or None. Seconds of `source` used (as given to the reader).
        timestamps: sequence of Fraction or None. Presentation time in seconds of
            frame i is `timestamps[i]` when `write` gets no `pts`; it may keep growing
            while frames are written (`VideoReader.timestamps`). Frames past its end,
            or all frames without it, follow each other at `fps`.
        sample_aspect_ratio: Fraction. Pixel shape of the frames. Defaults to 1 (square).

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
        settings: EncoderSettings = EncoderSettings(),
        source: VideoInfo | None = None,
        start: float | None = None,
        duration: float | None = None,
        timestamps: Sequence[Fraction] | None = None,
        sample_aspect_ratio: Fraction = Fraction(1),
    ) -> None:
        self.path = Path(path)
        self.width, self.height = _check_size(width, height)
        self.fps = _check_fps(fps)
        start = _check_seconds("start", start, allow_zero=True)
        duration = _check_seconds("duration", duration, allow_zero=False)
        container = _container_for(self.path, source)
        settings.check()
        self.settings, self.notes = settings.for_frame_size(self.width, self.height)
        _check_container_codec(self.path, container, self.settings.codec)
        tick = _output_tick(self.fps, source.time_base if source else None)
        streams, stream_notes = _plan_source_streams(source, container) if source else ([], [])
        video_args, video_notes = _video_args(self.settings, source, Fraction(sample_aspect_ratio), tick)
        self.notes += stream_notes + video_notes
        args = _writer_command(source, start, duration, streams, video_args, container)
        self._timestamps = timestamps
        self._tick_ns = math.ceil(_NS_PER_SECOND * tick)
        self._lock = threading.RLock()
        self._count = 0
        self._last_pts: Fraction | None = None
        self._last_ns: int | None = None
        self._last_step_ns = round(_NS_PER_SECOND / self.fps)
        self._pending: tuple[int, np.ndarray] | None = None
        self._closed = False
        self._process: _FfmpegProcess | None = None
        self._atomic = atomic_output(self.path)
        try:
            tmp = self._atomic.__enter__()
        except OSError as exc:
            raise _write_error(self.path, exc.strerror or str(exc), is_out_of_space(exc)) from None
        try:
            self._process = _FfmpegProcess([*args, _url(tmp)], stdin=True)
            self._send(_mkv_header(self.width, self.height, self._last_step_ns))
        except BaseException as exc:
            self._abort(exc)
            raise

    @classmethod
    def matching(
        cls, path: str | os.PathLike, reader: VideoReader, settings: EncoderSettings = EncoderSettings()
    ) -> VideoWriter:
        """Return a writer for frames of `reader`'s size, timing, audio and colour.

        Frames written get the times the reader recorded for them, so write them in
        the order they were read, one output frame per input frame.

        Args:
            path: str or PathLike. The output file.
            reader: VideoReader. The source being read.
            settings: EncoderSettings. How to encode. Defaults to EncoderSettings().
        """
        return cls(
            path,
            reader.width,
            reader.height,
            reader.info.fps,
            settings=settings,
            source=reader.info,
            start=reader.start,
            duration=reader.duration,
            timestamps=reader.timestamps,
            sample_aspect_ratio=reader.info.display_sample_aspect_ratio,
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
            frame: np.ndarray. RGB uint8, `height` x `width` x 3.
            pts: Fraction or None. Presentation time in seconds; None follows `timestamps` or `fps`.

        Raises:
            ValueError: the frame has the wrong shape or type.
            InputError: ffmpeg stopped (its error, e.g. an unknown codec option or a full disk).
        """
        if frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            raise ValueError(
                f"Expected an RGB uint8 frame of shape {(self.height, self.width, 3)}. "
                f"Received: shape={frame.shape}, dtype={frame.dtype}"
            )
        with self._lock:
            if self._closed:
                raise InputError(f"{self.path}: the writer is already closed")
            time_ns = self._next_time_ns(pts)
            if self._pending is not None:
                self._send_frame(*self._pending, duration_ns=None)
            # Held back one frame: only the next frame tells how long this one lasts.
            self._pending = (time_ns, np.array(frame, copy=True, order="C"))
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
                    raise InputError(f"{self.path}: no frames were written")
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
                    raise _write_error(self.path, exc.strerror or str(exc), is_out_of_space(exc)) from None
            except BaseException as exc:
                self._abort(exc)
                raise

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
        if pts is None and self._timestamps is not None and self._count < len(self._timestamps):
            pts = self._timestamps[self._count]
        if pts is None:
            # Exact fractions, so a long run at 30000/1001 does not drift by rounding.
            pts = Fraction(0) if self._last_pts is None else self._last_pts + 1 / self.fps
        pts = Fraction(pts)
        time_ns = max(round(pts * _NS_PER_SECOND), 0)
        if self._last_ns is not None and time_ns < self._last_ns + self._tick_ns:
            # Containers need rising times: a repeated or backward time (a broken
            # source) moves to one output tick after the previous frame.
            time_ns = self._last_ns + self._tick_ns
            pts = Fraction(time_ns, _NS_PER_SECOND)
        if self._last_ns is not None:
            self._last_step_ns = time_ns - self._last_ns
        self._last_pts, self._last_ns = pts, time_ns
        return time_ns

    def _send_frame(self, time_ns: int, frame: np.ndarray, duration_ns: int | None) -> None:
        self._send(_mkv_block_header(time_ns, frame.nbytes, duration_ns))
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
        summary = self._process.error_summary()
        if hasattr(signal, "SIGXFSZ") and self._process.returncode == -signal.SIGXFSZ:
            # Over `ulimit -f`, the kernel ends ffmpeg with SIGXFSZ before it can log anything.
            return _write_error(self.path, "the file size limit was reached", out_of_space=True)
        if any(text in summary.lower() for text in _OUT_OF_SPACE_TEXTS):
            return _write_error(self.path, summary, out_of_space=True)
        return InputError(f"{self.path}: {what} ({summary})")


# How ffmpeg words a write that failed because the destination is full (strerror of ENOSPC, EDQUOT, EFBIG).
_OUT_OF_SPACE_TEXTS = ("no space left on device", "disk quota exceeded", "file too large")


def _write_error(path: Path, reason: str, out_of_space: bool) -> InputError | DiskFullError:
    if out_of_space:
        return DiskFullError(f"{path}: cannot be written, the disk is full ({reason})")
    return InputError(f"{path}: cannot be written ({reason})")


def _writer_command(
    source: VideoInfo | None,
    start: float | None,
    duration: float | None,
    streams: list[tuple[str, int, str]],
    video_args: list[str],
    container: str,
) -> list[str]:
    """ffmpeg's arguments, up to the output path: frames on stdin, the rest from `source`."""
    args = [*_ffmpeg_base("warning"), "-y", "-f", "matroska", "-i", "pipe:0"]
    if source is not None:
        # The same trim as the reader's, so audio and subtitles stay in sync with the frames.
        if start is not None:
            args += ["-ss", _seconds_arg(start)]
        if duration is not None:
            args += ["-t", _seconds_arg(duration)]
        args += ["-i", _url(source.path)]
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


def _video_args(
    settings: EncoderSettings, source: VideoInfo | None, sample_aspect_ratio: Fraction, tick: Fraction
) -> tuple[list[str], list[str]]:
    """Encoder arguments for the video stream, and notes on settings the encoder ignores."""
    options = _encoder_help(settings.codec).options
    args, notes = ["-c:v", settings.codec, "-pix_fmt", settings.pix_fmt], []
    if settings.crf is not None:
        if "crf" in options:
            args += ["-crf", str(settings.crf)]
            if settings.codec in _NEEDS_ZERO_BITRATE_FOR_CRF:
                args += ["-b:v", "0"]
        else:
            notes.append(f"crf {settings.crf} ignored: {settings.codec} has no crf option")
    if settings.preset is not None:
        if "preset" in options:
            args += ["-preset", settings.preset]
        else:
            notes.append(f"preset {settings.preset!r} ignored: {settings.codec} has no preset option")
    args += _color_args(source, settings.pix_fmt)
    filters = _color_filters(source)
    if sample_aspect_ratio != 1:
        sar = sample_aspect_ratio
        filters.append(f"setsar=r={sar.numerator}/{sar.denominator}:max={max(sar.numerator, sar.denominator)}")
    if filters:
        args += ["-vf", ",".join(filters)]
    # Keep the frames' own times (no rate conversion) on a clock fine enough to hold them exactly.
    args += ["-fps_mode", "passthrough", "-enc_time_base", f"1/{tick.denominator}"]
    return args, notes


def _check_size(width: int, height: int) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return int(width), int(height)


def _check_fps(fps: Fraction | int | str) -> Fraction:
    try:
        rate = Fraction(fps)
    except (TypeError, ValueError, ZeroDivisionError):
        raise InputError(f"fps must be a positive number or ratio like 30000/1001. Received: fps={fps!r}") from None
    if rate <= 0 or rate > 10_000:
        raise InputError(f"fps must be between 0 and 10000. Received: fps={fps!r}")
    return rate


def _container_for(path: Path, source: VideoInfo | None) -> str:
    """The muxer for an output path, once the path is known to be usable."""
    fmt = VIDEO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        choices = ", ".join(sorted(VIDEO_SUFFIXES))
        raise InputError(f"{path}: unknown video format {path.suffix!r}; use one of {choices}")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: no such folder")
    if path.is_dir():
        raise InputError(f"{path}: is a folder")
    if source is not None and (path.resolve() == source.path.resolve() or _same_file(path, source.path)):
        raise InputError(f"{path}: is the input video; choose another output path")
    return fmt


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False  # `a` does not exist yet


def _check_container_codec(path: Path, fmt: str, codec: str) -> None:
    if fmt == "webm" and _encoders()[codec][1] not in _WEBM_VIDEO_CODECS:
        raise InputError(
            f"{path}: WebM holds only VP8, VP9 or AV1 video, not {codec}; use --codec libvpx-vp9 or libsvtav1"
        )


def _output_tick(fps: Fraction, source_time_base: Fraction | None) -> Fraction:
    """A clock unit on which both frame-rate steps and source timestamps fall exactly."""
    units = fps.numerator
    if source_time_base is not None:
        units = math.lcm(units, source_time_base.denominator)
        if units > _MAX_TIMESCALE:
            units = source_time_base.denominator
    return Fraction(1, min(units, _MAX_TIMESCALE))


def _color_args(source: VideoInfo | None, pix_fmt: str) -> list[str]:
    """Encode with the source's YUV range and matrix.

    ffmpeg converts the RGB frames to YUV with the range and matrix these options
    name and tags the stream with them, so a full-range source comes out full range
    instead of being squeezed, and BT.709 stays BT.709.
    """
    if source is None or not _is_yuv(pix_fmt):
        return []
    args = []
    if source.color_range:
        args += ["-color_range", source.color_range]
    if source.color_space and source.color_space not in ("gbr", "rgb"):
        args += ["-colorspace", source.color_space]
    return args


def _color_filters(source: VideoInfo | None) -> list[str]:
    """Tag frames with the source's primaries and transfer.

    Output options cannot do this: ffmpeg 7+ takes these two from the frames (untagged
    RGB here) and drops `-color_primaries`/`-color_trc`. They describe RGB as much as
    YUV, so they are set on the RGB frames and survive the conversion.
    """
    if source is None:
        return []
    params = []
    if source.color_primaries:
        params.append(f"color_primaries={source.color_primaries}")
    if source.color_transfer:
        params.append(f"color_trc={source.color_transfer}")
    return [f"setparams={':'.join(params)}"] if params else []


def _is_yuv(pix_fmt: str) -> bool:
    return pix_fmt.startswith(("yuv", "nv", "p0", "gray")) and not pix_fmt.startswith("gbr")


def _plan_source_streams(source: VideoInfo, fmt: str) -> tuple[list[tuple[str, int, str]], list[str]]:
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
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", _url(path)]
    args += ["-map", f"0:{kind}:{index}", f"-c:{kind}", codec, "-t", "0", "-f", fmt, "-y", os.devnull]
    return _run(args).returncode == 0


# ---------------------------------------------------------------------------- Matroska framing
# The writer feeds ffmpeg a minimal live Matroska stream: one track of uncompressed
# RGB24 frames, one cluster per frame holding the frame's time in nanoseconds. It is
# the simplest input ffmpeg reads that carries a time per raw frame.

_SEGMENT_UNKNOWN_SIZE = bytes.fromhex("18538067") + bytes.fromhex("01FFFFFFFFFFFFFF")


def _ebml_size(size: int) -> bytes:
    for length in range(1, 9):
        if size < (1 << (7 * length)) - 1:
            return ((1 << (7 * length)) | size).to_bytes(length, "big")
    raise ValueError(f"EBML element too large: {size} bytes")


def _ebml_uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _element(element_id: str, payload: bytes) -> bytes:
    return bytes.fromhex(element_id) + _ebml_size(len(payload)) + payload


def _mkv_header(width: int, height: int, default_duration_ns: int) -> bytes:
    ebml = _element(
        "1A45DFA3",
        _element("4286", _ebml_uint(1))  # EBMLVersion
        + _element("42F7", _ebml_uint(1))  # EBMLReadVersion
        + _element("42F2", _ebml_uint(4))  # EBMLMaxIDLength
        + _element("42F3", _ebml_uint(8))  # EBMLMaxSizeLength
        + _element("4282", b"matroska")  # DocType
        + _element("4287", _ebml_uint(4))  # DocTypeVersion
        + _element("4285", _ebml_uint(2)),  # DocTypeReadVersion
    )
    info = _element(
        "1549A966",
        _element("2AD7B1", _ebml_uint(1))  # TimestampScale: 1 ns
        + _element("4D80", b"vidderain")  # MuxingApp
        + _element("5741", b"vidderain"),  # WritingApp
    )
    video = _element(
        "E0",
        _element("B0", _ebml_uint(width))  # PixelWidth
        + _element("BA", _ebml_uint(height))  # PixelHeight
        + _element("2EB524", b"RGB\x18"),  # ColourSpace: FourCC of packed RGB24
    )
    track = _element(
        "AE",
        _element("D7", _ebml_uint(1))  # TrackNumber
        + _element("73C5", _ebml_uint(1))  # TrackUID
        + _element("83", _ebml_uint(1))  # TrackType: video
        + _element("9C", _ebml_uint(0))  # FlagLacing
        + _element("22B59C", b"und")  # Language: unknown (the default would be English)
        + _element("86", b"V_UNCOMPRESSED")  # CodecID
        + _element("23E383", _ebml_uint(max(default_duration_ns, 1)))  # DefaultDuration
        + video,
    )
    return ebml + _SEGMENT_UNKNOWN_SIZE + info + _element("1654AE6B", track)


def _mkv_block_header(time_ns: int, frame_bytes: int, duration_ns: int | None) -> bytes:
    """Bytes of a cluster holding one frame, up to the frame data that follows them."""
    timestamp = _element("E7", _ebml_uint(time_ns))
    # Track 1, relative time 0; SimpleBlock flags: keyframe. Block (in a BlockGroup): no flags.
    if duration_ns is None:
        block_head = b"\x81" + struct.pack(">h", 0) + b"\x80"
        block = bytes.fromhex("A3") + _ebml_size(len(block_head) + frame_bytes) + block_head
        return bytes.fromhex("1F43B675") + _ebml_size(len(timestamp) + len(block) + frame_bytes) + timestamp + block
    block_head = b"\x81" + struct.pack(">h", 0) + b"\x00"
    block = bytes.fromhex("A1") + _ebml_size(len(block_head) + frame_bytes) + block_head
    # BlockDuration goes before the Block so the frame data can end the cluster.
    block_duration = _element("9B", _ebml_uint(max(duration_ns, 1)))
    group_size = len(block_duration) + len(block) + frame_bytes
    group = bytes.fromhex("A0") + _ebml_size(group_size) + block_duration + block
    cluster_size = len(timestamp) + len(group) + frame_bytes
    return bytes.fromhex("1F43B675") + _ebml_size(cluster_size) + timestamp + group


# ---------------------------------------------------------------------------- frame folders


def read_frame_folder(folder: str | os.PathLike) -> list[Path]:
    """List the image frames of a folder in natural order (frame2 before frame10).

    Hidden files and unfinished outputs (`*.vidderain-part*`) are skipped.

    Args:
        folder: str or PathLike. A folder of numbered image frames.

    Returns:
        The frame paths, sorted by name with digit runs compared as numbers.

    Raises:
        InputError: the folder is missing, not a folder, or holds no images.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: is a file, not a folder of frames")
    frames = [
        p
        for p in folder.iterdir()
        if p.is_file() and is_image_path(p) and not p.name.startswith(".") and not is_partial(p)
    ]
    if not frames:
        raise InputError(f"{folder}: holds no image frames")
    return sorted(frames, key=_natural_key)


def _natural_key(path: Path) -> tuple[list[int | str], str]:
    parts = re.split(r"(\d+)", path.name.lower())
    # Even positions are text, odd positions digit runs, so comparisons never mix types.
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], path.name


# ---------------------------------------------------------------------------- ffmpeg processes


def _ffmpeg_base(level: str) -> list[str]:
    # `level+` prefixes each log line with its severity, which is how errors are picked out.
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", f"level+{level}"]


def _url(path: Path) -> str:
    """`path` as an ffmpeg URL that is always read as a local file.

    Without the `file:` protocol, names like "pipe:1.mp4", "http:x.mkv" or "-x.mp4"
    would be taken as a protocol or an option.
    """
    return "file:" + str(Path(path).absolute())


def _run(args: list[str]) -> subprocess.CompletedProcess:
    """Run ffmpeg to completion and capture its output as text."""
    try:
        return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise InputError(f"cannot run ffmpeg ({exc.strerror or exc})") from None


_LEVEL_RE = re.compile(r"^(\[[^\]]*@ 0x[0-9a-f]+\] )?\[(trace|debug|verbose|info|warning|error|fatal|panic)\] ?")
_ERROR_LEVELS = frozenset({"error", "fatal", "panic"})


def _split_level(line: str) -> tuple[str | None, str]:
    """Split one `level+` log line into its severity and the line without the tag."""
    match = _LEVEL_RE.match(line)
    if match is None:
        return None, line
    return match[2], (match[1] or "") + line[match.end() :]


def _parse_log(text: str) -> tuple[list[str], list[str]]:
    """ffmpeg's stderr as lines without severity tags, and the error lines among them."""
    lines, errors = [], []
    for raw in text.splitlines():
        level, line = _split_level(raw)
        lines.append(line)
        if level in _ERROR_LEVELS:
            errors.append(line)
    return lines, errors


_NOISE = (
    "Conversion failed",
    "Exiting with exit code",
    "Terminating thread with return code",
    "Task finished with error code",
    "Error opening output files",
    "Error opening input files",
    "Nothing was written into output file",
    "Error sending frames to consumers",
    "Could not open encoder before EOF",
)


def _error_summary(errors: Sequence[str], tail: Sequence[str] = ()) -> str:
    """The first error line ffmpeg printed that names a cause, without its context address.

    ffmpeg follows the cause ("width not divisible by 2", "No space left on device")
    with generic lines ("Conversion failed!"); those are skipped.
    """
    meaningful = [line for line in errors if not any(noise in line for noise in _NOISE)]
    fallback = [line for line in tail if line.strip()][-1:]
    chosen = (meaningful or list(errors) or fallback or ["no error message"])[0].strip()
    # "[libx264 @ 0x5f..] width not divisible by 2" -> "libx264: width ...";
    # contexts like "[in#0 @ 0x..]" or "[vost#0:0/libx264 @ 0x..]" say nothing to a user.
    match = re.match(r"\[([^\]@]*?) @ 0x[0-9a-f]+\] (.*)", chosen)
    if match:
        context, message = match[1], match[2]
        return f"{context}: {message}" if re.fullmatch(r"[A-Za-z0-9_-]+", context) else message
    return chosen


class _FfmpegProcess:
    """One running ffmpeg: its pipes, a thread draining its stderr, and how to stop it."""

    def __init__(
        self,
        args: list[str],
        *,
        stdin: bool = False,
        stdout: bool = False,
        on_line: Callable[[str | None], None] | None = None,
    ) -> None:
        self._on_line = on_line
        self._errors: list[str] = []
        self._tail: deque[str] = deque(maxlen=30)
        self.log_done = False
        try:
            # A new session keeps Ctrl-C away from ffmpeg: Python gets it and stops ffmpeg
            # in its `finally` blocks, instead of ffmpeg finishing a half-written file.
            self._popen = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise InputError(f"cannot run ffmpeg ({exc.strerror or exc})") from None
        self.stdin = self._popen.stdin
        self.stdout = self._popen.stdout
        self._drain = threading.Thread(target=self._read_log, name="ffmpeg-stderr", daemon=True)
        self._drain.start()

    def _read_log(self) -> None:
        try:
            for raw in self._popen.stderr:
                level, line = _split_level(raw.decode("utf-8", "replace").rstrip("\r\n"))
                if level in _ERROR_LEVELS and len(self._errors) < 20:
                    self._errors.append(line)
                self._tail.append(line)
                if self._on_line is not None:
                    self._on_line(line)
        except (OSError, ValueError):
            pass  # stderr closed by stop(); nothing more to read
        finally:
            self.log_done = True
            if self._on_line is not None:
                self._on_line(None)  # the log has ended: wake anyone waiting on it

    @property
    def logged_errors(self) -> bool:
        """Whether ffmpeg has logged an error so far."""
        return bool(self._errors)

    @property
    def returncode(self) -> int | None:
        """ffmpeg's exit status once it has exited (negative: the signal that ended it), else None."""
        return self._popen.poll()

    def error_summary(self) -> str:
        """One line: the cause ffmpeg gave for failing."""
        self._drain.join(timeout=1.0)
        return _error_summary(self._errors, list(self._tail))

    def close_stdin(self) -> None:
        if self.stdin is not None and not self.stdin.closed:
            try:
                self.stdin.close()
            except OSError:
                pass  # ffmpeg already gone; its exit status tells why

    def wait(self) -> int:
        """Wait for ffmpeg to exit (it finishes encoding first) and return its exit status."""
        code = self._popen.wait()
        self._drain.join(timeout=5.0)
        return code

    def wait_briefly(self) -> None:
        try:
            self._popen.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
        self._drain.join(timeout=1.0)

    def stop(self) -> None:
        """End ffmpeg now and reap it, so no zombie is left.

        Whatever a running ffmpeg would still produce is discarded here (a reader
        closed early, a writer whose temporary file is about to be removed), so it is
        killed rather than asked to stop: asked, an encoder first flushes the frames
        its look-ahead holds, which took seconds with slow presets.
        """
        popen = self._popen
        try:
            for pipe in (popen.stdin, popen.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass  # a broken pipe on close changes nothing now
            if popen.poll() is None:
                popen.kill()
                popen.wait()
        finally:
            self._drain.join(timeout=1.0)
            if not self._drain.is_alive():
                popen.stderr.close()
