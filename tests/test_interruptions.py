"""Ctrl-C, SIGTERM and SIGHUP at every stage of a run: nothing lost, nothing half-written, a re-run finishes.

Two kinds of test. Real signals go to the real command in its own process group, at
points found by watching the process (its model library mapped, finished outputs,
its ffmpeg writer reading frames, the writer's input closed while it finalises, a
video's finished segments). Then the same stop is raised in-process at each stage's
main-thread code, which hits stages too short to catch from outside. After every
stop: the exit code is 128 + the signal, the inputs are byte for byte unchanged, no
temporary file is left, every output under a final name is the complete result of
an uninterrupted run, no ffmpeg is left running, and the next run finishes the rest.
The one thing a stop leaves besides finished outputs is a video's finished segments,
in the hidden working folder beside it, each a whole video the manifest lists (never
anything under the video's own name); the next run resumes after them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from safety_checks import (
    digest_tree,
    partial_files,
    processes_mentioning,
    start_cli,
    wait_until,
)
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.interrupts import Terminated
from vidderain.io.files import RESUME_MARK
from vidderain.io.images import write_image
from vidderain.io.video import ffmpeg_exe, probe_video
from vidderain.pixels import to_integer

runner = CliRunner()
HAS_PROC = Path("/proc/self/maps").exists()
needs_proc = pytest.mark.skipif(not HAS_PROC, reason="watches the process through /proc (Linux)")
# Options of every run of the real-signal chain: a slow preset makes ffmpeg's final
# flush (the frames its look-ahead holds) long enough to signal the command inside it;
# segments of 0.8 s cut the 2.4 s clip in three, so a stop can come after finished ones.
VIDEO_OPTIONS = ("--preset", "veryslow", "--segment", "0.8")
SEGMENT_FRAMES = 20  # 0.8 s at 25 fps
STOP_LIMIT_S = 5.0  # the promise: from the signal to the process's exit, cleanup included
HANG_LIMIT_S = 60


def make_clip(path: Path, size: str, seconds: float) -> Path:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d={seconds}", "-f", "lavfi", "-i", f"sine=d={seconds}",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True, capture_output=True)
    return path


def make_job(folder: Path, make_natural_image, make_rainy, images: int, image_size: tuple[int, int],
             clip_size: str, clip_seconds: float) -> Path:
    folder.mkdir()
    for i in range(images):
        rainy = make_rainy(make_natural_image(*image_size, seed=40 + i), seed=40 + i)
        write_image(folder / f"photo{i:02d}.png", to_integer(rainy))
    make_clip(folder / "clip.mp4", clip_size, clip_seconds)
    return folder


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def kept_segments(out_dir: Path) -> dict[str, int]:
    """What stopped videos keep under `out_dir`: each working folder's name and the frames its segments hold.

    A working folder holds its manifest, its lock and the whole segments the manifest
    lists (each a video of the frames it records), and nothing else; one that holds no
    finished segment is not kept at all.
    """
    kept = {}
    for folder in sorted(out_dir.rglob(f"*{RESUME_MARK}")) if out_dir.exists() else []:
        manifest = json.loads((folder / "manifest.json").read_text())
        listed = {segment["file"]: segment["count"] for segment in manifest["segments"]}
        assert listed, f"{folder.name} was kept without a finished segment"
        assert sorted(p.name for p in folder.iterdir()) == sorted({"manifest.json", "lock", *listed})
        for name, count in listed.items():
            assert probe_video(folder / name).frame_count == count, f"{name} is not the whole segment"
        kept[folder.name] = sum(listed.values())
    return kept


def assert_nothing_lost(in_dir: Path, before: dict, out_dir: Path, reference: dict, root: Path) -> dict[str, int]:
    """Inputs unchanged, no temporary file, no ffmpeg left, every output a complete result; return `kept_segments`."""
    assert digest_tree(in_dir) == before
    assert partial_files(in_dir, out_dir) == []
    assert processes_mentioning(str(root)) == []
    kept = kept_segments(out_dir)
    outputs = digest_tree(out_dir) if out_dir.exists() else {}
    outputs = {name: digest for name, digest in outputs.items() if RESUME_MARK not in name}
    assert set(outputs) <= set(reference)
    for name, digest in outputs.items():
        assert digest == reference[name], f"{name} differs from an uninterrupted run's result"
    return kept


# Real signals to the real command ------------------------------------------------------------


def tensorflow_mapped(pid: int) -> bool:
    """The process has mapped the backend's native library: the model is being loaded."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return any(name in maps for name in ("tensorflow", "jaxlib", "libtorch"))


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def video_writer(pid: int) -> int | None:
    """The ffmpeg that `pid` feeds frames through a pipe (its input is `pipe:0`), if one runs."""
    for child in children(pid):
        try:
            if b"pipe:0" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:
            continue
    return None


