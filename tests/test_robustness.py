"""Bad inputs, odd names, full disks, missing permissions and concurrent runs, through the real command.

Every case checks what the user sees (exit code, one line naming the file and the
reason, no traceback) and that no data is lost: inputs byte for byte unchanged, no
temporary file left, nothing half-written under a final name.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from safety_checks import CLI, child_env, digest_tree, partial_files, run_cli
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.io import files
from vidderain.io.images import read_image, write_image
from vidderain.io.video import ffmpeg_exe, probe_video
from vidderain.io.video.mkv import mkv_header
from vidderain.pixels import to_integer

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_one_line_error(result, *expected: str, code: int = 2) -> str:
    """Exit `code`, exactly one `error:` line containing every `expected` text, no traceback."""
    assert result.exit_code == code, result.output
    lines = error_lines(result)
    assert len(lines) == 1, result.output
    assert all(text in lines[0] for text in expected), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def make_clip(path: Path, *args: str, size: str = "64x48", seconds: float = 0.6, rate: int = 25) -> Path:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"testsrc2=s={size}:r={rate}:d={seconds}", "-pix_fmt", "yuv420p", *args, str(path)],
                   check=True, capture_output=True)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zero_size_png() -> bytes:
    """A PNG whose header says 0x0 pixels, with valid checksums."""
    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")


@pytest.fixture
def photo(make_natural_image, make_rainy):
    def make(path: Path, height: int = 40, width: int = 56, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, to_integer(make_rainy(make_natural_image(height, width, seed=seed), seed=seed)))
        return path

    return make


# Bad paths -------------------------------------------------------------------------------------------


def test_missing_video_is_one_line_before_the_model_loads(tmp_path):
    result = invoke("video", tmp_path / "none.mp4", tmp_path / "out.mp4", "--model", "no-such-model")
    assert_one_line_error(result, "none.mp4: no such file")  # the bad model name is never reached


def test_folder_given_a_file_is_one_line(tmp_path, photo):
    result = invoke("folder", photo(tmp_path / "a.png"), tmp_path / "out")
    assert_one_line_error(result, "is a file, not a folder")


def test_video_given_a_folder_without_fps_is_one_line_before_the_model_loads(tmp_path, photo):
    photo(tmp_path / "frames" / "0001.png")
    result = invoke("video", tmp_path / "frames", tmp_path / "out.mp4", "--model", "no-such-model")
    assert_one_line_error(result, "needs --fps")


def test_video_output_that_is_a_folder_is_one_line(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4")
    (tmp_path / "out").mkdir()
    result = invoke("video", clip, tmp_path / "out", "--model", "no-such-model")
    assert_one_line_error(result, "is a folder, not a video file")


def test_folder_output_that_is_a_file_is_one_line(tmp_path, photo):
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "out").write_text("a file")
    result = invoke("folder", tmp_path / "in", tmp_path / "out", "--model", "no-such-model")
    assert_one_line_error(result, "is a file, not a folder for the results")
    assert (tmp_path / "out").read_text() == "a file"


def test_video_output_equal_to_its_input_is_refused_even_with_overwrite(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4")
    before = digest_tree(tmp_path)
    result = invoke("video", clip, clip, "--overwrite", "--model", "no-such-model")
    assert_one_line_error(result, "the output is the input")
    assert digest_tree(tmp_path) == before


def test_folder_output_equal_to_its_input_is_refused(tmp_path, photo):
    photo(tmp_path / "in" / "a.png")
    before = digest_tree(tmp_path)
    assert_one_line_error(invoke("folder", tmp_path / "in", tmp_path / "in" / "."), "the output is the input")
    assert digest_tree(tmp_path) == before


# Bad files -------------------------------------------------------------------------------------------


def test_text_file_named_mp4_is_one_line_with_ffmpegs_reason(tmp_path, trained_model_path):
    (tmp_path / "notes.mp4").write_text("this is not a video")
    result = invoke("video", tmp_path / "notes.mp4", tmp_path / "out.mp4", "--model", trained_model_path)
    line = assert_one_line_error(result, "notes.mp4: not a video ffmpeg can read (")
    assert "Invalid data" in line or "moov atom" in line  # ffmpeg's own words, in one line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def test_truncated_mp4_without_its_index_is_refused_and_leaves_nothing(tmp_path, trained_model_path):
    clip = make_clip(tmp_path / "whole.mp4", seconds=2)
    (tmp_path / "cut.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # index (moov) at the end
    result = invoke("video", tmp_path / "cut.mp4", tmp_path / "out.mp4", "--model", trained_model_path)
    assert_one_line_error(result, "cut.mp4", "moov atom not found")
    assert not (tmp_path / "out.mp4").exists() and partial_files(tmp_path) == []


def test_truncated_mp4_is_derained_as_far_as_it_decodes_and_says_so(tmp_path, trained_model_path):
    clip = make_clip(tmp_path / "whole.mp4", "-movflags", "+faststart", seconds=4)  # index first, as phones write
    (tmp_path / "cut.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size * 7 // 10])
    result = invoke("video", tmp_path / "cut.mp4", tmp_path / "out.mp4", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert "note: damaged or truncated: ffmpeg reported" in result.stderr
    frames = probe_video(tmp_path / "out.mp4").frame_count
    assert 0 < frames < probe_video(clip).frame_count
    assert f"the {frames} frames it could decode were derained" in result.stderr
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("kind", ["mp4 cut to zero frames", "matroska header without frames"])
def test_video_with_zero_frames_is_one_line(tmp_path, trained_model_path, kind):
    if kind == "mp4 cut to zero frames":
        make_clip(tmp_path / "empty.mp4", "-frames:v", "0")
    else:
        (tmp_path / "empty.mkv").write_bytes(mkv_header(64, 48, 40_000_000))  # a video track, no frame
    source = next(tmp_path.glob("empty.*"))
    result = invoke("video", source, tmp_path / "out.mp4", "--model", trained_model_path)
    assert_one_line_error(result, f"{source.name}: ")
    assert not (tmp_path / "out.mp4").exists() and partial_files(tmp_path) == []


def test_bad_files_in_a_batch_are_named_with_their_reason_and_the_rest_are_derained(tmp_path, photo, trained_model_path):
    folder = tmp_path / "in"
    photo(folder / "good1.png", seed=1)
    photo(folder / "good2.jpg", seed=2)
    (folder / "empty.png").write_bytes(b"")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(300))
    (folder / "zero.png").write_bytes(zero_size_png())
    (folder / "notes.mp4").write_text("this is not a video")
    whole = make_clip(tmp_path / "whole.mp4", seconds=2)
    (folder / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    before = digest_tree(folder)
    result = invoke("folder", folder, tmp_path / "out", "--model", trained_model_path)
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    expected = {"empty.png": "empty file", "corrupt.jpg": "not a readable image", "zero.png": "not a readable image",
                "notes.mp4": "not a video ffmpeg can read", "cut.mp4": "not a video ffmpeg can read"}
    assert len(failed) == len(expected), result.stderr
    for name, reason in expected.items():
        assert any(name in line and reason in line for line in failed), (name, failed)
    assert "2 derained, 5 failed, 0 skipped" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good1.png", "good2.jpg"]
    assert digest_tree(folder) == before and partial_files(tmp_path) == []
    assert "Traceback" not in result.output


def test_one_pixel_image_comes_out_one_pixel(tmp_path, trained_model_path):
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "dot.png", np.array([[[200, 120, 40]]], np.uint8))
    result = invoke("folder", tmp_path / "in", tmp_path / "out", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out" / "dot.png").shape == (1, 1, 3)


def test_cmyk_palette_and_16_bit_images_come_out_in_their_own_layout(tmp_path, make_natural_image, trained_model_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rgb = to_integer(make_natural_image(48, 64, seed=5))
    Image.fromarray(rgb).convert("CMYK").save(folder / "print.jpg", quality=95)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    write_image(folder / "deep.png", to_integer(make_natural_image(48, 64, seed=6), np.uint16))
    result = invoke("folder", folder, tmp_path / "out", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    cmyk, palette, deep = (read_image(tmp_path / "out" / n) for n in ("print.jpg", "palette.png", "deep.png"))
    assert cmyk.shape == palette.shape == (48, 64, 3) and cmyk.dtype == palette.dtype == np.uint8
    assert deep.shape == (48, 64, 3) and deep.dtype == np.uint16


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from /proc (Linux)")
def test_ten_thousand_pixel_square_image_is_processed_in_tiles_within_memory(tmp_path):
    # A cheap network with 16 channels inside: run whole, one activation of a 10000x10000
    # frame alone is 6.4 GB; in 512 px tiles the process stays far below that.
    import keras

    from vidderain.models import save_model

    inputs = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Add()([inputs, keras.layers.Conv2D(3, 3, padding="same")(hidden)])
    save_model(keras.Model(inputs, outputs), tmp_path / "wide.keras", {"arch": "test", "stride": 8, "overlap": 16})
    side = 10_000
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    image = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, 255 - ramp) / 2,
                      np.broadcast_to(ramp[:, None], (side, side))], axis=-1).astype(np.uint8)
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "huge.png"), image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del image, ramp
    # The command reports its own peak (VmHWM, which starts afresh at exec; the rusage of a
    # child also counts the memory of this test process it was forked from).
    peak = tmp_path / "peak.txt"
    launch = (f"import atexit, pathlib, runpy; atexit.register(lambda: pathlib.Path({str(peak)!r}).write_text("
              "next(line for line in open('/proc/self/status') if line.startswith('VmHWM')))); "
              "runpy.run_module('vidderain', run_name='__main__', alter_sys=True)")
    result = subprocess.run([sys.executable, "-c", launch, "folder", str(tmp_path / "in"), str(tmp_path / "out"),
                             "--model", str(tmp_path / "wide.keras"), "--tile", "512", "--batch", "4"],
                            env=child_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    peak_gb = int(peak.read_text().split()[1]) * 1024 / 1e9
    print(f"10000x10000 image: peak resident memory {peak_gb:.2f} GB")
    assert peak_gb < 6.4
    assert cv2.imread(str(tmp_path / "out" / "huge.png")).shape == (side, side, 3)


# Names --------------------------------------------------------------------------------------------------

ODD_NAMES = [
    "rain drops.png",
    "雨の日 ☔.png",
    "-i.png",
    "-y.jpg",
    "--overwrite.png",
    "$(touch pwned);`touch pwned2`.png",
    "[b]bold[i] & 'quoted'.png",  # rich markup, were it not escaped
    "a" * 246 + ".png",  # 250 bytes, near the 255-byte limit of a name
    "雨" * 83 + ".png",  # 253 bytes in UTF-8, 87 characters
]


def test_odd_names_are_derained_under_the_same_names(tmp_path, photo, trained_model_path):
    for seed, name in enumerate(ODD_NAMES):
        photo(tmp_path / "in" / name, seed=seed)
    before = digest_tree(tmp_path / "in")
    result = invoke("folder", tmp_path / "in", tmp_path / "out", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(ODD_NAMES)
    assert digest_tree(tmp_path / "in") == before and partial_files(tmp_path) == []
    assert not list(tmp_path.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))


@pytest.mark.parametrize(("source", "target"), [("-i.mp4", "-y.mp4"), ("-f.mp4", "$(touch pwned).mp4")])
def test_video_names_that_look_like_options_reach_ffmpeg_as_file_names(tmp_path, trained_model_path, source, target,
                                                                       monkeypatch):
    make_clip(tmp_path / source)
    before = digest_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = invoke("video", "--model", trained_model_path, "--", source, target)
    assert result.exit_code == 0, result.output
    assert probe_video(tmp_path / target).frame_count == probe_video(tmp_path / source).frame_count
    assert {k: v for k, v in digest_tree(tmp_path).items() if k != target} == before
    assert not (tmp_path / "pwned").exists() and partial_files(tmp_path) == []


def test_every_ffmpeg_call_is_an_argument_list_without_a_shell(tmp_path, trained_model_path, monkeypatch):
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:d=0.6",
                    "-f", "lavfi", "-i", "sine=d=0.6", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)], check=True)
    calls = []
    original = subprocess.Popen

    class Recording(original):
        def __init__(self, args, *rest, **kwargs):
            calls.append((args, kwargs.get("shell", False)))
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recording)
    result = invoke("video", clip, tmp_path / "out.mp4", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert len(calls) >= 3  # probe, reader, writer at least
    for args, shell in calls:
        assert isinstance(args, list) and not shell
        assert args[0] == ffmpeg_exe()


def test_ffmpeg_failing_while_encoding_is_summarised_in_one_line(tmp_path, trained_model_path):
    clip = make_clip(tmp_path / "clip.mp4", rate=7)  # MPEG-2 takes broadcast rates only
    result = invoke("video", clip, tmp_path / "out.mkv", "--codec", "mpeg2video", "--model", trained_model_path)
    # "failed" or "stopped": whether ffmpeg gave up before or after the first frame reached it.
    assert_one_line_error(result, "out.mkv: ffmpeg ", "(mpeg2video: MPEG-1/2 does not support")
    assert partial_files(tmp_path) == [] and not (tmp_path / "out.mkv").exists()


# Symlinks ----------------------------------------------------------------------------------------------


def test_recursive_folder_with_symlinks_and_loops_ends_and_names_the_broken_links(tmp_path, photo, trained_model_path):
    folder = tmp_path / "in"
    photo(folder / "real.png", seed=1)
    photo(tmp_path / "elsewhere" / "far.png", seed=2)
    photo(folder / "sub" / "deep.png", seed=3)
    (folder / "alias.png").symlink_to(folder / "real.png")
    (folder / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (folder / "sub" / "up").symlink_to(folder, target_is_directory=True)  # a loop back to the top
    (folder / "self.png").symlink_to(folder / "self.png")  # a link to itself
    (folder / "gone.png").symlink_to(tmp_path / "deleted.png")
    before = digest_tree(folder)
    result = invoke("folder", folder, tmp_path / "out", "--recursive", "--model", trained_model_path)
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert len(failed) == 2 and any("self.png" in f for f in failed) and any("gone.png" in f for f in failed)
    outputs = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert outputs == ["alias.png", "linked/far.png", "real.png", "sub/deep.png"]
    assert "4 derained, 2 failed" in result.stderr
    assert digest_tree(folder) == before and partial_files(tmp_path) == []


def test_links_into_the_output_folder_are_never_read_back(tmp_path, photo, trained_model_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    photo(folder / "a.png", seed=1)
    photo(out / "day" / "old.png", seed=2)  # an earlier result, in a sub-folder of the output
    (folder / "results").symlink_to(out / "day", target_is_directory=True)
    (folder / "b.png").symlink_to(out / "day" / "old.png")
    before, kept = digest_tree(folder), digest_tree(out)
    result = invoke("folder", folder, out, "--recursive", "--overwrite", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    assert "1 derained, 0 failed" in result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["a.png", "day/old.png"]
    assert digest_tree(out / "day") == {"old.png": kept["day/old.png"]}  # the earlier result is untouched
    assert digest_tree(folder) == before and partial_files(tmp_path) == []


def test_video_whose_output_folder_cannot_be_made_fails_alone(tmp_path, photo, trained_model_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    photo(folder / "a.png")
    (folder / "sub").mkdir()
    make_clip(folder / "sub" / "clip.mp4")
    out.mkdir()
    (out / "sub").write_text("a file where the output folder should go")
    result = invoke("folder", folder, out, "--recursive", "--model", trained_model_path)
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert len(failed) == 1 and "sub: cannot create the output folder" in failed[0], result.output
    assert "1 derained, 1 failed" in result.stderr
    assert (out / "a.png").is_file() and partial_files(tmp_path) == []


# Permissions (checked as an unprivileged user: root reads everything) -----------------------------------


def unprivileged() -> list[str]:
    """A command prefix under which file permissions apply to this process's files."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") and subprocess.run(["unshare", "-U", "true"], capture_output=True, check=False).returncode == 0:
        return ["unshare", "-U"]  # a user namespace without root's capabilities over the files
    pytest.skip("running as root, and no user namespace to drop root's rights")


