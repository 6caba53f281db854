"""`vidderain folder --ray`: whole files on Ray workers, the same bytes as a local run, no partial files.

Every run here cuts videos in segments of 1 s (`SEGMENT`), so a worker that dies mid-video
leaves finished segments that the next run continues.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.interrupts import STOP_SIGNALS
from vidderain.io.files import PART_MARK, RESUME_MARK, leftover_partials
from vidderain.io.images import write_image
from vidderain.pixels import to_integer

runner = CliRunner()
SEGMENT = ("--segment", "1")  # the 4-second clip in four segments of 25 frames


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def rainy_folder(tmp_path_factory, make_natural_image, make_rainy) -> Path:
    """Two small images and a 4-second video with audio."""
    from vidderain.io.video import ffmpeg_exe

    folder = tmp_path_factory.mktemp("rainy")
    for i, size in enumerate([(72, 96), (64, 80)]):
        write_image(folder / f"photo{i}.png", to_integer(make_rainy(make_natural_image(*size, seed=i), seed=i)))
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=128x96:r=25:d=4",
                    "-f", "lavfi", "-i", "sine=f=440:d=4", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(folder / "clip.mp4")], check=True)
    return folder


@pytest.fixture(scope="module")
def local_results(rainy_folder, trained_model_path, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local") / "out"
    result = invoke("folder", rainy_folder, out, "--model", trained_model_path, *SEGMENT)
    assert result.exit_code == 0, result.output
    return files_of(out)


@pytest.fixture
def ray_module():
    return pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'vidderain[ray]'")


def test_without_ray_the_flag_gives_the_install_command(rainy_folder, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = invoke("folder", rainy_folder, tmp_path / "out", "--ray", "local")
    assert result.exit_code == 2
    hint = "error: --ray needs Ray, which is not installed: pip install 'vidderain[ray]'"
    assert result.output.strip().splitlines() == [hint]
    assert not (tmp_path / "out").exists()


def test_workers_without_ray_is_refused(rainy_folder, tmp_path):
    result = invoke("folder", rainy_folder, tmp_path / "out", "--workers", 2)
    assert result.exit_code == 2
    assert "--workers needs --ray" in result.output


def test_leftover_partials_finds_only_the_temporaries_of_that_output(tmp_path):
    for name in (f".clip0123abcd{PART_MARK}.mp4", f".clip2xyz0123abcd{PART_MARK}.mp4", f".clip0123abcd{PART_MARK}.mkv",
                 "clip.mp4"):
        (tmp_path / name).touch()
    assert leftover_partials(tmp_path / "clip.mp4") == [tmp_path / f".clip0123abcd{PART_MARK}.mp4"]


@pytest.mark.slow
def test_ray_local_writes_the_bytes_a_local_run_writes(ray_module, rainy_folder, trained_model_path, local_results,
                                                       tmp_path):
    out = tmp_path / "out"
    result = invoke("folder", rainy_folder, out, "--model", trained_model_path, "--ray", "local", "--workers", 2,
                    *SEGMENT)
    assert result.exit_code == 0, result.output
    assert "local Ray cluster" in result.output and "2 workers" in result.output
    assert "3 derained, 0 failed" in result.output
    assert files_of(out) == local_results


@pytest.mark.slow
def test_ray_workers_derain_a_video_and_a_clips_frames_with_a_temporal_model_as_a_local_run_does(
    ray_module, tmp_path, temporal_model_path, make_natural_image, make_rainy, monkeypatch
):
    from vidderain.io.video import ffmpeg_exe
    from vidderain.jobs import cluster

    monkeypatch.setattr(cluster, "FRAMES_PER_TASK", 3)  # 8 frames in 3 tasks: windows across their edges
    folder = tmp_path / "in"
    (folder / "frames").mkdir(parents=True)
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.6",
                    "-pix_fmt", "yuv420p", str(folder / "clip.mp4")], check=True)
    scene = make_natural_image(40, 72, seed=3)
    for i in range(8):
        write_image(folder / "frames" / f"f{i + 1}.png", to_integer(make_rainy(scene[:, i : i + 56], seed=i)))
    local = invoke("folder", folder, tmp_path / "local", "--recursive", "--model", temporal_model_path)
    result = invoke("folder", folder, tmp_path / "ray", "--recursive", "--model", temporal_model_path,
                    "--ray", "local", "--workers", 2)
    for run in (local, result):
        assert run.exit_code == 0, run.output
        assert "9 derained, 0 failed" in run.output
    assert "windows of 5 frames aligned by the camera's motion" in result.output
    assert "read as the frames of one clip" in result.output
    assert files_of(tmp_path / "ray" / "frames") == files_of(tmp_path / "local" / "frames")
    assert (tmp_path / "ray" / "clip.mp4").read_bytes() == (tmp_path / "local" / "clip.mp4").read_bytes()


def test_a_clips_frames_go_to_the_workers_in_runs_with_the_frames_their_windows_read(tmp_path, monkeypatch):
    from vidderain.jobs import cluster
    from vidderain.temporal import WindowSpec

    monkeypatch.setattr(cluster, "FRAMES_PER_TASK", 4)
    frames = [tmp_path / "in" / f"f{i}.png" for i in range(1, 12)]  # f1 ... f11, f10 after f9
    video = tmp_path / "in" / "clip.mp4"
    finished = [frames[4]]  # f5: done before, read again as a neighbour
    todo = [(source, tmp_path / "out" / source.name) for source in frames if source not in finished]
    todo.append((video, tmp_path / "out" / "clip.mp4"))
    tasks = cluster.plan_tasks(todo, WindowSpec(5), finished)
    names = lambda paths: [p.name for p in paths]  # noqa: E731
    assert [(names(todo[i][0] for i in task.files), names(task.neighbours)) for task in tasks] == [
        (["f1.png", "f2.png", "f3.png", "f4.png"], ["f5.png", "f6.png"]),
        (["f6.png", "f7.png", "f8.png"], ["f5.png", "f3.png", "f4.png", "f9.png", "f10.png"]),
        (["f9.png", "f10.png", "f11.png"], ["f7.png", "f8.png"]),
        (["clip.mp4"], []),
    ]
    # A single-frame model: a task per file, nothing read beside it.
    single = cluster.plan_tasks(todo, WindowSpec(1), finished)
    assert [task.files for task in single] == [[i] for i in range(len(todo))] and not any(t.neighbours for t in single)


def _segments_recorded(folder: Path, name: str) -> int:
    try:
        return len(json.loads((folder / f".{name}{RESUME_MARK}" / "manifest.json").read_text())["segments"])
    except (OSError, ValueError, KeyError):
        return 0


def _kill_the_worker_writing(folder: Path, name: str, killed: list[int], timeout: float = 120.0) -> None:
    """Wait until a segment of `folder/name` is finished and ffmpeg writes the next, then SIGKILL
    its parent, the Ray worker."""
    stem = f".{Path(name).stem}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _segments_recorded(folder, name):
            time.sleep(0.05)
            continue
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                if str(folder) in cmdline and stem in cmdline and PART_MARK in cmdline:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    worker = int(stat.rsplit(")", 1)[1].split()[1])
                    os.kill(worker, signal.SIGKILL)
                    killed.append(worker)
                    return
            except (OSError, IndexError, ValueError):
                continue
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_a_worker_killed_mid_video_leaves_its_finished_segments_and_a_rerun_continues_them(
    ray_module, rainy_folder, trained_model_path, local_results, tmp_path
):
    out = tmp_path / "out"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_the_worker_writing, args=(out, "clip.mp4", killed), daemon=True)
    killer.start()
    result = invoke("folder", rainy_folder, out, "--model", trained_model_path, "--ray", "local", "--workers", 2,
                    *SEGMENT)
    killer.join()
    assert killed, "the worker writing the video was not found"
    assert result.exit_code == 1, result.output
    assert "its Ray worker died" in result.output and "2 derained, 1 failed" in result.output
    working = f".clip.mp4{RESUME_MARK}"
    assert sorted(p.name for p in out.iterdir()) == [working, "photo0.png", "photo1.png"]
    manifest = json.loads((out / working / "manifest.json").read_text())
    segments = [segment["file"] for segment in manifest["segments"]]
    kept = sum(segment["count"] for segment in manifest["segments"])
    assert kept >= 25  # no half-written segment, no partial file
    assert sorted(p.name for p in (out / working).iterdir()) == sorted(["manifest.json", *segments])

    again = invoke("folder", rainy_folder, out, "--model", trained_model_path, "--ray", "local", *SEGMENT)
    assert again.exit_code == 0, again.output
    assert "1 derained, 0 failed, 2 skipped" in again.output
    assert f"resuming at frame {kept + 1} of 100" in again.output
    assert files_of(out) == local_results  # the working folder is gone


def test_a_model_with_code_is_refused_before_the_cluster_starts(ray_module, rainy_folder, tmp_path):
    import keras

    from vidderain.models import save_model

    marker = tmp_path / "ran"
    code = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]"
    inputs = keras.Input((None, None, 3))
    save_model(keras.Model(inputs, keras.layers.Lambda(eval(code))(inputs)), tmp_path / "lambda.keras",
               {"arch": "default", "stride": 8, "overlap": 16})
    marker.unlink()  # building the model ran it once
    result = invoke("folder", rainy_folder, tmp_path / "out", "--model", tmp_path / "lambda.keras", "--ray", "local")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "serialized code" in errors[0], result.output
    assert "Ray cluster" not in result.output and not marker.exists()


def test_starting_a_cluster_keeps_vidderains_signal_handlers(ray_module):
    from vidderain.jobs.cluster import start_cluster
    from vidderain.interrupts import stop_signals_raise

    with stop_signals_raise():
        ours = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        ray = start_cluster("local", 1)
        try:
            assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == ours
        finally:
            ray.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_sigterm_to_the_driver_stops_the_workers_and_leaves_no_partial(ray_module, rainy_folder, trained_model_path,
                                                                        tmp_path):
    from safety_checks import partial_files, processes_mentioning, start_cli

    from vidderain.io.video import ffmpeg_exe

    # The photos and a 12-second clip: the driver takes about half a second to act on the
    # signal, and a busy machine's worker derained the 4-second clip's rest within it.
    folder = tmp_path / "in"
    folder.mkdir()
    for photo in rainy_folder.glob("*.png"):
        (folder / photo.name).write_bytes(photo.read_bytes())
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=128x96:r=25:d=12",
                    "-pix_fmt", "yuv420p", str(folder / "clip.mp4")], check=True)
    out = tmp_path / "out"
    driver = start_cli(tmp_path / "log.txt", "folder", folder, out, "--model", trained_model_path,
                       "--ray", "local", "--workers", 2, *SEGMENT)
    try:
        writing = threading.Event()

        def wait_for_the_video_writer():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not writing.is_set() and driver.poll() is None:
                # The segment being written is a temporary file in the clip's working folder.
                if processes_mentioning(f"{out}/.clip") and any(PART_MARK in p.name for p in out.glob(".clip*/*")):
                    writing.set()
                time.sleep(0.05)

        wait_for_the_video_writer()
        assert writing.is_set(), (tmp_path / "log.txt").read_text()
        driver.send_signal(signal.SIGTERM)
        code = driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    log = (tmp_path / "log.txt").read_text()
    assert code == 128 + signal.SIGTERM, log
    assert "interrupted (SIGTERM)" in log and "Traceback" not in log
    deadline = time.monotonic() + 10  # the killed worker's ffmpeg ends once its input closes
    while processes_mentioning(str(out)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(out)) == [] and partial_files(out) == []
    assert not (out / "clip.mp4").exists()
