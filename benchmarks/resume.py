"""How long the re-run of a video stopped half way takes, against a run from its first frame.

Run from the repository root: `python benchmarks/resume.py [SECONDS] [SIZE]` (defaults:
8 s of 640x360 at 25 fps). On a clip drawn by `vidderain bench` (a panning scene under
synthetic rain, with a sine tone for audio), with the bundled `default` model and the
default tile and batch, in one process, it times:

1. `derain_video` from the first frame to the end (segments of 1 s);
2. the same into another output, stopped once half the frames are in finished segments
   (the stop raised as a signal would raise it);
3. the re-run of (2), which resumes after its last finished segment;
4. (1) again, so that a change in the machine's load during the runs shows.

and prints (3) against the mean of (1) and (4), which should be about one half: a resumed
run pays for the frames it derains, a keyframe seek, and the join of the segments (a
copy), not for the frames a stopped run finished. It also checks that (3)'s frames are (1)'s.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vidderain.engine import Engine, TileSettings
from vidderain.io.video import VideoReader, VideoWriter, ffmpeg_exe
from vidderain.jobs import resume
from vidderain.jobs.bench import rainy_clip_frames
from vidderain.jobs.resume import NetworkIdentity
from vidderain.jobs.video import VideoOptions, derain_video
from vidderain.models import file_sha256, load_model

FPS = 25
SEGMENT_SECONDS = 1.0


def stop_half_way(frames: int):
    """A stand-in for WorkingFolder.record that stops the run once half the frames are recorded."""
    original = resume.WorkingFolder.record

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.progress.frames_done * 2 >= frames:
            raise KeyboardInterrupt

    return original, record


def main(seconds: float = 8.0, size: str = "640x360") -> None:
    width, height = (int(side) for side in size.split("x"))
    frames = round(seconds * FPS)
    loaded = load_model("default")
    engine = Engine(loaded.model, loaded.stride, TileSettings(overlap=loaded.overlap))
    network = NetworkIdentity(file_sha256(loaded.path), "float32")
    options = VideoOptions(segment=SEGMENT_SECONDS)
    with tempfile.TemporaryDirectory(prefix="vidderain-resume-") as folder:
        work = Path(folder)
        silent = work / "silent.mp4"
        with VideoWriter(silent, width, height, FPS) as writer:
            for frame in rainy_clip_frames(width, height, frames):
                writer.write(frame)
        clip = work / "clip.mp4"
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(silent), "-f", "lavfi", "-i",
                        f"sine=d={seconds}", "-c:v", "copy", "-c:a", "aac", "-shortest", str(clip)], check=True)
        engine.process(np.zeros((height, width, 3), np.float32))  # compile before any timing

        def full_run(number: int) -> float:
            began = time.perf_counter()
            derain_video(engine, clip, work / "full.mp4", options, network=network)
            seconds = time.perf_counter() - began
            print(f"{number}. from the first frame: {frames} frames in {seconds:.1f} s", flush=True)
            return seconds

        first = full_run(1)

        original, stopping = stop_half_way(frames)
        resume.WorkingFolder.record = stopping
        try:
            derain_video(engine, clip, work / "resumed.mp4", options, network=network)
            raise SystemExit("the run was not stopped")
        except KeyboardInterrupt:
            pass
        finally:
            resume.WorkingFolder.record = original
        lines: list[str] = []
        began = time.perf_counter()
        derain_video(engine, clip, work / "resumed.mp4", options, network=network, on_note=lines.append)
        resumed = time.perf_counter() - began
        print(f"2. stopped, then 3. resumed: {'; '.join(lines)}; {resumed:.1f} s", flush=True)
        full = (first + full_run(4)) / 2

        with VideoReader(work / "full.mp4") as a, VideoReader(work / "resumed.mp4") as b:
            pairs = list(zip(a.timed(), b.timed(), strict=True))
        same_times = all(x.time == y.time for x, y in pairs)
        difference = max(int(np.abs(x.image.astype(int) - y.image.astype(int)).max()) for x, y in pairs)
        print(f"frames: {len(pairs)}, same times: {same_times}, largest difference: {difference} levels")
        print(f"re-run / full run (mean of 1 and 4): {resumed:.1f} / {full:.1f} s = {resumed / full:.3f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0, sys.argv[2] if len(sys.argv) > 2 else "640x360")
