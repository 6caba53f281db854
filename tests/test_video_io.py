"""Video reading and writing through the bundled ffmpeg, on tiny clips made here.

Each round trip is VideoReader -> VideoWriter with no network in between, so the
output must match the input in everything but codec noise.
"""

from __future__ import annotations

import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vidderain.errors import InputError
from vidderain.io.files import PART_MARK
from vidderain.io.video import (
    Clip,
    EncoderChoice,
    EncoderSettings,
    VideoReader,
    VideoWriter,
    encoder_for,
    ffmpeg_exe,
    probe_video,
    read_frame_folder,
)

NTSC = Fraction(30000, 1001)
LOSSLESS = EncoderSettings(crf=0, pix_fmt="yuv444p", preset="ultrafast")


def make_clip(path: Path, *args: str) -> Path:
    """Run the bundled ffmpeg with `args` and write `path`."""
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, str(path)],
        check=True,
        capture_output=True,
    )
    return path


def round_trip(source: Path, out: Path, settings: EncoderSettings = EncoderSettings(), **reader_options) -> tuple:
    """Copy `source` to `out` frame by frame; return (input frames, reader, writer)."""
    frames = []
    with VideoReader(source, **reader_options) as reader, VideoWriter.matching(out, reader, settings) as writer:
        for frame, time in reader.timed():
            frames.append(frame)
            writer.write(frame, time)
    return frames, reader, writer


def read_all(path: Path, **options) -> tuple[list[np.ndarray], VideoReader]:
    with VideoReader(path, **options) as reader:
        return list(reader), reader


def stream_durations(path: Path, kind: str) -> list[float]:
    """Seconds each stream of `kind` ("a", "s") lasts, from its packet timestamps."""
    info = probe_video(path, count_frames=False)
    durations = []
    for index in range(info.audio_streams if kind == "a" else info.subtitle_streams):
        result = subprocess.run(
            [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(path), "-map", f"0:{kind}:{index}"]
            + ["-c", "copy", "-f", "framecrc", "-"],
            capture_output=True,
            text=True,
            check=True,
        )
        packets = [line.split(",") for line in result.stdout.splitlines() if line and not line.startswith("#")]
        # Packets flagged discard (F=0x4) lie before a trim point; players skip them.
        packets = [p for p in packets if not any(f.strip().startswith("F=") and int(f.strip()[2:], 16) & 4 for f in p)]
        tb = Fraction(re.search(r"#tb 0: (\d+/\d+)", result.stdout)[1])
        starts = [int(p[2]) for p in packets]
        ends = [int(p[2]) + int(p[3]) for p in packets]
        durations.append(float((max(ends) - min(starts)) * tb))
    return durations


def stream_codecs(path: Path, kind: str) -> list[str]:
    """Codec names of the streams of `kind` ("Audio", "Subtitle") ffmpeg lists for `path`."""
    stderr = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return re.findall(rf"Stream #0:\d+\S*: {kind}: (\w+)", stderr)


def corner_means(frame: np.ndarray) -> dict[str, float]:
    """Mean red level in each corner quarter of a frame."""
    h, w = frame.shape[0] // 4, frame.shape[1] // 4
    red = frame[..., 0].astype(float)
    return {
        "top_left": red[:h, :w].mean(),
        "top_right": red[:h, -w:].mean(),
        "bottom_left": red[-h:, :w].mean(),
        "bottom_right": red[-h:, -w:].mean(),
    }