def writer_pipe_open(pid: int, writer: int) -> bool:
    """Whether `pid` still holds the pipe into `writer`'s stdin (closed: the writer is finalising)."""
    pipe = os.readlink(f"/proc/{writer}/fd/0")
    return any(os.readlink(fd) == pipe for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.name.isdigit())


def writer_has_frames(pid: int, min_bytes: int) -> bool:
    """An ffmpeg writer of `pid` has read `min_bytes` of frames and still has its input open."""
    writer = video_writer(pid)
    try:
        if writer is None or not writer_pipe_open(pid, writer):
            return False
        io = dict(line.split(": ") for line in Path(f"/proc/{writer}/io").read_text().splitlines())
        return int(io["rchar"]) >= min_bytes
    except (OSError, ValueError, KeyError):
        return False


def writer_finalising(pid: int) -> bool:
    """`pid`'s ffmpeg writer still runs but has been handed its last frame."""
    writer = video_writer(pid)
    try:
        return writer is not None and not writer_pipe_open(pid, writer)
    except OSError:
        return False


def segments_recorded(folder: Path, video: str) -> int:
    """Finished segments the manifest of `folder/video`'s working folder lists (0 without one)."""
    try:
        return len(json.loads((folder / f".{video}{RESUME_MARK}" / "manifest.json").read_text())["segments"])
    except (OSError, ValueError, KeyError):
        return 0


def finished_outputs(folder: Path, suffix: str) -> int:
    """Outputs under their final names (temporary names start with a dot)."""
    return len([p for p in folder.glob(f"*{suffix}") if not p.name.startswith(".")]) if folder.exists() else 0


STOP_TIMES: list[tuple[str, float]] = []


def stop_at(log: Path, args: list, point: str, condition, sig: int) -> tuple[int, str]:
    """Start the command, send `sig` to its process group once `condition(pid)` holds, return (exit code, output)."""
    process = start_cli(log, *args)
    try:
        reached = wait_until(lambda: condition(process.pid), process)
        assert reached, f"never reached {point}: {log.read_text()}"
        sent = time.monotonic()
        os.killpg(process.pid, sig)
        code = process.wait(timeout=HANG_LIMIT_S)
        STOP_TIMES.append((point, time.monotonic() - sent))
        print(f"{point}: {signal.Signals(sig).name} -> exit {code} after {STOP_TIMES[-1][1]:.2f} s")
        assert STOP_TIMES[-1][1] <= STOP_LIMIT_S, f"{point}: took {STOP_TIMES[-1][1]:.1f} s to stop"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return code, log.read_text()


@pytest.fixture(scope="module")
def signal_job(tmp_path_factory, make_natural_image, make_rainy, trained_model_path):
    """A folder of 8 photos and a 2.4 s clip, and the outputs of an uninterrupted run of it."""
    root = tmp_path_factory.mktemp("signals")
    in_dir = make_job(root / "in", make_natural_image, make_rainy, 8, (240, 320), "256x192", 2.4)
    result = invoke("folder", in_dir, root / "reference", "--model", trained_model_path, *VIDEO_OPTIONS)
    assert result.exit_code == 0, result.output
    return root, in_dir, digest_tree(root / "reference")


