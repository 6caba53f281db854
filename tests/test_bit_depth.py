"""Sources of more than 8 bits per sample stay that deep: decoded to 16-bit RGB, written at their depth.

A 10-bit luma ramp holds every code a limited-range 10-bit stream can (64 ... 940, 877
codes); decoded to 8 bits and written back it keeps about a quarter of them, and a
smooth sky bands. Clips are made with the bundled ffmpeg.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.io.video import EncoderChoice, VideoReader, encoder_for, ffmpeg_exe, probe_video

runner = CliRunner()
RAMP_WIDTH, RAMP_HEIGHT, RAMP_FRAMES = 880, 64, 3
LUMA_CODES = range(64, 941)  # limited range, 10 bits: 877 codes
HLG = "range=tv:colorspace=bt2020nc:color_primaries=bt2020:color_trc=arib-std-b67"
HDR10_PARAMS = ("log-level=error:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"
                "L(10000000,50):max-cll=1000,400")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def encode_raw(path: Path, frames: bytes, size: tuple[int, int], *args: str) -> Path:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo",
                    "-pix_fmt", "yuv420p10le", "-s", f"{size[0]}x{size[1]}", "-r", "25", "-i", "pipe:0", *args,
                    str(path)], input=frames, check=True, capture_output=True)
    return path


def luma_planes(path: Path) -> np.ndarray:
    """The luma plane of every frame, as 10-bit codes."""
    info = probe_video(path)
    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "yuv420p10le", "pipe:1"], capture_output=True, check=True).stdout
    frame = info.width * info.height * 3 // 2
    planes = np.frombuffer(raw, "<u2").reshape(-1, frame)[:, : info.width * info.height]
    return planes.reshape(-1, info.height, info.width)


def stream_line(path: Path) -> str:
    log = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return next(line for line in log.splitlines() if "Video:" in line)


@pytest.fixture(scope="module")
def ramp(tmp_path_factory) -> Path:
    """A 10-bit HLG clip whose luma climbs one code per column through all 877, neutral chroma, stored losslessly."""
    luma = np.tile(np.minimum(64 + np.arange(RAMP_WIDTH), 940).astype("<u2"), (RAMP_HEIGHT, 1))
    chroma = np.full((RAMP_HEIGHT // 2, RAMP_WIDTH // 2), 512, "<u2")
    frame = luma.tobytes() + chroma.tobytes() + chroma.tobytes()
    path = tmp_path_factory.mktemp("deep") / "ramp.mp4"
    encode_raw(path, frame * RAMP_FRAMES, (RAMP_WIDTH, RAMP_HEIGHT), "-vf", f"setparams={HLG}", "-c:v", "libx265",
               "-x265-params", "lossless=1:log-level=error", "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1")
    codes = np.unique(luma_planes(path))
    assert len(codes) == len(LUMA_CODES)
    return path


@pytest.fixture(scope="module")
def hdr10_clip(tmp_path_factory) -> Path:
    """A 10-bit PQ clip whose frames carry mastering display and content light level metadata."""
    rng = np.random.default_rng(0)
    frames = rng.integers(64, 940, (5, 48 * 64 * 3 // 2), dtype=np.uint16).astype("<u2").tobytes()
    path = tmp_path_factory.mktemp("hdr") / "hdr10.mp4"
    return encode_raw(path, frames, (64, 48), "-vf", "setparams=range=tv:colorspace=bt2020nc:color_primaries=bt2020:"
                      "color_trc=smpte2084", "-c:v", "libx265", "-x265-params", HDR10_PARAMS, "-pix_fmt", "yuv420p10le")


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_ten_bit_ramp_keeps_more_than_700_luma_codes_at_the_defaults(precision, ramp, tmp_path, trained_model_path):
    out = tmp_path / "out.mp4"
    result = invoke("video", ramp, out, "--model", trained_model_path, "--precision", precision)
    assert result.exit_code == 0, result.output
    codes = np.unique(luma_planes(out))
    kept = np.intersect1d(codes, LUMA_CODES)
    assert len(kept) > 700, f"{len(kept)} of {len(LUMA_CODES)} luma codes kept"


def test_a_ten_bit_source_becomes_hevc_main_10_tagged_hvc1_with_its_colour_and_says_so(ramp, tmp_path,
                                                                                       trained_model_path):
    out = tmp_path / "out.mp4"
    result = invoke("video", ramp, out, "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert "10-bit source: HEVC Main 10 (libx265, yuv420p10le, tagged hvc1), keeping 10 bits per sample" \
        in result.output.splitlines()
    info = probe_video(out)
    assert (info.codec, info.pix_fmt, info.bit_depth, info.frame_count) == ("hevc", "yuv420p10le", 10, RAMP_FRAMES)
    assert (info.color_range, info.color_space, info.color_primaries, info.color_transfer) == \
        ("tv", "bt2020nc", "bt2020", "arib-std-b67")
    assert "Main 10" in stream_line(out) and "hvc1" in stream_line(out)


def test_hdr_side_data_is_carried_into_the_output(hdr10_clip, tmp_path, trained_model_path):
    source = probe_video(hdr10_clip)
    assert source.hdr is not None and source.hdr.max_cll == 1000 and source.hdr.luminance == (0.005, 1000.0)
    out = tmp_path / "out.mkv"
    result = invoke("video", hdr10_clip, out, "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    derained = probe_video(out)
    assert derained.hdr == source.hdr
    assert (derained.color_transfer, derained.color_primaries) == ("smpte2084", "bt2020")


def test_an_encoder_that_cannot_carry_hdr_side_data_says_so(hdr10_clip, tmp_path, trained_model_path):
    result = invoke("video", hdr10_clip, tmp_path / "out.webm", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert "note: HDR mastering display and light level not carried: the frames reach ffmpeg without them, " \
           "and libvpx-vp9 has no option for them (libx265 and libsvtav1 have)" in result.output
    assert probe_video(tmp_path / "out.webm").hdr is None


def test_a_ten_bit_source_into_webm_is_vp9_profile_2(ramp, tmp_path, trained_model_path):
    out = tmp_path / "out.webm"
    result = invoke("video", ramp, out, "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert "10-bit source: VP9 profile 2 (libvpx-vp9, yuv420p10le), keeping 10 bits per sample" in result.output
    info = probe_video(out)
    assert (info.codec, info.pix_fmt) == ("vp9", "yuv420p10le")
    assert "Profile 2" in stream_line(out)


def test_a_chosen_pixel_format_wins_and_the_line_says_the_depth_is_lost(ramp, tmp_path, trained_model_path):
    out = tmp_path / "out.mp4"
    result = invoke("video", ramp, out, "--model", trained_model_path, "--pix-fmt", "yuv420p")
    assert result.exit_code == 0, result.output
    assert "10-bit source written at 8 bits per sample: pix_fmt yuv420p as chosen" in result.output
    assert (probe_video(out).codec, probe_video(out).pix_fmt) == ("h264", "yuv420p")


def test_an_eight_bit_source_keeps_todays_encoder_and_says_nothing_of_depth(tmp_path, trained_model_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.2",
                    "-pix_fmt", "yuv420p", str(clip)], check=True)
    out = tmp_path / "out.mp4"
    result = invoke("video", clip, out, "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert "bit source" not in result.output
    assert (probe_video(out).codec, probe_video(out).pix_fmt) == ("h264", "yuv420p")


def test_a_ten_bit_source_decodes_to_16_bit_frames_with_all_its_codes(ramp):
    with VideoReader(ramp) as reader:
        frame = next(iter(reader))
    assert reader.dtype == np.uint16 and frame.dtype == np.uint16
    assert len(np.unique(frame[RAMP_HEIGHT // 2, :, 1])) > 800  # one grey level per column, as in the source


@pytest.mark.parametrize(
    ("name", "choice", "depth", "codec", "pix_fmt", "tag"),
    [
        ("out.mp4", EncoderChoice(), 10, "libx265", "yuv420p10le", "hvc1"),
        ("out.mov", EncoderChoice(), 10, "libx265", "yuv420p10le", "hvc1"),
        ("out.mkv", EncoderChoice(), 10, "libx265", "yuv420p10le", None),
        ("out.webm", EncoderChoice(), 10, "libvpx-vp9", "yuv420p10le", None),
        ("out.mp4", EncoderChoice(), 12, "libx265", "yuv420p12le", "hvc1"),
        ("out.mp4", EncoderChoice(codec="libx264"), 10, "libx264", "yuv420p10le", None),
        ("out.mkv", EncoderChoice(codec="libvpx"), 10, "libvpx", "yuv420p", None),
        ("out.mp4", EncoderChoice(pix_fmt="yuv420p"), 10, "libx264", "yuv420p", None),
        ("out.mp4", EncoderChoice(), 8, "libx264", "yuv420p", None),
        ("out.mp4", EncoderChoice(codec="libx265"), 8, "libx265", "yuv420p", "hvc1"),
    ],
)
def test_encoder_for_keeps_a_deep_sources_depth_unless_told_otherwise(name, choice, depth, codec, pix_fmt, tag):
    settings = encoder_for(Path(name), choice, source_depth=depth)
    assert (settings.codec, settings.pix_fmt, settings.tag) == (codec, pix_fmt, tag)
    assert bool(settings.reason) == (depth > 8)
    settings.check()


def test_a_folder_of_16_bit_frames_is_written_at_more_than_8_bits(tmp_path, trained_model_path):
    from vidderain.io.images import write_image

    frames = tmp_path / "frames"
    frames.mkdir()
    gray = np.linspace(0.05, 0.95, RAMP_WIDTH)  # finer steps than 8 bits can hold
    ramp = np.rint(np.tile(gray, (RAMP_HEIGHT, 1)) * 65535).astype(np.uint16)
    for index in range(RAMP_FRAMES):
        write_image(frames / f"{index:04d}.png", np.repeat(ramp[:, :, None], 3, axis=2))
    out = tmp_path / "out.mp4"
    result = invoke("video", frames, out, "--fps", 25, "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert probe_video(out).bit_depth > 8
    codes = np.unique(luma_planes(out))
    assert len(codes) > 500, f"{len(codes)} luma codes; 8-bit frames give at most about 200 here"
