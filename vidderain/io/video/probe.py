"""Probing a video file: what its first video stream holds, and the stretch of it a job uses.

ffmpeg decodes one frame through its `showinfo` filter, which prints the exact
rational frame rate, the time base and the colour tags, and lists the packets of
the video stream (`framecrc`, which decodes nothing) to count frames and tell
variable from constant frame rate. The reader parses the same `showinfo` lines
(`SHOWINFO_FRAME`, `SHOWINFO_CONFIG`) to learn each frame's time.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vidderain.errors import InputError, ParameterError
from vidderain.io.files import check_readable_file
from vidderain.io.video.ffmpeg import (
    NS_PER_SECOND,
    error_summary,
    ffmpeg_command,
    file_url,
    parse_log,
    pixel_depth,
    run_ffmpeg,
)


@dataclass(frozen=True)
class HdrMetadata:
    """What an HDR video says about the display it was mastered on and its brightest light.

    Attributes:
        primaries: tuple of (x, y). Chromaticity of the mastering display's red, green and
            blue, CIE 1931, e.g. ((0.68, 0.32), (0.265, 0.69), (0.15, 0.06)); None if not stated.
        white_point: (x, y) or None. Its white point, e.g. (0.3127, 0.329).
        luminance: (min, max) or None. Its luminance range in cd/m^2, e.g. (0.005, 1000.0).
        max_cll: int or None. Maximum content light level in cd/m^2.
        max_fall: int or None. Maximum frame-average light level in cd/m^2.
    """

    primaries: tuple[tuple[float, float], ...] | None = None
    white_point: tuple[float, float] | None = None
    luminance: tuple[float, float] | None = None
    max_cll: int | None = None
    max_fall: int | None = None


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
        bit_depth: int. Bits per sample as decoded: 8, or 10 and more for high-end and
            phone HDR video. Defaults to 8.
        container: str. The demuxer ffmpeg read it with, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
            Defaults to "" (unknown).
        start_time: Fraction or None. The file's start time in seconds, to the microsecond,
            which ffmpeg subtracts from every frame's time. Defaults to None (not stated).
        hdr: HdrMetadata or None. Mastering display and content light level of HDR video.
            Defaults to None (none stated).
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
    bit_depth: int = 8
    container: str = ""
    start_time: Fraction | None = None
    hdr: HdrMetadata | None = None

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


@dataclass(frozen=True)
class Clip:
    """The stretch of a probed video a job uses: what a reader decodes, and what a
    writer copies audio and subtitles from, trimmed alike so they stay in sync.

    Attributes:
        info: VideoInfo. The video file.
        start: float or None. Seconds skipped at the beginning. Defaults to None (none).
        duration: float or None. Seconds used from `start`. Defaults to None (to the end).

    Raises:
        ParameterError: `start` is negative, or `duration` not positive, or either not a number.
    """

    info: VideoInfo
    start: float | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", check_seconds("start", self.start, allow_zero=True))
        object.__setattr__(self, "duration", check_seconds("duration", self.duration, allow_zero=False))


def check_seconds(name: str, value: float | None, *, allow_zero: bool) -> float | None:
    """Return a time in seconds as a float, or None; raise ParameterError naming `name` if it cannot be one."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise ParameterError(name, value, "a number of seconds")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ParameterError(name, value, f"{'>= 0' if allow_zero else '> 0'} seconds")
    return float(value)


def has_display_matrix(path: Path) -> bool:
    """Whether the video stream of `path` carries a display matrix (ffmpeg's autorotation applies only that)."""
    result = run_ffmpeg([*ffmpeg_command("info"), "-i", file_url(path)])
    return any(_MATRIX_RE.search(line) for line in parse_log(result.stderr)[0])


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
    path = check_readable_file(path, "a video")
    lines, framecrc = _run_probe(path, count_frames)
    header = _parse_input_header(lines)
    if header is None:
        raise InputError(f"{path}: has no video stream")
    frame = _parse_first_frame(lines)
    if frame is None:
        raise InputError(f"{path}: no video frame could be decoded ({error_summary([], lines)})")
    # ffmpeg itself assumes 25 fps for a stream that states no rate.
    fps = frame["fps"] or header["fps"] or Fraction(25)
    frame_count, duration, variable = None, header["duration"], header["variable_guess"]
    packets = _parse_framecrc(framecrc) if count_frames else None
    if packets is not None:
        frame_count, packet_duration, variable = _summarise_packets(*packets, fps)
        duration = packet_duration if packet_duration is not None else duration
    width, height = _stored_size(header, frame)
    time_base = frame["time_base"] or Fraction(1, NS_PER_SECOND)
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
        bit_depth=max(pixel_depth(header["pix_fmt"]), 8),
        container=header["container"],
        start_time=header["start_time"],
        hdr=_parse_hdr(lines),
    )