@needs_proc
@pytest.mark.slow
def test_signals_at_each_stage_of_a_folder_run_lose_nothing_and_a_rerun_finishes(signal_job, trained_model_path):
    root, in_dir, reference = signal_job
    before = digest_tree(in_dir)
    out = root / "out"
    args = ["folder", in_dir, out, "--model", trained_model_path, *VIDEO_OPTIONS]
    frame_bytes = 256 * 192 * 3

    # 1. Ctrl-C while the model loads: nothing written.
    code, log = stop_at(root / "1.log", args, "model load", tensorflow_mapped, signal.SIGINT)
    assert code == 130, log
    # "loading model tiny.keras ..." comes first; "model tiny.keras (default) on ..." once it is loaded.
    assert "interrupted (Ctrl-C)" in log and "model tiny.keras (" not in log and "Traceback" not in log
    assert_nothing_lost(in_dir, before, out, reference, root)
    assert finished_outputs(out, ".png") == 0

    # 2. SIGTERM after three photos: those three are kept, whole.
    code, log = stop_at(root / "2.log", args, "mid-folder", lambda pid: finished_outputs(out, ".png") >= 3,
                        signal.SIGTERM)
    assert code == 143, log
    assert "interrupted (SIGTERM)" in log
    assert_nothing_lost(in_dir, before, out, reference, root)
    kept = finished_outputs(out, ".png")
    assert kept >= 3

    # 3. Ctrl-C while the clip's second segment is being encoded: the photos are done and the
    # clip's first segment is kept in its working folder; nothing is under the clip's name.
    code, log = stop_at(root / "3.log", args, "mid-video",
                        lambda pid: segments_recorded(out, "clip.mp4") >= 1 and writer_has_frames(pid, 4 * frame_bytes),
                        signal.SIGINT)
    assert code == 130, log
    assert f"{kept} already done" in log
    assert "a re-run resumes it after its last finished segment" in log
    segments = assert_nothing_lost(in_dir, before, out, reference, root)
    assert finished_outputs(out, ".png") == 8 and not (out / "clip.mp4").exists()
    assert segments[f".clip.mp4{RESUME_MARK}"] >= SEGMENT_FRAMES

    # 4. SIGTERM while ffmpeg finalises a segment of the clip (its input closed, still writing).
    code, log = stop_at(root / "4.log", args, "video finalising", writer_finalising, signal.SIGTERM)
    assert code in (143, 0), log  # 0: the file was complete and renamed before the signal came
    assert f"clip.mp4: resuming at frame {segments[f'.clip.mp4{RESUME_MARK}'] + 1} of 60" in log
    assert_nothing_lost(in_dir, before, out, reference, root)

    # 5. A run to the end finishes what is left and redoes nothing.
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    process = start_cli(root / "5.log", *args)
    assert process.wait(timeout=600) == 0, (root / "5.log").read_text()
    assert digest_tree(out) == reference
    assert all(p.stat().st_mtime_ns == mtimes[p.name] for p in out.iterdir() if p.name in mtimes)
    assert_nothing_lost(in_dir, before, out, reference, root)


@needs_proc
@pytest.mark.slow
def test_video_command_stopped_by_sigterm_or_sighup_keeps_its_segments_and_resumes(signal_job, trained_model_path):
    root, in_dir, reference = signal_job
    before = digest_tree(in_dir)
    out = root / "video-out"
    out.mkdir()
    args = ["video", in_dir / "clip.mp4", out / "clip.mp4", "--model", trained_model_path, *VIDEO_OPTIONS]
    kept = 0
    for number, sig in enumerate((signal.SIGTERM, signal.SIGHUP), 1):
        point = f"video command mid-video ({signal.Signals(sig).name})"
        code, log = stop_at(root / f"v{number}.log", args, point,
                            lambda pid: segments_recorded(out, "clip.mp4") >= number
                            and writer_has_frames(pid, 256 * 192 * 3), sig)
        assert code == 128 + sig, log
        assert f"interrupted ({signal.Signals(sig).name}); nothing was written under the output's name; " \
               "a re-run resumes it after its last finished segment" in log
        if kept:
            assert f"resuming at frame {kept + 1} of 60" in log
        assert [p.name for p in out.iterdir()] == [f".clip.mp4{RESUME_MARK}"]  # nothing under the video's name
        kept = assert_nothing_lost(in_dir, before, out, reference, root)[f".clip.mp4{RESUME_MARK}"]
        assert kept >= number * SEGMENT_FRAMES
    process = start_cli(root / "v.log", *args)
    assert process.wait(timeout=600) == 0, (root / "v.log").read_text()
    assert f"resuming at frame {kept + 1} of 60" in (root / "v.log").read_text()
    assert digest_tree(out) == {"clip.mp4": reference["clip.mp4"]}  # the working folder is gone


