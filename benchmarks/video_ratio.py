"""Frames/s of the video job on a 640x360 clip, and end-to-end time over pure engine compute.

Run from the repository root: `python benchmarks/video_ratio.py default 60` (a model
name or path, and a frame count). Both timings run in one process on the same frames.
"""
import subprocess, sys, tempfile, time
from pathlib import Path
from vidderain.engine import Engine, TileSettings
from vidderain.io.video import VideoReader, ffmpeg_exe
from vidderain.models import load_model
from vidderain.pixels import to_float
from vidderain.videos import VideoOptions, derain_video
model_path, frames = sys.argv[1], int(sys.argv[2])
work = Path(tempfile.mkdtemp())
clip = work / "in.mp4"
subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=640x360:r=30:d={frames/30}",
                "-f", "lavfi", "-i", "sine=d=2", "-shortest", "-pix_fmt", "yuv420p", str(clip)], check=True)
loaded = load_model(model_path)
engine = Engine(loaded.model, loaded.stride, TileSettings(overlap=loaded.overlap))
with VideoReader(clip) as reader:
    decoded = [to_float(f) for f in reader]
list(engine.run(enumerate(decoded[:4])))  # compile once
t = time.perf_counter(); list(engine.run(enumerate(decoded))); compute = time.perf_counter() - t
t = time.perf_counter(); derain_video(engine, clip, work / "out.mp4", VideoOptions()); e2e = time.perf_counter() - t
print(f"{len(decoded)} frames 640x360: pure compute {compute:.1f} s ({len(decoded)/compute:.2f} frames/s), "
      f"end-to-end {e2e:.1f} s ({len(decoded)/e2e:.2f} frames/s), ratio {e2e/compute:.3f}")