def brightest_corner(frame: np.ndarray) -> str:
    means = corner_means(frame)
    return max(means, key=means.get)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """The test clips, made once: tiny, short, each with one property under test."""
    folder = tmp_path_factory.mktemp("clips")
    marker = "color=c=black:s=64x48:r=25:d=0.4,drawbox=x=0:y=0:w=16:h=12:color=red:t=fill"
    made = {
        # (a) 29.97 fps with stereo audio that outlasts the video.
        "ntsc": make_clip(
            folder / "ntsc.mp4",
            *("-f", "lavfi", "-i", "testsrc2=s=64x48:r=30000/1001:d=1"),
            *("-f", "lavfi", "-i", "sine=f=440:d=1.5", "-ac", "2"),
            *("-pix_fmt", "yuv420p", "-c:v", "libx264", "-c:a", "aac"),
        ),
        "marker": make_clip(folder / "marker.mp4", "-f", "lavfi", "-i", marker, "-pix_fmt", "yuv420p"),
        # (c) odd size (testsrc is RGB, so the size is not rounded to even).
        "odd": make_clip(
            folder / "odd.mp4", "-f", "lavfi", "-i", "testsrc=s=321x181:r=25:d=0.4", "-pix_fmt", "yuv444p"
        ),
        # (d) variable rate: half a second at 30 fps, then half a second at 15 fps.
        "vfr": make_clip(
            folder / "vfr.mp4",
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=64x48:r=30:d=0.5[a];testsrc=s=64x48:r=15:d=0.5[b];[a][b]concat=n=2:v=1:a=0",
            *("-f", "lavfi", "-i", "sine=d=1", "-fps_mode", "passthrough", "-pix_fmt", "yuv420p", "-c:a", "aac"),
        ),
        # (e) no audio.
        "silent": make_clip(
            folder / "silent.mp4", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=24:d=0.5", "-pix_fmt", "yuv420p"
        ),
        # (f) two audio tracks of different codecs and lengths.
        "two_audio": make_clip(
            folder / "two_audio.mkv",
            *("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=1"),
            *("-f", "lavfi", "-i", "sine=f=300:d=1"),
            *("-f", "lavfi", "-i", "sine=f=600:d=1.2", "-ac", "2"),
            *("-map", "0", "-map", "1", "-map", "2", "-pix_fmt", "yuv420p"),
            *("-c:a:0", "aac", "-c:a:1", "libmp3lame"),
        ),
    }
    # (b) the marker clip shown a quarter turn counter-clockwise (display matrix, as phones write it).
    made["rotated"] = make_clip(
        folder / "rotated.mp4", "-display_rotation", "90", "-i", str(made["marker"]), "-c", "copy"
    )
    # The same turn told only by the legacy `rotate` tag (clockwise), which autorotation ignores.
    made["rotate_tag"] = make_clip(
        folder / "rotate_tag.mkv", "-i", str(made["marker"]), "-c", "copy", "-metadata:s:v:0", "rotate=90"
    )
    srt = folder / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,300\nrain\n\n2\n00:00:00,400 --> 00:00:00,700\nstops\n")
    made["subtitled"] = make_clip(
        folder / "subtitled.mkv",
        *("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.8", "-f", "lavfi", "-i", "sine=d=0.8", "-i", str(srt)),
        *("-map", "0", "-map", "1", "-map", "2", "-pix_fmt", "yuv420p", "-c:a", "aac", "-c:s", "srt"),
    )
    return made


# ---------------------------------------------------------------------------- probing


def test_probe_reads_exact_ntsc_rate_and_streams(clips):
    info = probe_video(clips["ntsc"])
    assert info.fps == NTSC
    assert (info.width, info.height) == (64, 48)
    assert info.frame_count == 30
    assert info.duration == pytest.approx(30 / float(NTSC), abs=1e-3)
    assert info.audio_streams == 1 and info.subtitle_streams == 0
    assert info.rotation == 0 and not info.variable_frame_rate


def test_probe_reports_display_rotation_and_display_size(clips):
    info = probe_video(clips["rotated"])
    # "rotation of 90 degrees" counter-clockwise is a 270 degree clockwise turn.
    assert info.rotation == 270
    assert (info.width, info.height) == (64, 48)
    assert (info.display_width, info.display_height) == (48, 64)


def test_probe_reads_legacy_rotate_tag(clips):
    assert probe_video(clips["rotate_tag"]).rotation == 90


def test_probe_flags_variable_frame_rate(clips):
    info = probe_video(clips["vfr"])
    assert info.variable_frame_rate
    assert info.frame_count == 15 + 8


def test_probe_missing_file_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        probe_video(tmp_path / "absent.mp4")