@needs_proc
@pytest.mark.slow
def test_sigterm_during_training_saves_a_checkpoint(tmp_path, make_natural_image, make_rainy):
    from vidderain.train.trainer import Trainer

    for kind in ("rain", "norain"):
        (tmp_path / "data" / kind).mkdir(parents=True)
    for i in range(3):
        clean = make_natural_image(64, 64, seed=i)
        write_image(tmp_path / "data" / "norain" / f"{i}.png", to_integer(clean))
        write_image(tmp_path / "data" / "rain" / f"{i}.png", to_integer(make_rainy(clean, seed=i)))
    model = tmp_path / "m.keras"
    log_csv = tmp_path / "m.run" / "log.csv"
    args = ["train", tmp_path / "data", "--out", model, "--steps", "100000", "--batch", "2", "--patch", "32",
            "--val-split", "0"]
    code, log = stop_at(tmp_path / "train.log", args, "training",
                        lambda pid: log_csv.exists() and len(log_csv.read_text().splitlines()) >= 3, signal.SIGTERM)
    assert code == 143, log
    assert Trainer.saved_settings(model) is not None
    saved_step = json.loads((tmp_path / "m.run" / "checkpoint" / "state.json").read_text())["step"]
    assert saved_step >= 2 and f"interrupted (SIGTERM); checkpoint of step {saved_step} in " in log, log
    assert not model.exists() and partial_files(tmp_path) == []
    assert not (tmp_path / "m.run" / "checkpoint.new").exists()


