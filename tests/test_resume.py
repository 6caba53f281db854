"""A stopped video resumes after its last finished segment, frame for frame as an uninterrupted run.

Clips are made with the bundled ffmpeg and cut into segments of a fraction of a second
(`--segment`), so a few dozen small frames make several segments. A run is stopped
right after its n-th segment is recorded (the stop raised in the encoder thread, as a
signal would end the run there), then run again.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidderain.cli import app
from vidderain.io.files import RESUME_MARK, working_folder
from vidderain.io.video import (
    FrameMark,
    Segment,
    VideoReader,
    ffmpeg_exe,
    probe_video,
)
from vidderain.io.video.segments import concat_list
from vidderain.errors import InputError
from vidderain.jobs import resume
from vidderain.jobs.resume import JobIdentity, SegmentRecord, WorkingFolder, tidy_after_a_lost_run

runner = CliRunner()
LOSSLESS = ("--crf", "0", "--pix-fmt", "yuv444p", "--preset", "ultrafast")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def make_clip(path: Path, *args: str) -> Path:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, str(path)],
                   check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("resume-clips")
    return {
        # 2 s at 30000/1001 with audio; keyframes every 12 frames, so a resumed read seeks.
        "ntsc": make_clip(folder / "ntsc.mp4", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=30000/1001:d=2",
                          "-f", "lavfi", "-i", "sine=f=440:d=2", "-pix_fmt", "yuv420p", "-g", "12", "-c:a", "aac"),
        # 30 fps, then 10 fps: frame intervals change half way.
        "vfr": make_clip(folder / "vfr.mkv", "-f", "lavfi", "-i",
                         "testsrc2=s=64x48:r=30:d=0.6[a];testsrc2=s=64x48:r=10:d=1[b];[a][b]concat=n=2:v=1",
                         "-fps_mode", "vfr", "-pix_fmt", "yuv420p", "-g", "6"),
    }


def read_all(path: Path) -> list:
    with VideoReader(path) as reader:
        return list(reader.timed())


def stop_after_segments(monkeypatch, count: int) -> None:
    """The next run stops once its `count`-th segment is recorded."""
    original = resume.WorkingFolder.record
    calls = [0]

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == count:
            raise KeyboardInterrupt

    monkeypatch.setattr(resume.WorkingFolder, "record", record)


def kept_frames(destination: Path) -> int:
    manifest = json.loads((working_folder(destination) / "manifest.json").read_text())
    return sum(segment["count"] for segment in manifest["segments"])


def reads_seeking(monkeypatch) -> list:
    """Record, for every reader the job closes, whether it found its first frame by seeking."""
    sought = []
    original = VideoReader.close

    def close(self):
        sought.append(self.sought)
        original(self)

    monkeypatch.setattr(VideoReader, "close", close)
    return sought


def assert_same_video(resumed: Path, reference: Path) -> None:
    """Same frame count, every frame within 1 level, the same times, the same audio."""
    ours, theirs = read_all(resumed), read_all(reference)
    assert len(ours) == len(theirs)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        assert a.time == b.time, f"frame {index}: {a.time} against {b.time}"
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1, f"frame {index} differs"
    a, b = probe_video(resumed), probe_video(reference)
    assert (a.audio_streams, a.fps, a.frame_count) == (b.audio_streams, b.fps, b.frame_count)
    assert a.duration == pytest.approx(b.duration, abs=1e-3)


@pytest.mark.parametrize("clip", ["ntsc", "vfr"])
def test_a_video_stopped_half_way_resumes_and_equals_an_uninterrupted_run(clip, clips, tmp_path, monkeypatch,
                                                                          trained_model_path):
    source = clips[clip]
    suffix = source.suffix
    args = ("--model", trained_model_path, "--segment", "0.3", *LOSSLESS)
    reference = tmp_path / f"reference{suffix}"
    assert invoke("video", source, reference, *args).exit_code == 0

    out = tmp_path / f"out{suffix}"
    with monkeypatch.context() as patch:
        stop_after_segments(patch, 2)
        stopped = invoke("video", source, out, *args)
    assert stopped.exit_code == 130, stopped.output
    assert not out.exists()
    done = kept_frames(out)
    total = probe_video(source).frame_count
    assert 0 < done < total

    sought = reads_seeking(monkeypatch)
    resumed = invoke("video", source, out, *args)
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming at frame {done + 1} of {total}" in resumed.output
    assert f"{total - done} frames derained" in resumed.output
    assert sought == [True]  # a keyframe before the segment, not the first frame
    assert not working_folder(out).exists()
    assert_same_video(out, reference)


def test_a_folder_job_resumes_its_video(clips, tmp_path, monkeypatch, trained_model_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(clips["ntsc"].read_bytes())
    args = ("--model", trained_model_path, "--segment", "0.5", *LOSSLESS)
    assert invoke("folder", folder, tmp_path / "reference", *args).exit_code == 0
    with monkeypatch.context() as patch:
        stop_after_segments(patch, 1)
        assert invoke("folder", folder, tmp_path / "out", *args).exit_code == 130
    done = kept_frames(tmp_path / "out" / "clip.mp4")
    again = invoke("folder", folder, tmp_path / "out", *args)
    assert again.exit_code == 0, again.output
    assert f"clip.mp4: resuming at frame {done + 1} of 60" in again.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4"]
    assert_same_video(tmp_path / "out" / "clip.mp4", tmp_path / "reference" / "clip.mp4")


def test_a_temporal_model_reads_its_neighbours_before_the_resumed_segment(clips, tmp_path, monkeypatch,
                                                                          temporal_model_path):
    # Without the frames before the segment, its first frames would get the replicated
    # edges of a clip's start, and differ from an uninterrupted run's.
    args = ("--model", temporal_model_path, "--segment", "0.5", *LOSSLESS)
    reference = tmp_path / "reference.mp4"
    assert invoke("video", clips["ntsc"], reference, *args).exit_code == 0
    out = tmp_path / "out.mp4"
    with monkeypatch.context() as patch:
        stop_after_segments(patch, 1)
        assert invoke("video", clips["ntsc"], out, *args).exit_code == 130
    done = kept_frames(out)
    resumed = invoke("video", clips["ntsc"], out, *args)
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming at frame {done + 1} of 60" in resumed.output
    assert_same_video(out, reference)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("settings", "starting again from the first frame: the settings changed (crf 0 -> 1)"),
        ("precision", "starting again from the first frame: the model changed (precision float32 -> bfloat16)"),
        ("source", "starting again from the first frame: the source changed (modified_ns)"),
        ("overwrite", None),
    ],
)
def test_another_source_model_or_setting_starts_again_and_says_why(change, reason, clips, tmp_path, monkeypatch,
                                                                   trained_model_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(clips["ntsc"].read_bytes())
    args = ["--model", trained_model_path, "--segment", "0.5", "--precision", "float32", *LOSSLESS]
    out = tmp_path / "out.mp4"
    with monkeypatch.context() as patch:
        stop_after_segments(patch, 1)
        assert invoke("video", source, out, *args).exit_code == 130
    assert working_folder(out).is_dir()
    if change == "settings":
        args[args.index("--crf") + 1] = "1"
    elif change == "precision":
        args[args.index("--precision") + 1] = "bfloat16"
    elif change == "source":
        os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    else:
        args.append("--overwrite")
    again = invoke("video", source, out, *args)
    assert again.exit_code == 0, again.output
    assert "resuming" not in again.output
    if reason is None:
        assert "starting again" not in again.output
    else:
        assert [line for line in again.output.splitlines() if "starting again" in line] == [reason]
    assert probe_video(out).frame_count == 60 and not working_folder(out).exists()


def test_a_video_another_run_is_writing_is_refused_in_one_line(clips, tmp_path, trained_model_path):
    out = tmp_path / "out.mp4"
    folder = working_folder(out)
    folder.mkdir()
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as the other run holds it
        result = invoke("video", clips["ntsc"], out, "--model", trained_model_path)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {out}: another run is writing it (its working folder {folder.name} is locked)"]
    assert not out.exists()


# The pieces, without a model ------------------------------------------------------------------------


@pytest.mark.parametrize("clip", ["ntsc", "vfr", "avi", "trimmed", "wrong time"])
def test_a_read_begun_at_a_frame_gives_the_frames_a_read_from_the_start_gives(clip, clips, tmp_path):
    source, start = clips.get(clip, clips["ntsc"]), None
    if clip == "avi":
        source = make_clip(tmp_path / "clip.avi", "-i", str(clips["ntsc"]), "-c:v", "mpeg4", "-q:v", "2", "-an")
    if clip == "trimmed":
        start = 0.4
    with VideoReader(source, start=start) as reader:
        frames = list(reader.timed())
        origin = reader.grid_origin
    for index in (1, 13, len(frames) - 1):
        time = frames[index].time + (Fraction(1, 1000) if clip == "wrong time" else 0)
        with VideoReader(source, start=start, begin=FrameMark(index, time, origin)) as reader:
            part = list(reader.timed())
            # Seeking where it can be trusted: whole MP4 and Matroska files, and the frame found has the time recorded.
            assert reader.sought == (clip in ("ntsc", "vfr")), (clip, index)
        assert [f.time for f in part] == [f.time for f in frames[index:]]
        assert all(np.array_equal(a.image, b.image) for a, b in zip(part, frames[index:]))


def test_the_concat_list_places_each_segment_at_its_first_frame_without_drift(tmp_path):
    rate = Fraction(30000, 1001)
    starts = [Fraction(0), 7 / rate, 20 / rate, 33 / rate]
    segments = [Segment(tmp_path / f"{i}.mp4", start, end)
                for i, (start, end) in enumerate(zip(starts, [*starts[1:], None]))]
    durations = [line.split()[1] for line in concat_list(segments).splitlines() if line.startswith("duration")]
    # Durations are differences of rounded starts: their sums are the rounded starts themselves.
    total = 0
    for start, duration in zip(starts[1:], durations):
        seconds, micros = duration.split(".")
        total += int(seconds) * 1_000_000 + int(micros)
        assert total == round(start * 1_000_000)


def test_a_name_with_a_quote_is_escaped_in_the_concat_list(tmp_path):
    text = concat_list([Segment(tmp_path / "it's.mp4", Fraction(0), None)])
    assert f"file 'file:{tmp_path}/it'\\''s.mp4'" in text


def test_the_working_folder_is_hidden_beside_the_output_and_never_under_its_name(tmp_path):
    assert working_folder(tmp_path / "clip.mp4") == tmp_path / f".clip.mp4{RESUME_MARK}"
    long_a, long_b = "a" * 240 + "1.mp4", "a" * 240 + "2.mp4"
    folder_a, folder_b = working_folder(tmp_path / long_a), working_folder(tmp_path / long_b)
    assert folder_a != folder_b and len(os.fsencode(folder_a.name)) < 255
    assert folder_a.parent == tmp_path and folder_a.name.startswith(".")


def test_an_identity_names_what_changed():
    recorded = JobIdentity({"size": 1}, {"sha256": "a" * 64, "precision": "float32"}, {"crf": 18, "tile": 1024})
    assert recorded.difference(recorded.as_json()) is None
    assert JobIdentity({"size": 2}, recorded.model, recorded.settings).difference(recorded.as_json()) == \
        "the source changed (size)"
    changed = JobIdentity(recorded.source, {"sha256": "b" * 64, "precision": "float32"}, recorded.settings)
    assert changed.difference(recorded.as_json()) == "the model changed (sha256 aaaaaaaaaaaa... -> bbbbbbbbbbbb...)"
    assert JobIdentity(recorded.source, recorded.model, {"crf": 20, "tile": 1024}).difference(recorded.as_json()) == \
        "the settings changed (crf 18 -> 20)"


def test_a_killed_run_that_writes_on_stops_at_its_next_segment_once_its_folder_is_tidied(tmp_path):
    # A Ray driver kills a worker and tidies its video's folder; the kill takes effect a
    # moment later. The worker, still writing, must not record more segments (nor finish
    # the video from the ones kept for the next run).
    identity = JobIdentity({"size": 1}, {"sha256": "a", "precision": "float32"}, {"crf": 18})
    out = tmp_path / "out.mp4"
    with WorkingFolder(out, identity) as work:
        work.segment_path(0).write_bytes(b"a whole segment")
        work.record(SegmentRecord("00000000.mp4", 0, 5, Fraction(0), Fraction(1, 5)), Fraction(0),
                    FrameMark(5, Fraction(1, 5), Fraction(0)), FrameMark(5, Fraction(1, 5), Fraction(0)))
        tidy_after_a_lost_run(out)
        work.segment_path(5).write_bytes(b"written on after the kill")
        with pytest.raises(InputError, match="tidied after its run was killed"):
            work.record(SegmentRecord("00000005.mp4", 5, 5, Fraction(1, 5), None), Fraction(0), None, None)
    with WorkingFolder(out, identity) as again:  # the next run continues after the first segment alone
        assert [s.file for s in again.progress.segments] == ["00000000.mp4"]
        assert sorted(p.name for p in again.path.iterdir()) == ["00000000.mp4", "lock", "manifest.json"]
