"""`vidderain video` end to end: real clips made with the bundled ffmpeg, a real trained model.

The guarantees of a video job (every frame kept with its time, audio, rotation, no
half-written output) are checked with a single-frame model and with a temporal one,
which reads each frame's window of neighbouring frames.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.engine import Engine, TileSettings
from vidderain.io.files import PART_MARK
from vidderain.io.images import write_image
from vidderain.io.video import VideoReader, VideoWriter, ffmpeg_exe, probe_video
from vidderain.pixels import to_float, to_integer
from vidderain.temporal import WindowSpec, WindowStacker, window_indices

runner = CliRunner()
NTSC = Fraction(30000, 1001)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def make_clip(path: Path, *args: str) -> Path:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, str(path)],
                   check=True, capture_output=True)
    return path


@pytest.fixture(params=["single-frame", "temporal"])
def any_model_path(request) -> Path:
    """A single-frame model, then a temporal one (5 frames, aligned): the guarantees hold for both."""
    return request.getfixturevalue("trained_model_path" if request.param == "single-frame" else "temporal_model_path")


@pytest.fixture(scope="module")
def ntsc_clip(tmp_path_factory) -> Path:
    """1 s of 64x48 video at 30000/1001 fps with 1.5 s of stereo audio."""
    folder = tmp_path_factory.mktemp("clips")
    return make_clip(folder / "ntsc.mp4", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=30000/1001:d=1",
                     "-f", "lavfi", "-i", "sine=f=440:d=1.5", "-ac", "2", "-pix_fmt", "yuv420p", "-c:a", "aac")


def test_video_keeps_frame_count_exact_rate_size_and_audio(ntsc_clip, tmp_path, any_model_path):
    out = tmp_path / "out.mp4"
    result = invoke("video", ntsc_clip, out, "--model", any_model_path)
    assert result.exit_code == 0, result.output
    source, derained = probe_video(ntsc_clip), probe_video(out)
    assert derained.frame_count == source.frame_count == 30
    assert derained.fps == NTSC
    assert (derained.display_width, derained.display_height) == (64, 48)
    assert derained.audio_streams == 1
    assert abs(derained.duration - source.duration) < 0.05


@pytest.mark.parametrize("ensemble", [False, True], ids=["plain", "ensemble"])
def test_lossless_video_frame_equals_the_image_engine_result(ntsc_clip, tmp_path, trained_model, ensemble):
    out = tmp_path / "lossless.mkv"
    result = invoke("video", ntsc_clip, out, "--model", trained_model.path, "--crf", 0, "--pix-fmt", "yuv444p",
                    "--preset", "ultrafast", *(["--ensemble"] if ensemble else []))
    assert result.exit_code == 0, result.output
    with VideoReader(ntsc_clip) as reader:
        source_frames = list(reader)
    with VideoReader(out) as reader:
        video_frames = list(reader)
    settings = TileSettings(overlap=trained_model.overlap, ensemble=ensemble)
    engine = Engine(trained_model.model, trained_model.stride, settings)
    for index in (0, 17, 29):
        expected = to_integer(engine.process(to_float(source_frames[index])))
        difference = np.abs(video_frames[index].astype(int) - expected.astype(int))
        assert difference.max() <= 2, f"frame {index} differs by {difference.max()}"


@pytest.fixture(scope="module")
def rainy_clip(tmp_path_factory, make_natural_image, make_rainy) -> Path:
    """12 frames of 64x48 at 25 fps: a still scene under rain that falls afresh in every frame."""
    scene = make_natural_image(48, 64, seed=7)
    path = tmp_path_factory.mktemp("clips") / "rainy.mp4"
    with VideoWriter(path, 64, 48, 25) as writer:
        for i in range(12):
            writer.write(to_integer(make_rainy(scene, seed=i)))
    return path


@pytest.fixture(scope="module")
def neighbour_sensitive_model(tmp_path_factory):
    """A temporal model (5 frames, flow-aligned) whose output moves with every frame of its window.

    Untrained on purpose: its random first layer weighs the neighbours as much as the
    centre, so a wrong window shows in its output (a briefly trained one leans on the
    centre frame and hides it).
    """
    import keras

    from vidderain.models import load_model, save_model
    from vidderain.nets.temporal import build_temporal_unet

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("models") / "untrained-temporal.keras"
    save_model(build_temporal_unet(5, widths=(4, 8, 16, 32), name="temporal"), path,
               {"arch": "temporal", "stride": 8, "overlap": 32, "frames": 5, "align": True})  # as files before
    # the camera alignment said "aligned by optical flow"; they still load and run so
    return load_model(path)


@pytest.mark.parametrize("ensemble", [False, True], ids=["compare-side", "ensemble"])
def test_lossless_temporal_video_frame_equals_the_engine_on_its_window(rainy_clip, tmp_path, neighbour_sensitive_model,
                                                                       ensemble):
    loaded = neighbour_sensitive_model
    out = tmp_path / "lossless.mkv"
    extra = ["--ensemble"] if ensemble else ["--compare", "side"]
    # Stored as RGB without loss, the network in float32 as below: the frames must match to the rounding.
    result = invoke("video", rainy_clip, out, "--model", loaded.path, "--codec", "ffv1", "--pix-fmt", "bgr0",
                    "--precision", "float32", *extra)
    assert result.exit_code == 0, result.output
    with VideoReader(rainy_clip) as reader:
        source_frames = list(reader)
    with VideoReader(out) as reader:
        video_frames = list(reader)
    count = len(source_frames)
    assert len(video_frames) == count == 12
    engine = Engine(loaded.model, loaded.stride, TileSettings(overlap=loaded.overlap, ensemble=ensemble))
    stacker = WindowStacker(WindowSpec(5, align="flow"))
    prepared = [stacker.prepare(to_float(frame)) for frame in source_frames]

    def derained_window(indices: list[int]) -> np.ndarray:
        return to_integer(engine.process(stacker.stack([prepared[i] for i in indices]))).astype(int)

    for index in (0, 1, 6, 10, 11):  # the replicated edges at both ends, and a frame with all its neighbours
        expected = derained_window(window_indices(index, count, 2))
        derained = (video_frames[index] if ensemble else video_frames[index][:, 64:]).astype(int)
        assert np.abs(derained - expected).max() <= 1, f"frame {index} differs by {np.abs(derained - expected).max()}"
        # A wrong window would show: the centre frame alone, or the window of the frame beside it.
        beside = window_indices(index - 1 if index else 1, count, 2)
        for wrong in ([index] * 5, beside):
            assert np.abs(derained - derained_window(wrong)).max() > 4, f"frame {index}: {wrong}"
        if not ensemble:  # the input beside the result is the window's centre frame
            np.testing.assert_array_equal(video_frames[index][:, :64], source_frames[index], f"frame {index}")


def test_rotated_phone_clip_comes_out_upright(tmp_path, any_model_path):
    stored = make_clip(tmp_path / "stored.mp4", "-f", "lavfi", "-i", "testsrc2=s=64x32:r=25:d=0.4", "-pix_fmt", "yuv420p")
    clip = make_clip(tmp_path / "phone.mp4", "-display_rotation", "90", "-i", str(stored), "-c", "copy")
    assert probe_video(clip).rotation in (90, 270)
    out = tmp_path / "out.mp4"
    assert invoke("video", clip, out, "--model", any_model_path).exit_code == 0
    derained = probe_video(out)
    assert (derained.display_width, derained.display_height) == (32, 64)


def test_odd_size_is_kept_without_scaling(tmp_path, trained_model_path):
    clip = make_clip(tmp_path / "odd.mp4", "-f", "lavfi", "-i", "testsrc=s=321x181:r=25:d=0.2", "-pix_fmt", "yuv444p")
    out = tmp_path / "out.mp4"
    result = invoke("video", clip, out, "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    derained = probe_video(out)
    assert (derained.display_width, derained.display_height, derained.frame_count) == (321, 181, 5)


def test_variable_frame_rate_keeps_its_timestamps(tmp_path, any_model_path):
    clip = make_clip(tmp_path / "vfr.mkv", "-f", "lavfi", "-i",
                     "testsrc2=s=64x48:r=30:d=0.4[a];testsrc2=s=64x48:r=10:d=0.4[b];[a][b]concat=n=2:v=1",
                     "-fps_mode", "vfr", "-pix_fmt", "yuv420p")
    out = tmp_path / "out.mkv"
    assert invoke("video", clip, out, "--model", any_model_path).exit_code == 0
    with VideoReader(clip) as reader:
        list(reader)
        source_times = list(reader.timestamps)
    with VideoReader(out) as reader:
        list(reader)
        out_times = list(reader.timestamps)
    assert len(out_times) == len(source_times)
    np.testing.assert_allclose([float(t) for t in out_times], [float(t) for t in source_times], atol=1e-3)


def test_clip_without_audio_works(tmp_path, trained_model_path):
    clip = make_clip(tmp_path / "silent.mp4", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=24:d=0.25", "-pix_fmt", "yuv420p")
    out = tmp_path / "out.mp4"
    assert invoke("video", clip, out, "--model", trained_model_path).exit_code == 0
    assert probe_video(out).audio_streams == 0


def test_side_by_side_compare_doubles_the_width(ntsc_clip, tmp_path, any_model_path):
    out = tmp_path / "compare.mp4"
    assert invoke("video", ntsc_clip, out, "--model", any_model_path, "--compare", "side").exit_code == 0
    assert (probe_video(out).width, probe_video(out).frame_count) == (128, 30)


def test_split_compare_keeps_the_size(ntsc_clip, tmp_path, trained_model_path):
    out = tmp_path / "split.mp4"
    assert invoke("video", ntsc_clip, out, "--model", trained_model_path, "--compare", "split").exit_code == 0
    assert (probe_video(out).width, probe_video(out).frame_count) == (64, 30)


def test_start_and_duration_trim_video_and_audio(ntsc_clip, tmp_path, trained_model_path):
    out = tmp_path / "trim.mp4"
    result = invoke("video", ntsc_clip, out, "--model", trained_model_path, "--start", 0.2, "--duration", 0.5)
    assert result.exit_code == 0, result.output
    assert probe_video(out).frame_count == 15


def test_folder_of_frames_with_fps(tmp_path, any_model_path, make_natural_image):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(1, 12):
        write_image(frames / f"frame{i}.png", to_integer(make_natural_image(48, 64, seed=i)))
    out = tmp_path / "frames.mp4"
    result = invoke("video", frames, out, "--model", any_model_path, "--fps", "30000/1001")
    assert result.exit_code == 0, result.output
    info = probe_video(out)
    assert (info.frame_count, info.fps) == (11, NTSC)


@pytest.mark.parametrize("count", [1, 2])
def test_a_temporal_model_given_a_single_frame_says_so(tmp_path, temporal_model_path, make_natural_image, count):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(count):
        write_image(frames / f"{i}.png", to_integer(make_natural_image(48, 64, seed=i)))
    result = invoke("video", frames, tmp_path / "o.mp4", "--model", temporal_model_path, "--fps", "25")
    assert result.exit_code == 0, result.output
    assert ("a single frame: this model derains each frame from the frames around it" in result.output) == (count == 1)


def test_folder_of_frames_without_fps_is_refused(tmp_path, trained_model_path, make_natural_image):
    frames = tmp_path / "frames"
    frames.mkdir()
    write_image(frames / "1.png", to_integer(make_natural_image(16, 16)))
    result = invoke("video", frames, tmp_path / "o.mp4", "--model", trained_model_path)
    assert result.exit_code == 2
    assert "--fps" in result.output


def test_a_finished_output_is_skipped_with_a_note_as_folder_does(ntsc_clip, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    result = invoke("video", ntsc_clip, out, "--model", "no-such-model")  # the model is never reached
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [f"{out}: already done (use --overwrite to redo)"]
    assert out.read_bytes() == b"precious"


def test_overwrite_redoes_a_finished_output(ntsc_clip, tmp_path, trained_model_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    result = invoke("video", ntsc_clip, out, "--model", trained_model_path, "--overwrite")
    assert result.exit_code == 0, result.output
    assert probe_video(out).frame_count == 30


def test_webm_with_only_a_crf_is_vp9_at_that_crf(ntsc_clip, tmp_path, trained_model_path):
    out = tmp_path / "out.webm"
    result = invoke("video", ntsc_clip, out, "--model", trained_model_path, "--crf", 30)
    assert result.exit_code == 0, result.output
    assert probe_video(out).codec == "vp9"


@pytest.mark.parametrize("flags, flag", [(["--codec", "libx264"], "--codec"), (["--codec", "nosuch"], "--codec"),
                                         (["--pix-fmt", "nosuch"], "--pix-fmt")])
def test_folder_refuses_encoder_settings_its_videos_cannot_use_before_the_model_loads(
        ntsc_clip, tmp_path, trained_model_path, monkeypatch, flags, flag):
    import keras

    loads = []
    monkeypatch.setattr(keras.saving, "load_model", lambda *args, **kwargs: loads.append(args))
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.webm", "-i", str(ntsc_clip), "-frames:v", "3", "-an", "-c:v", "libvpx-vp9")
    result = invoke("folder", folder, tmp_path / "out", "--model", trained_model_path, *flags)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"Received: {flag}=" in lines[0], lines
    assert loads == [] and not (tmp_path / "out" / "clip.webm").exists()


def test_stopped_video_says_a_rerun_resumes_after_its_last_finished_segment(ntsc_clip, tmp_path, any_model_path,
                                                                           monkeypatch):
    original = Engine.run

    def stop_after_two_frames(self, frames):
        for count, item in enumerate(original(self, frames), 1):
            yield item
            if count == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "run", stop_after_two_frames)
    out = tmp_path / "out.mp4"
    result = invoke("video", ntsc_clip, out, "--model", any_model_path)
    assert result.exit_code == 130
    line = result.output.strip().splitlines()[-1]
    assert line == ("interrupted (Ctrl-C); nothing was written under the output's name; "
                    "a re-run resumes it after its last finished segment, kept in a hidden folder beside it "
                    "(or starts it again if none was finished)")
    assert list(tmp_path.iterdir()) == []  # two frames: no segment was finished, so none is kept


def test_not_a_video_is_one_line_and_leaves_nothing(tmp_path, trained_model_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    out = tmp_path / "out.mp4"
    result = invoke("video", fake, out, "--model", trained_model_path)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if PART_MARK in p.name]


@pytest.fixture
def clip_and_still(ntsc_clip, tmp_path, make_natural_image) -> Path:
    """A folder holding the NTSC clip and a still image."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(ntsc_clip.read_bytes())
    write_image(folder / "still.png", to_integer(make_natural_image(32, 40)))
    return folder


def test_folder_command_derains_videos_too(clip_and_still, tmp_path, trained_model_path):
    result = invoke("folder", clip_and_still, tmp_path / "out", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert probe_video(tmp_path / "out" / "clip.mp4").frame_count == 30
    assert (tmp_path / "out" / "still.png").is_file()


def test_folder_with_a_temporal_model_derains_its_videos_and_refuses_a_lone_image(clip_and_still, tmp_path,
                                                                                 temporal_model_path):
    result = invoke("folder", clip_and_still, tmp_path / "out", "--model", temporal_model_path)
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("failed")]
    # Its window would be the image five times: no rain moves, and the network leaves it as it is.
    assert len(failed) == 1 and "still.png: the only frame of its size" in failed[0], result.output
    assert "--model default" in failed[0]
    assert "1 derained, 1 failed, 0 skipped" in result.output
    assert probe_video(tmp_path / "out" / "clip.mp4").frame_count == 30
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4"]