@pytest.fixture
def locked(tmp_path):
    """`locked(path, mode)` chmods a path for the test and gives it back its rights after."""
    changed = []

    def lock(path: Path, mode: int) -> Path:
        changed.append((path, path.stat().st_mode))
        path.chmod(mode)
        return path

    yield lock
    for path, mode in reversed(changed):
        path.chmod(mode)


@pytest.mark.slow
def test_unreadable_files_and_sub_folders_are_named_and_the_rest_derained(tmp_path, photo, locked, trained_model_path):
    prefix = unprivileged()
    folder = tmp_path / "in"
    photo(folder / "open.png", seed=1)
    locked(photo(folder / "secret.png", seed=2), 0o000)
    photo(folder / "vault" / "inside.png", seed=3)
    locked(folder / "vault", 0o000)
    result = run_cli("folder", folder, tmp_path / "out", "-r", "--model", trained_model_path, prefix=prefix)
    assert result.returncode == 1, result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert len(failed) == 2, result.stderr
    assert any("secret.png: permission denied" in f for f in failed)
    assert any("vault: cannot be listed (Permission denied)" in f for f in failed)
    assert "1 derained, 2 failed" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["open.png"]


@pytest.mark.parametrize("case", ["unreadable input folder", "unwritable output folder", "unreadable video"])
def test_missing_permissions_are_one_line_before_the_model_loads(tmp_path, photo, locked, case):
    prefix = unprivileged()
    photo(tmp_path / "in" / "a.png")
    (tmp_path / "closed").mkdir()
    make_clip(tmp_path / "clip.mp4")
    if case == "unreadable input folder":
        locked(tmp_path / "in", 0o000)
        args, expected = ("folder", tmp_path / "in", tmp_path / "out"), "in: permission denied"
    elif case == "unwritable output folder":
        locked(tmp_path / "closed", 0o555)
        args, expected = ("folder", tmp_path / "in", tmp_path / "closed" / "out"), "closed: permission denied"
    else:
        locked(tmp_path / "clip.mp4", 0o000)
        args, expected = ("video", tmp_path / "clip.mp4", tmp_path / "out.mp4"), "clip.mp4: permission denied"
    result = run_cli(*args, "--model", "no-such-model", prefix=prefix)  # the model is never reached
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path}/{expected}"), result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.mp4").exists()