def test_probe_text_file_named_mp4_raises_one_line_input_error(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n")
    with pytest.raises(InputError, match="not a video") as caught:
        probe_video(fake)
    assert str(fake) in str(caught.value) and "\n" not in str(caught.value)


def test_probe_audio_only_file_says_no_video_stream(tmp_path):
    audio = make_clip(tmp_path / "tone.m4a", "-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "aac")
    with pytest.raises(InputError, match="no video stream"):
        probe_video(audio)


# ---------------------------------------------------------------------------- reading


def test_reader_yields_every_frame_once_with_timestamps(clips):
    frames, reader = read_all(clips["ntsc"])
    assert len(frames) == 30
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert reader.timestamps == [i / NTSC for i in range(30)]


def test_reader_start_and_duration_select_frames(clips):
    frames, reader = read_all(clips["ntsc"], start=0.5, duration=0.3)
    # Frames 15..23 (0.5005 s .. 0.7674 s) lie in [0.5, 0.8).
    assert len(frames) == 9
    assert float(reader.timestamps[0]) == pytest.approx(15 / float(NTSC) - 0.5, abs=1e-6)


def test_reader_turns_rotated_frames_upright(clips):
    (stored, *_), _ = read_all(clips["marker"])
    (upright, *_), reader = read_all(clips["rotated"])
    assert (reader.width, reader.height) == (48, 64)
    assert brightest_corner(stored) == "top_left"
    # A quarter turn counter-clockwise takes the top-left corner to the bottom left.
    assert brightest_corner(upright) == "bottom_left"
    np.testing.assert_allclose(upright, np.rot90(stored, k=1), atol=2)


def test_reader_applies_legacy_rotate_tag(clips):
    (upright, *_), reader = read_all(clips["rotate_tag"])
    assert (reader.width, reader.height) == (48, 64)
    assert brightest_corner(upright) == "top_right"


def test_closing_reader_early_stops_ffmpeg_without_zombies(clips):
    with VideoReader(clips["ntsc"]) as reader:
        for _ in reader:
            break
    assert _child_processes() == []


def _child_processes() -> list[int]:
    """Process ids whose parent is this process (running or zombie), from /proc."""
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc")
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == os.getpid():
            children.append(int(stat.parent.name))
    return children


def test_reader_rejects_negative_start(clips):
    with pytest.raises(InputError, match="start"):
        VideoReader(clips["ntsc"], start=-1.0)


# ---------------------------------------------------------------------------- round trips


def test_round_trip_keeps_count_exact_rate_and_longer_audio(clips, tmp_path):
    out = tmp_path / "out.mp4"
    frames, _, writer = round_trip(clips["ntsc"], out)
    info = probe_video(out)
    assert info.frame_count == len(frames) == 30
    assert info.fps == NTSC
    assert (info.display_width, info.display_height) == (64, 48)
    assert info.audio_streams == 1 and stream_codecs(out, "Audio") == ["aac"]
    # The audio is copied whole: it still outlasts the video by half a second.
    assert stream_durations(out, "a") == pytest.approx(stream_durations(clips["ntsc"], "a"), abs=0.05)
    assert stream_durations(out, "a")[0] == pytest.approx(1.5, abs=0.05)
    assert writer.notes == []


@pytest.mark.parametrize("suffix", [".mov", ".mkv", ".avi"])
def test_round_trip_into_other_containers(clips, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    frames, _, _ = round_trip(clips["ntsc"], out)
    info = probe_video(out)
    assert info.frame_count == len(frames)
    assert info.audio_streams == 1
    # Matroska stores times in milliseconds; the others keep the rate exactly.
    if suffix == ".mkv":
        assert float(info.fps) == pytest.approx(float(NTSC), abs=1e-3)
    else:
        assert info.fps == NTSC


def test_matroska_millisecond_times_come_back_as_exact_rate(clips, tmp_path):
    source = make_clip(tmp_path / "ntsc.mkv", "-i", str(clips["ntsc"]), "-c", "copy")
    assert probe_video(source).time_base == Fraction(1, 1000)
    out = tmp_path / "out.mp4"
    round_trip(source, out)
    assert probe_video(out).fps == NTSC
    _, reader = read_all(out)
    assert reader.timestamps == [i / NTSC for i in range(30)]


def test_rotated_clip_comes_out_upright_without_rotation_flag(clips, tmp_path):
    out = tmp_path / "upright.mp4"
    frames, _, _ = round_trip(clips["rotated"], out)
    info = probe_video(out)
    assert info.rotation == 0
    assert (info.display_width, info.display_height) == (48, 64)
    written, _ = read_all(out)
    assert len(written) == len(frames)
    # Displayed the same way up as the source: the marker stays bottom left.
    assert brightest_corner(written[0]) == brightest_corner(frames[0]) == "bottom_left"


def test_odd_size_keeps_exact_displayed_size(clips, tmp_path):
    out = tmp_path / "odd.mp4"
    frames, reader, writer = round_trip(clips["odd"], out)
    assert (reader.width, reader.height) == (321, 181)
    # 4:2:0 H.264 cannot store odd sides; the writer says it switched to 4:4:4.
    assert writer.settings.pix_fmt == "yuv444p"
    assert any("odd" in note for note in writer.notes)
    info = probe_video(out)
    assert (info.display_width, info.display_height) == (321, 181)
    written, _ = read_all(out)
    assert len(written) == len(frames) and written[0].shape == (181, 321, 3)


def test_variable_frame_rate_keeps_every_timestamp(clips, tmp_path):
    out = tmp_path / "vfr.mp4"
    frames, reader, _ = round_trip(clips["vfr"], out)
    written, written_reader = read_all(out)
    assert len(written) == len(frames) == 23
    assert written_reader.timestamps == reader.timestamps
    assert probe_video(out).variable_frame_rate
    assert stream_durations(out, "a") == pytest.approx(stream_durations(clips["vfr"], "a"), abs=0.05)


def test_clip_without_audio_stays_silent(clips, tmp_path):
    out = tmp_path / "silent.mp4"
    frames, _, _ = round_trip(clips["silent"], out)
    info = probe_video(out)
    assert info.audio_streams == 0
    assert info.frame_count == len(frames) == 12
    assert info.fps == 24


def test_two_audio_tracks_are_both_copied(clips, tmp_path):
    out = tmp_path / "two.mp4"
    _, _, writer = round_trip(clips["two_audio"], out)
    assert probe_video(out).audio_streams == 2
    assert stream_codecs(out, "Audio") == ["aac", "mp3"]
    assert stream_durations(out, "a") == pytest.approx(stream_durations(clips["two_audio"], "a"), abs=0.05)
    assert writer.notes == []


def test_subtitles_become_mov_text_in_mp4(clips, tmp_path):
    out = tmp_path / "subs.mp4"
    _, _, writer = round_trip(clips["subtitled"], out)
    assert stream_codecs(out, "Subtitle") == ["mov_text"]
    assert any("mov_text" in note for note in writer.notes)


def test_webm_reencodes_aac_to_opus_and_says_so(clips, tmp_path):
    out = tmp_path / "out.webm"
    settings = EncoderSettings(codec="libvpx-vp9", crf=40, preset=None)
    frames, _, writer = round_trip(clips["subtitled"], out, settings)
    assert stream_codecs(out, "Audio") == ["opus"]
    assert stream_codecs(out, "Subtitle") == ["webvtt"]
    assert any("libopus" in note for note in writer.notes)
    assert probe_video(out).frame_count == len(frames)


def test_trim_applies_to_audio_too(clips, tmp_path):
    out = tmp_path / "trim.mp4"
    frames, _, _ = round_trip(clips["ntsc"], out, start=0.2, duration=0.5)
    assert len(frames) == 15
    # Audio is cut at packet boundaries (1024 samples, 23 ms at 44.1 kHz).
    assert stream_durations(out, "a")[0] == pytest.approx(0.5, abs=0.05)
    assert probe_video(out).duration == pytest.approx(0.5, abs=1.5 / float(NTSC))


def test_lossless_crf0_yuv444p_matches_input_within_rounding(clips, tmp_path):
    out = tmp_path / "lossless.mkv"
    frames, _, _ = round_trip(clips["ntsc"], out, LOSSLESS)
    written, _ = read_all(out)
    assert len(written) == len(frames)
    worst = max(int(np.abs(a.astype(np.int16) - b).max()) for a, b in zip(frames, written))
    assert worst <= 2


@pytest.mark.parametrize(("color_range", "matrix"), [("pc", "bt709"), ("tv", "bt470bg")])
def test_colour_range_and_matrix_are_kept(tmp_path, color_range, matrix):
    source = make_clip(
        tmp_path / "tagged.mp4",
        *("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.2"),
        "-vf",
        f"setparams=range={color_range}:colorspace={matrix}:color_primaries={matrix}:color_trc={matrix}",
        *("-pix_fmt", "yuv420p", "-c:v", "libx264"),
    )
    out = tmp_path / "out.mp4"
    frames, _, _ = round_trip(source, out, LOSSLESS)
    before, after = probe_video(source), probe_video(out)
    tags = ("color_range", "color_space", "color_primaries", "color_transfer")
    assert [getattr(before, t) for t in tags] == [color_range, matrix, matrix, matrix]
    assert [getattr(after, t) for t in tags] == [getattr(before, t) for t in tags]
    # A range or matrix mix-up would shift levels by far more than rounding.
    written, _ = read_all(out)
    assert max(int(np.abs(a.astype(np.int16) - b).max()) for a, b in zip(frames, written)) <= 2


def test_same_input_gives_same_bytes(clips, tmp_path):
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    round_trip(clips["silent"], first)
    round_trip(clips["silent"], second)
    assert first.read_bytes() == second.read_bytes()


# ---------------------------------------------------------------------------- writing without a source


def test_writer_without_source_keeps_given_rational_rate(tmp_path):
    out = tmp_path / "made.mp4"
    with VideoWriter(out, 32, 16, "24000/1001") as writer:
        for level in range(0, 250, 25):
            writer.write(np.full((16, 32, 3), level, np.uint8))
    info = probe_video(out)
    assert info.fps == Fraction(24000, 1001)
    assert info.frame_count == 10 and info.audio_streams == 0


def test_wrong_frame_shape_is_refused(tmp_path):
    with VideoWriter(tmp_path / "out.mp4", 32, 16, 25) as writer:
        with pytest.raises(ValueError, match="shape"):
            writer.write(np.zeros((16, 31, 3), np.uint8))
        writer.write(np.zeros((16, 32, 3), np.uint8))


# ---------------------------------------------------------------------------- failures leave nothing


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_exception_inside_with_leaves_no_output_or_temp_file(clips, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoReader(clips["ntsc"]) as reader, VideoWriter.matching(out, reader) as writer:
            for index, frame in enumerate(reader):
                writer.write(frame)
                if index == 10:
                    raise RuntimeError("boom")
    assert _leftovers(tmp_path) == []
    assert _child_processes() == []


def test_ffmpeg_failure_is_one_input_error_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "out.mkv"
    # MPEG-2 accepts only broadcast frame rates: ffmpeg fails when it opens the encoder.
    settings = EncoderSettings(codec="mpeg2video", crf=None, preset=None)
    with pytest.raises(InputError) as caught:
        with VideoWriter(out, 32, 16, 7, settings=settings) as writer:
            for _ in range(5):
                writer.write(np.zeros((16, 32, 3), np.uint8))
    message = str(caught.value)
    assert "7/1 fps" in message and "\n" not in message
    assert _leftovers(tmp_path) == []


def test_unknown_codec_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(InputError, match="'nosuchcodec'"):
        VideoWriter(tmp_path / "out.mp4", 32, 16, 25, settings=EncoderSettings(codec="nosuchcodec"))
    assert _leftovers(tmp_path) == []


def test_no_frames_written_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(InputError, match="no frames"):
        with VideoWriter(tmp_path / "out.mp4", 32, 16, 25):
            pass
    assert _leftovers(tmp_path) == []


def test_writing_over_the_source_is_refused(clips):
    info = probe_video(clips["silent"])
    with pytest.raises(InputError, match="the output is the input"):
        VideoWriter(clips["silent"], 64, 48, info.fps, source=Clip(info))
    assert not any(PART_MARK in p.name for p in clips["silent"].parent.iterdir())


def test_webm_refuses_h264(tmp_path):
    with pytest.raises(InputError, match="WebM"):
        VideoWriter(tmp_path / "out.webm", 32, 16, 25, settings=EncoderSettings(codec="libx264"))


def test_unknown_output_suffix_is_refused(tmp_path):
    with pytest.raises(InputError, match="'.flv'"):
        VideoWriter(tmp_path / "out.flv", 32, 16, 25)


# ---------------------------------------------------------------------------- encoder settings


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (EncoderSettings(crf=-1), "crf=-1"),
        (EncoderSettings(crf=52), "crf=52"),
        (EncoderSettings(preset="warp"), "'warp'"),
        (EncoderSettings(pix_fmt="nope"), "'nope'"),
        (EncoderSettings(pix_fmt="rgb24"), "'rgb24'"),
        (EncoderSettings(codec="aac"), "'aac'"),
    ],
)
def test_encoder_settings_check_names_the_bad_value(settings, named):
    with pytest.raises(InputError) as caught:
        settings.check()
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("name", "choice", "expected"),
    [
        ("out.mp4", EncoderChoice(), EncoderSettings("libx264", 18, "medium", "yuv420p")),
        ("out.webm", EncoderChoice(), EncoderSettings("libvpx-vp9", 32, None, "yuv420p")),
        ("out.webm", EncoderChoice(crf=30), EncoderSettings("libvpx-vp9", 30, None, "yuv420p")),
        ("out.mkv", EncoderChoice(codec="libx265", preset="slow"), EncoderSettings("libx265", 18, "slow", "yuv420p")),
        ("out.mp4", EncoderChoice(codec="libsvtav1"), EncoderSettings("libsvtav1", 18, None, "yuv420p")),
        ("out.mov", EncoderChoice(pix_fmt="yuv444p"), EncoderSettings("libx264", 18, "medium", "yuv444p")),
    ],
)
def test_encoder_for_keeps_what_is_chosen_and_gives_the_rest_the_containers_defaults(name, choice, expected):
    settings = encoder_for(Path(name), choice)
    assert settings == expected
    settings.check()


def test_default_encoder_settings_are_valid():
    EncoderSettings().check()


@pytest.mark.parametrize(
    ("pix_fmt", "size", "expected"),
    [
        ("yuv420p", (320, 181), "yuv444p"),
        ("yuv420p", (321, 180), "yuv444p"),
        ("yuv422p", (320, 181), "yuv422p"),
        ("yuv422p", (321, 180), "yuv444p"),
        ("yuv420p10le", (321, 181), "yuv444p10le"),
        ("yuv420p", (320, 180), "yuv420p"),
    ],
)
def test_odd_sizes_switch_to_full_chroma_only_where_needed(pix_fmt, size, expected):
    settings, notes = EncoderSettings(pix_fmt=pix_fmt).for_frame_size(*size)
    assert settings.pix_fmt == expected
    assert bool(notes) == (expected != pix_fmt)


def test_odd_sizes_keep_420_for_codecs_that_store_them():
    settings, notes = EncoderSettings(codec="libvpx-vp9", preset=None).for_frame_size(321, 181)
    assert settings.pix_fmt == "yuv420p" and notes == []


# ---------------------------------------------------------------------------- frame folders


def test_frame_folder_is_sorted_naturally(tmp_path):
    for name in ["frame10.png", "frame2.png", "frame1.png", "notes.txt", ".hidden.png", f".x{PART_MARK}.png"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in read_frame_folder(tmp_path)] == ["frame1.png", "frame2.png", "frame10.png"]


def test_frame_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        read_frame_folder(tmp_path / "absent")
    with pytest.raises(InputError, match="no image frames"):
        read_frame_folder(tmp_path)
