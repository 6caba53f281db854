"""Where the `video` job's time goes beyond the engine's compute (bench figures 2 and 3).

Run from the repository root: `python benchmarks/video_overhead.py [FRAMES]`. On the
bench's own clip (640x360, bundled `default` model, shipped tile and batch), it times,
in one process and in this order, twice over so that order effects show:

- the engine alone on frames decoded beforehand (bench figure 1);
- `derain_video` end to end, with the network's calls timed inside it: the sum of
  `predict_on_batch` calls, the wait before the first frame reaches the network, and
  the time after the last one (encoder flush, container finalisation);
- the obvious loop, timed the same way.

If the network's calls take longer inside the job than alone, the job's other threads
and processes are taking CPU from it; if they take as long, the overhead is time the
network waits.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from vidderain.jobs.bench import obvious_loop, rainy_clip_frames
from vidderain.engine import Engine, TileSettings
from vidderain.io.video import VideoReader, VideoWriter
from vidderain.models import load_model
from vidderain.pixels import to_float
from vidderain.jobs.video import derain_video


class TimedModel:
    """Wraps a Keras model; records when each `predict_on_batch` call starts and ends."""

    def __init__(self, model):
        self.model = model
        self.calls: list[tuple[float, float]] = []

    def predict_on_batch(self, x):
        started = time.perf_counter()
        out = self.model.predict_on_batch(x)
        self.calls.append((started, time.perf_counter()))
        return out

    def report(self, began: float, ended: float) -> str:
        inside = sum(b - a for a, b in self.calls)
        first, last = self.calls[0][0] - began, ended - self.calls[-1][1]
        gaps = sum(b[0] - a[1] for a, b in zip(self.calls, self.calls[1:]))
        self.calls.clear()
        return (f"total {ended - began:6.2f} s = network {inside:6.2f} s + before first call {first:5.2f} s "
                f"+ between calls {gaps:5.2f} s + after last call {last:5.2f} s")


def main(frames: int = 24) -> None:
    loaded = load_model("default")
    timed = TimedModel(loaded.model)
    engine = Engine(timed, loaded.stride, TileSettings())
    with tempfile.TemporaryDirectory(prefix="vidderain-overhead-") as folder:
        work = Path(folder)
        clip = work / "clip.mp4"
        with VideoWriter(clip, 640, 360, 30) as writer:
            for frame in rainy_clip_frames(640, 360, frames):
                writer.write(frame)
        with VideoReader(clip) as reader:
            decoded = [to_float(frame) for frame in reader]
        engine.process(decoded[0])  # compile
        timed.calls.clear()
        loaded = dataclasses.replace(loaded, model=timed)  # the loop calls loaded.model.predict_on_batch
        for round_ in (1, 2):
            began = time.perf_counter()
            for _ in engine.run(enumerate(decoded)):
                pass
            print(f"round {round_} engine alone: {timed.report(began, time.perf_counter())}", flush=True)
            began = time.perf_counter()
            derain_video(engine, clip, work / "video.mp4")
            print(f"round {round_} video job:    {timed.report(began, time.perf_counter())}", flush=True)
            began = time.perf_counter()
            obvious_loop(loaded, clip, work / "loop.mp4")
            print(f"round {round_} obvious loop: {timed.report(began, time.perf_counter())}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