# A full disk ------------------------------------------------------------------------------------------


@pytest.fixture
def disk_fills_after(monkeypatch):
    """`disk_fills_after(n)`: after n temporary outputs, new ones are links to /dev/full (writes fail with ENOSPC)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    original = files._create_temporary

    def fill_after(count: int) -> None:
        made = [0]

        def create(path: Path) -> Path:
            made[0] += 1
            tmp = original(path)
            if made[0] > count:
                tmp.unlink()
                tmp.symlink_to("/dev/full")
            return tmp

        monkeypatch.setattr(files, "_create_temporary", create)

    return fill_after


def test_full_disk_stops_a_photo_batch_with_one_error_and_keeps_finished_outputs(tmp_path, photo, disk_fills_after,
                                                                                 trained_model_path):
    for i in range(5):
        photo(tmp_path / "in" / f"{i}.png", seed=i)
    before = digest_tree(tmp_path / "in")
    assert invoke("folder", tmp_path / "in", tmp_path / "reference", "--model", trained_model_path).exit_code == 0
    disk_fills_after(2)
    result = invoke("folder", tmp_path / "in", tmp_path / "out", "--model", trained_model_path)
    assert_one_line_error(result, "cannot be written, the disk is full (No space left on device)", code=1)
    assert not [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert sorted(os.listdir(tmp_path / "out")) == ["0.png", "1.png"]  # no link, no temporary file
    reference = digest_tree(tmp_path / "reference")
    assert all(reference[k] == v for k, v in digest_tree(tmp_path / "out").items())
    assert digest_tree(tmp_path / "in") == before


def test_full_disk_while_encoding_a_video_is_one_error_and_no_output(tmp_path, disk_fills_after, trained_model_path):
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "clip.mp4", seconds=1)
    disk_fills_after(0)
    result = invoke("folder", tmp_path / "in", tmp_path / "out", "--model", trained_model_path)
    assert_one_line_error(result, "clip.mp4: cannot be written, the disk is full", code=1)
    assert os.listdir(tmp_path / "out") == []


def tmpfs_available(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    command = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k none '{probe}'"]
    return bool(shutil.which("unshare")) and subprocess.run(command, capture_output=True, check=False).returncode == 0


@pytest.mark.slow
def test_a_really_full_filesystem_ends_the_run_with_one_error_and_no_partial_file(tmp_path, photo, trained_model_path):
    if not tmpfs_available(tmp_path):
        pytest.skip("cannot mount a small tmpfs in a user namespace here")
    for i in range(4):
        photo(tmp_path / "in" / f"{i}.png", 120, 160, seed=i)
    assert invoke("folder", tmp_path / "in", tmp_path / "reference", "--model", trained_model_path).exit_code == 0
    reference = digest_tree(tmp_path / "reference")
    sizes = [(tmp_path / "reference" / f"{i}.png").stat().st_size for i in range(4)]
    # Room for the first two results (tmpfs counts whole 4 KiB pages), not the third.
    room_kib = sum(-(-size // 4096) * 4 for size in sizes[:2]) + 4
    assert sizes[2] > 8192
    out, saved = tmp_path / "out", tmp_path / "saved"
    out.mkdir()
    saved.mkdir()
    script = f'mount -t tmpfs -o size={room_kib}k none "{out}" || exit 99; "$@"; code=$?; cp -a "{out}/." "{saved}/"; exit $code'
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *CLI, "folder", str(tmp_path / "in"), str(out),
                             "--model", str(trained_model_path)], capture_output=True, text=True, env=child_env(),
                            check=False)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the disk is full (No space left on device)" in errors[0], result.stderr
    assert sorted(os.listdir(saved)) == ["0.png", "1.png"]
    assert all(reference[k] == v for k, v in digest_tree(saved).items())


@pytest.mark.slow
def test_a_file_size_limit_ends_a_video_with_one_error_and_no_partial_file(tmp_path, trained_model_path):
    # Noise, losslessly encoded: about 5 MB, over a limit that the model (2 MB, which
    # Keras unpacks to a temporary file) stays under.
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "nullsrc=s=320x240:r=25:d=2,geq=lum=random(1)*255:cb=128:cr=128", "-pix_fmt", "yuv420p",
                    str(clip)], check=True)
    limit_kib = 3 * 1024
    assert trained_model_path.stat().st_size < limit_kib * 1024 * 0.8
    # `ulimit -f` counts 512-byte blocks; over it, the kernel ends ffmpeg with SIGXFSZ, and ffmpeg logs nothing.
    result = run_cli("video", clip, tmp_path / "out.mp4", "--model", trained_model_path, "--crf", "0",
                     prefix=["sh", "-c", f'ulimit -f {limit_kib * 2} && exec "$@"', "sh"])
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "out.mp4: cannot be written, the disk is full" in errors[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


# Concurrent runs ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_runs_into_one_output_folder_write_only_whole_results(tmp_path, photo, trained_model_path):
    names = [f"{i}.png" for i in range(6)]
    for run, offset in (("a", 0), ("b", 10)):
        for i, name in enumerate(names):
            photo(tmp_path / run / name, 160, 200, seed=offset + i)
        assert invoke("folder", tmp_path / run, tmp_path / f"ref-{run}", "--model", trained_model_path).exit_code == 0
    refs = [digest_tree(tmp_path / "ref-a"), digest_tree(tmp_path / "ref-b")]
    runs = [subprocess.Popen([*CLI, "folder", str(tmp_path / run), str(tmp_path / "shared"), "--overwrite",
                              "--model", str(trained_model_path)], env=child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT) for run in ("a", "b")]
    for process in runs:
        assert process.wait(timeout=600) == 0, process.stdout.read().decode()
    shared = digest_tree(tmp_path / "shared")
    assert sorted(shared) == names
    for name, digest in shared.items():
        assert digest in (refs[0][name], refs[1][name]), f"{name} is neither run's whole result"


# Out of memory, --debug, exit codes ------------------------------------------------------------------------


def test_out_of_memory_is_one_line_with_a_hint(tmp_path, photo, trained_model_path, monkeypatch):
    import tensorflow as tf

    from vidderain.engine import Engine

    def exhausted(self, frames):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[4,32,256,256]")
        yield

    monkeypatch.setattr(Engine, "run", exhausted)
    photo(tmp_path / "in" / "a.png")
    result = invoke("folder", tmp_path / "in", tmp_path / "out", "--model", trained_model_path)
    assert_one_line_error(result, "out of memory; try a smaller --tile or --batch", code=1)
    assert partial_files(tmp_path) == []


def test_debug_shows_the_traceback(tmp_path):
    result = invoke("--debug", "video", tmp_path / "clip.mp4", tmp_path / "out.mp4")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "no such file" in result.stderr


def test_readme_exit_code_table_matches_the_command():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = sorted(int(line.split("|")[1]) for line in table.splitlines() if line.startswith("| ") and
                   line.split("|")[1].strip().isdigit())
    assert codes == [0, 1, 2, 129, 130, 143]
