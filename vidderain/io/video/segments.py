"""Joining the segments of a video into one file, without re-encoding.

A long video is written in segments, each a whole file of consecutive frames
(`VideoWriter` with `copy_streams=False`, times counted from the segment's first
frame), so that a stopped run keeps what it finished. The segments are joined by
ffmpeg's concat demuxer, which copies their packets and places each segment where
its first frame lies after the clip's first; the source's audio and subtitles are muxed
once over the whole length, trimmed like the frames, and the result is written
atomically, like any output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vidderain.errors import InputError
from vidderain.io.files import atomic_output, is_out_of_space, write_error
from vidderain.io.video.encoding import EncoderSettings, container_for
from vidderain.io.video.ffmpeg import FfmpegProcess, file_url
from vidderain.io.video.probe import Clip
from vidderain.io.video.writer import ffmpeg_write_error, mux_command, plan_source_streams

CONCAT_LIST = "concat.txt"  # the list of segments ffmpeg's concat demuxer reads, beside them
_MICROSECONDS = 1_000_000


@dataclass(frozen=True)
class Segment:
    """A finished part of an output video.

    Attributes:
        path: Path. A file holding the video stream of consecutive frames, with times
            counted from its first frame.
        start: Fraction. Seconds from the clip's start to the segment's first frame.
        end: Fraction or None. Seconds from the clip's start to the first frame after
            the segment (the next segment's `start`); None for the last segment.
    """

    path: Path
    start: Fraction
    end: Fraction | None


def concat_list(segments: Sequence[Segment]) -> str:
    """The concat demuxer's script for `segments`: each file, and how long it lasts up to the next.

    The demuxer places each file at the sum of the durations before it, in whole
    microseconds; each duration is the difference of the rounded start times, so the
    sum never drifts from the next segment's own start.
    """
    lines = ["ffconcat version 1.0"]
    for index, segment in enumerate(segments):
        # A file: URL, so no name is read as a protocol; quotes escaped as the script wants.
        quoted = file_url(segment.path).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
        if index + 1 < len(segments):
            if segment.end is None:
                raise ValueError(f"Expected an end for every segment but the last. Received: {segment}")
            micros = _microseconds(segment.end) - _microseconds(segment.start)
            lines.append(f"duration {micros // _MICROSECONDS}.{micros % _MICROSECONDS:06d}")
    return "\n".join(lines) + "\n"


def join_segments(
    segments: Sequence[Segment],
    destination: Path,
    settings: EncoderSettings,
    source: Clip | None = None,
    name: Path | None = None,
) -> list[str]:
    """Join `segments` into `destination` without re-encoding them, with `source`'s other streams.

    Args:
        segments: Segment sequence. In order, all encoded with the same `settings`.
        destination: Path. The output; its suffix picks the container. Written atomically.
        settings: EncoderSettings. What the segments were encoded with (the stream's tag comes from it).
        source: Clip or None. Where audio, subtitles, attachments and metadata come from,
            trimmed like the frames. Defaults to None (the video stream alone).
        name: Path or None. The output errors name. Defaults to None (`destination`).

    Returns:
        Notes on source streams re-encoded or left out.

    Raises:
        InputError: ffmpeg could not join them; nothing is left under `destination`.
        DiskFullError: the destination filled up; nothing is left under its name.
    """
    if not segments:
        raise InputError(f"{name or destination}: no frames were written")
    name = name or destination
    container = container_for(destination)
    script = segments[0].path.parent / CONCAT_LIST
    try:
        script.write_text(concat_list(segments), encoding="utf-8")
    except OSError as exc:
        raise write_error(name, exc.strerror or str(exc), is_out_of_space(exc)) from None
    streams, notes = plan_source_streams(source.info, container) if source is not None else ([], [])
    # The first segment starts at 0, as frames written in one piece do (ffmpeg subtracts an
    # input's start time); the others where their first frame lies after it.
    video_input = ["-f", "concat", "-safe", "0", "-i", file_url(script)]
    video_args = ["-c:v", "copy"] + (["-tag:v", settings.tag] if settings.tag else [])
    args = mux_command(video_input, source, streams, video_args, container)
    try:
        with atomic_output(destination) as tmp:
            process = FfmpegProcess([*args, file_url(tmp)])
            try:
                if process.wait() != 0:
                    raise ffmpeg_write_error(name, process, "ffmpeg could not join its segments")
            finally:
                process.stop()
    except OSError as exc:
        raise write_error(name, exc.strerror or str(exc), is_out_of_space(exc)) from None
    finally:
        script.unlink(missing_ok=True)
    return notes


def _microseconds(seconds: Fraction) -> int:
    return round(seconds * _MICROSECONDS)