def _run_probe(path: Path, count_frames: bool) -> tuple[list[str], str]:
    """Run ffmpeg's probe pass; return its log lines and the `framecrc` packet list."""
    args = [*ffmpeg_command("info"), "-i", file_url(path), "-map", "0:V:0", "-frames:v", "1"]
    args += ["-vf", "showinfo=checksum=0", "-f", "null", "-"]
    if count_frames:
        args += ["-map", "0:V:0", "-c", "copy", "-f", "framecrc", "pipe:1"]
    result = run_ffmpeg(args)
    lines, errors = parse_log(result.stderr)
    if result.returncode != 0:
        if any("matches no streams" in line for line in lines):
            raise InputError(f"{path}: has no video stream")
        raise InputError(f"{path}: not a video ffmpeg can read ({error_summary(errors, lines)})")
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


_STREAM_RE = re.compile(r"^\s*Stream #\d+:(\d+)\S*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_SIZE_RE = re.compile(r"^(\d+)x(\d+)")
_SAR_RE = re.compile(r"SAR (\d+):(\d+)")
_MATRIX_RE = re.compile(r"display ?matrix: rotation of (-?[\d.]+) degrees", re.IGNORECASE)
_ROTATE_TAG_RE = re.compile(r"^\s*rotate\s*:\s*(-?\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
_RATE_RE = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_START_RE = re.compile(r"Duration: .*?, start: (-?\d+\.\d+)")
_INPUT_RE = re.compile(r"^Input #0, (.+), from ")


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
    start = next((m for line in section if (m := _START_RE.search(line))), None)
    container = next((m for line in lines if (m := _INPUT_RE.match(line))), None)
    return {
        "container": container[1] if container else "",
        "start_time": Fraction(start[1]) if start else None,
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


SHOWINFO_CONFIG = re.compile(r"config in time_base: (\d+)/(\d+), frame_rate: (\d+)/(\d+)")
SHOWINFO_FRAME = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+|NOPTS)")
_FRAME_SIZE_RE = re.compile(r" s:(\d+)x(\d+) ")
_COLOR_RE = re.compile(r"color_range:(\S+) color_space:(\S+) color_primaries:(\S+) color_trc:(\S+)")


def _parse_first_frame(lines: list[str]) -> dict | None:
    """Read time base, exact frame rate and colour tags from `showinfo`'s first lines."""
    config = next((m for line in lines if (m := SHOWINFO_CONFIG.search(line))), None)
    first = next((line for line in lines if SHOWINFO_FRAME.search(line)), None)
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


_NUMBER = r"(-?[\d.]+)"
_MASTERING_RE = re.compile(
    rf"mastering display metadata: has_primaries:(\d) has_luminance:(\d) r\({_NUMBER},\s*{_NUMBER}\) "
    rf"g\({_NUMBER},\s*{_NUMBER}\) b\({_NUMBER}[,\s]\s*{_NUMBER}\) wp\({_NUMBER},\s*{_NUMBER}\) "
    rf"min_luminance={_NUMBER}, max_luminance={_NUMBER}",
    re.IGNORECASE,
)
_LIGHT_RE = re.compile(r"content light level metadata: MaxCLL=(\d+), MaxFALL=(\d+)", re.IGNORECASE)


def _parse_hdr(lines: list[str]) -> HdrMetadata | None:
    """HDR side data of the first frame, as `showinfo` (or the stream header) prints it; None without any."""
    mastering = next((m for line in lines if (m := _MASTERING_RE.search(line))), None)
    light = next((m for line in lines if (m := _LIGHT_RE.search(line))), None)
    if mastering is None and light is None:
        return None
    primaries = white = luminance = None
    if mastering is not None:
        values = [float(v) for v in mastering.groups()[2:]]
        if mastering[1] == "1":
            primaries = ((values[0], values[1]), (values[2], values[3]), (values[4], values[5]))
            white = (values[6], values[7])
        if mastering[2] == "1":
            luminance = (values[8], values[9])
    return HdrMetadata(
        primaries=primaries,
        white_point=white,
        luminance=luminance,
        max_cll=int(light[1]) if light else None,
        max_fall=int(light[2]) if light else None,
    )


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