def test_a_second_signal_is_ignored_during_cleanup_and_a_third_ends_the_process():
    import sys

    # A cleanup that outlives two more SIGTERMs: the second must not cut it short, the
    # third ends the process at once with 143.
    script = (
        "import os, signal, time\n"
        "from vidderain.interrupts import stop_signals_raise\n"
        "with stop_signals_raise():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)\n"
        "    except KeyboardInterrupt:\n"
        "        print('cleanup started', flush=True)\n"
        "        os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2)\n"
        "        print('still cleaning', flush=True)\n"
        "        os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)\n"
        "        print('never printed', flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stdout.splitlines() == ["cleanup started", "still cleaning"]


# The same stop raised in-process at each stage -----------------------------------------------


@pytest.fixture(scope="module")
def small_job(tmp_path_factory, make_natural_image, make_rainy, trained_model_path):
    root = tmp_path_factory.mktemp("stops")
    in_dir = make_job(root / "in", make_natural_image, make_rainy, 3, (48, 64), "64x48", 0.5)
    result = invoke("folder", in_dir, root / "reference", "--model", trained_model_path)
    assert result.exit_code == 0, result.output
    return in_dir, digest_tree(root / "reference")


def raise_on_call(number: int, exc: BaseException, original, only=lambda *a, **k: True):
    """A stand-in for `original` that raises `exc` on its `number`-th qualifying call."""
    calls = [0]

    def stand_in(*args, **kwargs):
        if only(*args, **kwargs):
            calls[0] += 1
            if calls[0] == number:
                raise exc
        return original(*args, **kwargs)

    return stand_in


def raise_after_call(number: int, exc: BaseException, original):
    """A stand-in for `original` that raises `exc` once its `number`-th call has returned."""
    calls = [0]

    def stand_in(*args, **kwargs):
        result = original(*args, **kwargs)
        calls[0] += 1
        if calls[0] == number:
            raise exc
        return result

    return stand_in


def stop_in_engine_after(frames: int, run_number: int, exc: BaseException):
    from vidderain.engine import Engine

    original = Engine.run
    runs = [0]

    def run(self, items):
        runs[0] += 1
        for count, item in enumerate(original(self, items), 1):
            yield item
            if runs[0] == run_number and count == frames:
                raise exc

    return Engine, "run", run


def _inside_c(stop: KeyboardInterrupt) -> SystemError:
    """What a signal becomes when it arrives while numpy calls back into Python: a SystemError caused by it."""
    error = SystemError("<built-in method __array__ of numpy.ndarray object> returned a result with an exception set")
    error.__cause__ = stop
    return error


def _points():
    import keras

    from vidderain.io import files
    from vidderain.io.video import ffmpeg, writer
    from vidderain.jobs import resume
    from vidderain.jobs import video as video_job
    from vidderain.pipeline import BackgroundWorker

    return {
        "model load": lambda: (keras.saving, "load_model", raise_on_call(1, KeyboardInterrupt(), keras.saving.load_model)),
        "network, second photo": lambda: stop_in_engine_after(2, 1, KeyboardInterrupt()),
        "queueing a photo's write": lambda: (BackgroundWorker, "submit",
                                             raise_on_call(2, KeyboardInterrupt(), BackgroundWorker.submit)),
        "video probe": lambda: (video_job, "probe_video", raise_on_call(1, KeyboardInterrupt(), video_job.probe_video)),
        "encoder start": lambda: (writer.VideoWriter, "_send",
                                  raise_on_call(1, KeyboardInterrupt(), writer.VideoWriter._send)),
        "network, mid-video": lambda: stop_in_engine_after(5, 2, KeyboardInterrupt()),
        "mid-video, SIGTERM": lambda: stop_in_engine_after(5, 2, Terminated(signal.SIGTERM)),
        "mid-video, SIGTERM inside numpy": lambda: stop_in_engine_after(5, 2, _inside_c(Terminated(signal.SIGTERM))),
        "video finalising": lambda: (ffmpeg.FfmpegProcess, "wait", raise_on_call(
            1, Terminated(signal.SIGTERM), ffmpeg.FfmpegProcess.wait, only=lambda self: self.stdin is not None)),
        "segment rename": lambda: (files.os, "replace", raise_on_call(
            1, KeyboardInterrupt(), os.replace, only=lambda src, dst: Path(dst).parent.name.endswith(RESUME_MARK)
            and str(dst).endswith(".mp4"))),
        "segment recorded": lambda: (resume.WorkingFolder, "record", raise_after_call(
            1, KeyboardInterrupt(), resume.WorkingFolder.record)),
        "joining segments": lambda: (ffmpeg.FfmpegProcess, "wait", raise_on_call(
            1, Terminated(signal.SIGTERM), ffmpeg.FfmpegProcess.wait,
            only=lambda self: self.stdin is None and self.stdout is None)),
        "video rename": lambda: (files.os, "replace", raise_on_call(
            1, KeyboardInterrupt(), os.replace, only=lambda src, dst: Path(dst).name == "clip.mp4")),
    }


POINTS = [
    "model load", "network, second photo", "queueing a photo's write", "video probe", "encoder start",
    "network, mid-video", "mid-video, SIGTERM", "mid-video, SIGTERM inside numpy", "video finalising",
    "segment rename", "segment recorded", "joining segments", "video rename",
]


@pytest.mark.parametrize("point", POINTS)
def test_stop_at_each_stage_keeps_finished_outputs_and_a_rerun_finishes(point, small_job, trained_model_path,
                                                                         tmp_path, monkeypatch):
    in_dir, reference = small_job
    before = digest_tree(in_dir)
    out = tmp_path / "out"
    target, name, stand_in = _points()[point]()
    with monkeypatch.context() as patch:
        patch.setattr(target, name, stand_in)
        result = invoke("folder", in_dir, out, "--model", trained_model_path)
    expected = 143 if "SIGTERM" in point or point in ("video finalising", "joining segments") else 130
    assert result.exit_code == expected, result.output
    assert "interrupted" in result.output and "Traceback" not in result.output
    assert "finished files are kept and a re-run skips them" in result.output
    kept = assert_nothing_lost(in_dir, before, out, reference, tmp_path)
    # The clip is one segment: kept only once it is whole, before it is joined.
    assert bool(kept) == (point in ("segment recorded", "joining segments", "video rename")), kept

    rerun = invoke("folder", in_dir, out, "--model", trained_model_path)
    assert rerun.exit_code == 0, rerun.output
    assert ("all 13 frames were derained before; joining its segments" in rerun.output) == bool(kept), rerun.output
    assert digest_tree(out) == reference
    assert_nothing_lost(in_dir, before, out, reference, tmp_path)
