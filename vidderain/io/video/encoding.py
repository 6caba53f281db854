"""Encoder settings for an output video, and the one function that picks their defaults.

`encoder_for` decides codec, CRF, preset and pixel format for an output path from
what the user chose; `EncoderSettings.check` asks this ffmpeg whether it can use
them; `encoder_args` turns them, with the source's colour tags, into ffmpeg's
arguments. The container follows the output's suffix (`VIDEO_FORMATS`).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from vidderain.errors import InputError, ParameterError
from vidderain.io.video.ffmpeg import ffmpeg_exe, pixel_depth, pixel_format_depths, run_ffmpeg
from vidderain.io.video.probe import HdrMetadata, VideoInfo

# Output suffix -> ffmpeg muxer.
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
VIDEO_SUFFIXES = frozenset(VIDEO_FORMATS)

_CONTAINER_CODECS = {"webm": "libvpx-vp9"}  # containers whose default encoder is not libx264 (or libx265)
# The default encoder for a source of more than 8 bits per sample, where the container has
# no default of its own: one that stores 10 bits and that players decode in hardware (HEVC
# Main 10 as phones record it; WebM's VP9 stores 10 bits as profile 2).
_DEEP_CODEC = "libx265"
_DEEP_NAMES = {("libx265", 10): "HEVC Main 10", ("libx265", 12): "HEVC Main 12", ("libvpx-vp9", 10): "VP9 profile 2",
               ("libvpx-vp9", 12): "VP9 profile 2"}
# HEVC in MP4 and MOV is tagged hvc1 (parameter sets in the header), which Apple's players
# and phones require; ffmpeg's default, hev1, they refuse to open.
_HEVC_TAG_CONTAINERS = frozenset({"mp4", "mov"})
_CODEC_CRF = {"libvpx": 32, "libvpx-vp9": 32}  # encoders whose default CRF is not 18
_X26X = frozenset({"libx264", "libx264rgb", "libx265"})
_WEBM_VIDEO_CODECS = frozenset({"vp8", "vp9", "av1"})
_X26X_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
)
# Encoders that store odd frame sizes with subsampled chroma (they round the chroma planes up).
_ODD_SIZE_SUBSAMPLED_OK = frozenset({"libaom-av1", "libsvtav1", "librav1e", "libvpx", "libvpx-vp9"})
# libvpx only runs in constant-quality mode with a zero target bitrate.
_NEEDS_ZERO_BITRATE_FOR_CRF = frozenset({"libvpx", "libvpx-vp9"})


@dataclass(frozen=True)
class EncoderSettings:
    """How the video stream of an output file is encoded.

    The defaults are H.264's; `encoder_for` gives the settings for an output path,
    with the defaults of its container for whatever the user did not choose.

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
        tag: str or None. The stream's codec tag in the container ("hvc1"); None: ffmpeg's.
            Defaults to None.
        reason: str. Why `encoder_for` chose what it did where a user would ask, one line
            (a 10-bit source's encoder); "" when nothing needs saying. Not compared.
    """

    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str = "yuv420p"
    tag: str | None = None
    reason: str = field(default="", compare=False)

    def check(self) -> None:
        """Raise ParameterError naming the first setting this ffmpeg cannot use."""
        if not isinstance(self.codec, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.codec):
            raise ParameterError("codec", self.codec, "an ffmpeg encoder name")
        encoder = _encoders().get(self.codec)
        if encoder is None or encoder[0] != "V":
            raise ParameterError("codec", self.codec, "the name of a video encoder of this ffmpeg (see `ffmpeg -encoders`)")
        if self.crf is not None:
            if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 63:
                raise ParameterError("crf", self.crf, "an integer from 0 to 63")
            if self.codec in _X26X and self.crf > 51:
                raise ParameterError("crf", self.crf, f"from 0 to 51 for {self.codec}")
        if self.preset is not None:
            if not isinstance(self.preset, str) or not re.fullmatch(r"-?[A-Za-z0-9_]+", self.preset):
                raise ParameterError("preset", self.preset, "a name or number")
            if self.codec in _X26X and self.preset not in _X26X_PRESETS:
                raise ParameterError("preset", self.preset, f"one of {', '.join(_X26X_PRESETS)} for {self.codec}")
            if self.codec == "libsvtav1" and not re.fullmatch(r"-?\d+", self.preset):
                raise ParameterError("preset", self.preset, "a number from -1 to 13 for libsvtav1")
        if not isinstance(self.pix_fmt, str) or self.pix_fmt not in _pixel_formats():
            raise ParameterError("pix_fmt", self.pix_fmt, "a pixel format of this ffmpeg (see `ffmpeg -pix_fmts`)")
        supported = _encoder_help(self.codec).pix_fmts
        if supported and self.pix_fmt not in supported:
            raise ParameterError("pix_fmt", self.pix_fmt, f"one that {self.codec} stores: {', '.join(supported)}")

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
    text = run_ffmpeg([ffmpeg_exe(), "-hide_banner", "-encoders"]).stdout
    encoders = {}
    for line in text.split("------", 1)[-1].splitlines():
        fields = line.split(None, 2)
        if len(fields) >= 2 and len(fields[0]) == 6:
            codec = re.search(r"\(codec (\S+)\)", line)
            encoders[fields[1]] = (fields[0][0], codec[1] if codec else fields[1])
    return encoders


@functools.lru_cache(maxsize=None)
def _encoder_help(codec: str) -> _EncoderHelp:
    text = run_ffmpeg([ffmpeg_exe(), "-hide_banner", "-h", f"encoder={codec}"]).stdout
    formats = re.search(r"Supported pixel formats: (.*)", text)
    options = frozenset(re.findall(r"^\s+-(\w+)\s", text, re.MULTILINE))
    return _EncoderHelp(tuple(formats[1].split()) if formats else (), options)


def _pixel_formats() -> frozenset[str]:
    return frozenset(pixel_format_depths())


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder settings a user asked for; each None is left to `encoder_for`.

    Attributes:
        codec: str or None. An ffmpeg video encoder. Defaults to None.
        crf: int or None. Constant rate factor. Defaults to None.
        preset: str or None. Speed/size preset. Defaults to None.
        pix_fmt: str or None. Stored pixel format. Defaults to None.
    """

    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None


def encoder_for(
    path: str | os.PathLike, choice: EncoderChoice = EncoderChoice(), source_depth: int = 8
) -> EncoderSettings:
    """The encoder settings for an output at `path`: what `choice` gives, defaults for the rest.

    The one place that picks encoder defaults. For an 8-bit source the codec is the
    container's (libvpx-vp9 for WebM, which holds no H.264; libx264 elsewhere) and the
    pixel format yuv420p. A source of more bits per sample keeps them: libx265 at
    yuv420p10le (HEVC Main 10, as phones record; VP9 profile 2 for WebM), or the 12-bit
    format for a 12-bit source where the encoder stores one; a codec chosen without a
    pixel format gets its own format of that depth, or 8 bits with `reason` saying so.
    The CRF is 18, or 32 for libvpx's VP8 and VP9, whose scale differs; the preset is
    "medium" for x264 and x265 and the encoder's own default for the others. HEVC in
    MP4 and MOV is tagged hvc1. Settings the user gave are kept as given, so a `.webm`
    output with only a CRF chosen is VP9 at that CRF.

    Args:
        path: str or PathLike. The output file; its suffix names the container.
        choice: EncoderChoice. What the user chose. Defaults to EncoderChoice() (nothing).
        source_depth: int. Bits per sample of the source video (`VideoInfo.bit_depth`).
            Defaults to 8.

    Returns:
        The settings, not yet checked against this ffmpeg (`EncoderSettings.check`); their
        `reason` says in one line what a source of more than 8 bits gets, and why.
    """
    container = VIDEO_FORMATS.get(Path(path).suffix.lower())
    deep = source_depth > 8 and (choice.pix_fmt is None or pixel_depth(choice.pix_fmt) > 8)
    if choice.codec is not None:
        codec = choice.codec
    elif deep:
        codec = _CONTAINER_CODECS.get(container, _DEEP_CODEC)
    else:
        codec = _CONTAINER_CODECS.get(container, EncoderSettings.codec)
    default_crf = _CODEC_CRF.get(codec, EncoderSettings.crf)
    default_preset = EncoderSettings.preset if codec in _X26X else None
    pix_fmt, reason = EncoderSettings.pix_fmt, ""
    if choice.pix_fmt is not None:
        pix_fmt = choice.pix_fmt
    elif source_depth > 8:
        pix_fmt = _deep_pix_fmt(codec, source_depth)
    tag = "hvc1" if codec == "libx265" and container in _HEVC_TAG_CONTAINERS else None
    if source_depth > 8:
        reason = _depth_reason(codec, pix_fmt, tag, source_depth, choice)
    return EncoderSettings(
        codec=codec,
        crf=default_crf if choice.crf is None else choice.crf,
        preset=default_preset if choice.preset is None else choice.preset,
        pix_fmt=pix_fmt,
        tag=tag,
        reason=reason,
    )


def _deep_pix_fmt(codec: str, source_depth: int) -> str:
    """4:2:0 at the source's depth (12 bits at most) where `codec` stores it, else 10 bits, else 8."""
    supported = _encoder_help(codec).pix_fmts
    for depth in (12, 10) if source_depth >= 12 else (10,):
        candidate = f"yuv420p{depth}le"
        if not supported or candidate in supported:
            return candidate
    return EncoderSettings.pix_fmt


def _depth_reason(codec: str, pix_fmt: str, tag: str | None, source_depth: int, choice: EncoderChoice) -> str:
    """One line: what a source of more than 8 bits per sample is written as, and why."""
    kept = pixel_depth(pix_fmt)
    if kept <= 8:
        why = f"pix_fmt {pix_fmt} as chosen" if choice.pix_fmt is not None else f"{codec} stores 8 bits only"
        return f"{source_depth}-bit source written at 8 bits per sample: {why}"
    details = ", ".join([codec, pix_fmt] + ([f"tagged {tag}"] if tag else []))
    name = _DEEP_NAMES.get((codec, kept)) if pix_fmt.startswith("yuv420p") else None
    what = f"{name} ({details})" if name else details
    chosen = [name for name, value in (("codec", choice.codec), ("pix_fmt", choice.pix_fmt)) if value is not None]
    chosen_text = f", {' and '.join(chosen)} as chosen" if chosen else ""
    return f"{source_depth}-bit source: {what}{chosen_text}, keeping {kept} bits per sample"


def is_video_path(path: str | os.PathLike) -> bool:
    """Return True if `path` has the suffix of a container vidderain writes."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def container_for(path: str | os.PathLike) -> str:
    """The ffmpeg muxer for an output path, from its suffix.

    Raises:
        InputError: vidderain writes no container with that suffix.
    """
    path = Path(path)
    fmt = VIDEO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        choices = ", ".join(sorted(VIDEO_SUFFIXES))
        raise InputError(f"{path}: unknown video format {path.suffix!r}; use one of {choices}")
    return fmt


def check_container_codec(path: str | os.PathLike, codec: str) -> None:
    """Refuse an encoder whose video the container of `path` cannot hold.

    Raises:
        ParameterError: WebM with an encoder of anything but VP8, VP9 or AV1.
    """
    if container_for(path) == "webm" and _encoders()[codec][1] not in _WEBM_VIDEO_CODECS:
        raise ParameterError("codec", codec, "a VP8, VP9 or AV1 encoder, such as libvpx-vp9 or libsvtav1, "
                             "as WebM holds no other video", path=path)


def encoder_args(
    settings: EncoderSettings, source: VideoInfo | None, sample_aspect_ratio: Fraction, tick: Fraction
) -> tuple[list[str], list[str]]:
    """ffmpeg's arguments for encoding the video stream, and notes on settings the encoder ignores.

    Args:
        settings: EncoderSettings. Checked, and fitted to the frame size.
        source: VideoInfo or None. The video whose colour tags are kept.
        sample_aspect_ratio: Fraction. Pixel shape of the frames.
        tick: Fraction. The output's clock unit in seconds, fine enough for every frame time.
    """
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
    if settings.tag is not None:
        args += ["-tag:v", settings.tag]
    args += _color_args(source, settings.pix_fmt)
    hdr_args, hdr_notes = _hdr_args(settings.codec, source.hdr if source is not None else None)
    args += hdr_args
    notes += hdr_notes
    filters = _color_filters(source)
    if sample_aspect_ratio != 1:
        sar = sample_aspect_ratio
        filters.append(f"setsar=r={sar.numerator}/{sar.denominator}:max={max(sar.numerator, sar.denominator)}")
    if filters:
        args += ["-vf", ",".join(filters)]
    # Keep the frames' own times (no rate conversion) on a clock fine enough to hold them exactly.
    args += ["-fps_mode", "passthrough", "-enc_time_base", f"1/{tick.denominator}"]
    return args, notes


@dataclass(frozen=True)
class _HdrParameters:
    """How an encoder takes HDR metadata as parameters of its own."""

    option: str  # the ffmpeg option that passes the encoder its parameters
    mastering: str  # its parameter for the mastering display
    light: str  # its parameter for the content light level
    chromaticity: Callable[[float], str]
    luminance: Callable[[float], str]


# x265 counts chromaticity in 0.00002 and luminance in 0.0001 cd/m^2; SVT-AV1 takes them as they are.
_HDR_PARAMETERS = {
    "libx265": _HdrParameters("-x265-params", "master-display", "max-cll",
                              lambda value: str(round(value * 50000)), lambda value: str(round(value * 10000))),
    "libsvtav1": _HdrParameters("-svtav1-params", "mastering-display", "content-light",
                                lambda value: f"{value:.4f}", lambda value: f"{value:.4f}"),
}


def _hdr_args(codec: str, hdr: HdrMetadata | None) -> tuple[list[str], list[str]]:
    """Carry an HDR source's mastering display and content light level into encoders that take them.

    The frames reach ffmpeg as raw RGB, without side data, so these are handed to the
    encoder as its own parameters: x265's and SVT-AV1's. Other encoders have no such
    parameters; a note says the metadata is not carried.
    """
    if hdr is None:
        return [], []
    spec = _HDR_PARAMETERS.get(codec)
    if spec is None:
        return [], [f"HDR mastering display and light level not carried: the frames reach ffmpeg without them, "
                    f"and {codec} has no option for them (libx265 and libsvtav1 have)"]
    params = []
    if hdr.primaries is not None and hdr.white_point is not None and hdr.luminance is not None:
        red, green, blue = hdr.primaries
        xy = lambda point: f"({spec.chromaticity(point[0])},{spec.chromaticity(point[1])})"  # noqa: E731
        low, high = hdr.luminance
        params.append(f"{spec.mastering}=G{xy(green)}B{xy(blue)}R{xy(red)}WP{xy(hdr.white_point)}"
                      f"L({spec.luminance(high)},{spec.luminance(low)})")
    if hdr.max_cll is not None:
        params.append(f"{spec.light}={hdr.max_cll},{hdr.max_fall or 0}")
    return ([spec.option, ":".join(params)] if params else []), []


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
