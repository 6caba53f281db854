"""How fast vidderain derains a video, measured against the obvious loop and the hardware.

`run_bench` draws a rainy clip, writes it with vidderain's own video writer and then
measures, in one process and on the same frames:

1. the engine alone, frames already decoded in memory (megapixels/s);
2. the `video` job end to end (decode, engine, encode), as a ratio to 1;
3. the obvious loop (decode a frame, `predict_on_batch` on the whole frame, encode)
   with the same model, and the `video` job's speed-up over it;
4. one frame tiled with the given settings against the same frame run whole;
5. the network's useful FLOP/s against a dense matrix multiply's in the same precision,
   measured with the same backend (the machine's practical peak);
6. the peak resident memory of `vidderain video` subprocesses on the clip and on a
   clip four times as long;
7. the network at the chosen precision against the same network at float32 (the
   engine alone, as in 1): the gain bfloat16 brings where the hardware has it.

The obvious loop of figure 3 is what a user writes: `predict_on_batch` on the model
as loaded, in float32, whatever precision the job runs at.

A temporal model reads each frame's window of neighbouring frames
(`vidderain.jobs.windows`); every figure then includes making the windows, the optical
flow of an aligned model included: the engine's figures (1, 4, 5, 7) stack them as the
`video` job does, in a thread beside the network, and the obvious loop stacks each
window in its own loop, with the same preparation, before `predict_on_batch`.

Ratios, not seconds, are what compare across runs: a shared machine's absolute
times vary. Nothing here prints; progress goes through a callback.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import keras
import numpy as np

from vidderain.devices import describe_device
from vidderain.engine import Engine, TileSettings, check_settings, pad_frame
from vidderain.errors import ParameterError
from vidderain.io.video import VideoReader, VideoWriter
from vidderain.jobs.video import VideoOptions, derain_video
from vidderain.jobs.windows import check_window, model_inputs, read_ahead
from vidderain.models import LoadedModel
from vidderain.nets import count_macs
from vidderain.pipeline import prefetch
from vidderain.pixels import to_float, to_integer
from vidderain.precision import FLOAT32, Precision, at_precision
from vidderain.data.synth import add_rain
from vidderain.temporal import WindowSpec, WindowStacker
from vidderain.veil import estimate_veils, lift, thumbnail_size, thumbnails

# Figure name -> (bound, target): "max" figures pass at or below the target, "min" at or above.
TARGETS: dict[str, tuple[str, float]] = {
    "video_over_compute": ("max", 1.15),
    "speedup_over_loop": ("min", 1.3),
    "tiling_overhead": ("max", 0.15),
    "fraction_of_matmul": ("min", 0.5),
    "memory_ratio": ("max", 1.1),
}
LONG_CLIP_FACTOR = 4  # the memory figure compares the clip with one this many times as long
_FPS = 30


@dataclass(frozen=True)
class BenchSettings:
    """What to measure on.

    Attributes:
        width: int. Frame width of the generated clip. Defaults to 640.
        height: int. Frame height of the generated clip. Defaults to 360.
        frames: int. Frames in the clip (the long clip has four times as many). Defaults to 24.
        tiles: TileSettings. The engine's tiling and batching. Defaults to TileSettings().
        repeats: int. Timings of one frame (figure 4) and of the matrix multiply; the
            best is kept, which sheds the moments another process took the CPU. Defaults to 3.
        matmul_size: int. Side of the square matrices multiplied. Defaults to 2048.
        precision: Precision. What the engine (and the `video` job) runs the network in.
            Defaults to float32.
    """

    width: int = 640
    height: int = 360
    frames: int = 24
    tiles: TileSettings = field(default_factory=TileSettings)
    repeats: int = 3
    matmul_size: int = 2048
    precision: Precision = FLOAT32

    def check(self) -> None:
        """Raise ParameterError naming a setting that cannot work."""
        for name in ("width", "height"):
            if getattr(self, name) < 16:
                raise ParameterError(name, getattr(self, name), "at least 16 pixels")
        if self.frames < 2:
            raise ParameterError("frames", self.frames, "at least 2")
        if self.repeats < 1:
            raise ParameterError("repeats", self.repeats, "at least 1")
        if self.matmul_size < 64:
            raise ParameterError("matmul_size", self.matmul_size, "at least 64")


@dataclass(frozen=True)
class BenchResult:
    """The seven figures, with what they were measured on.

    Attributes:
        model: str. Path of the model file.
        device: str. What the backend computed on, e.g. "CPU (2 cores, tensorflow)".
        precision: str. What the engine ran the network in ("float32" or "bfloat16"), and why.
        width, height, frames: int. The generated clip.
        tile, overlap, batch: int. The engine's settings.
        tiles_per_frame: int. Tiles the engine cut each frame into.
        tile_height, tile_width: int. Shape of those tiles (the padded frame when whole).
        compute_seconds: float. Figure 1: the engine over all frames, decoded beforehand.
        compute_megapixels_per_second: float. Figure 1 as a rate.
        video_seconds: float. Figure 2: `derain_video` on the clip, decode to encode.
        video_frames_per_second: float. Figure 2 as a rate.
        video_over_compute: float. Figure 2: video_seconds / compute_seconds.
        loop_seconds: float. Figure 3: the obvious per-frame loop on the clip.
        speedup_over_loop: float. Figure 3: loop_seconds / video_seconds.
        tiled_frame_seconds: float. Figure 4: one frame with the engine's settings (best of repeats).
        whole_frame_seconds: float. Figure 4: the same frame run whole, batch 1 (best of repeats).
        tiling_overhead: float. Figure 4: tiled / whole - 1.
        network_gflops: float. Figure 5: 2 x multiply-adds per pixel x pixels / compute_seconds.
        matmul_gflops: float. Figure 5: the best dense matrix multiply at the engine's precision.
        fraction_of_matmul: float. Figure 5: network_gflops / matmul_gflops.
        peak_rss_mb: float. Figure 6: peak resident memory of `vidderain video` on the clip.
        peak_rss_long_mb: float. Figure 6: the same on the clip four times as long.
        memory_ratio: float. Figure 6: peak_rss_long_mb / peak_rss_mb.
        float32_compute_seconds: float. Figure 7: the engine over the same frames at float32.
        precision_speedup: float. Figure 7: float32_compute_seconds / compute_seconds (1 at float32).
        window_frames: int. Frames the model reads per output frame (1, or a temporal model's
            window, whose stacking every figure includes). Defaults to 1.
        align: str. How the window's neighbours are aligned (`vidderain.temporal.ALIGNMENTS`). Defaults to "none".
    """

    model: str
    device: str
    precision: str
    width: int
    height: int
    frames: int
    tile: int
    overlap: int
    batch: int
    tiles_per_frame: int
    tile_height: int
    tile_width: int
    compute_seconds: float
    compute_megapixels_per_second: float
    video_seconds: float
    video_frames_per_second: float
    video_over_compute: float
    loop_seconds: float
    speedup_over_loop: float
    tiled_frame_seconds: float
    whole_frame_seconds: float
    tiling_overhead: float
    network_gflops: float
    matmul_gflops: float
    fraction_of_matmul: float
    peak_rss_mb: float
    peak_rss_long_mb: float
    memory_ratio: float
    float32_compute_seconds: float
    precision_speedup: float
    window_frames: int = 1
    align: str = "none"

    def passed(self) -> dict[str, bool]:
        """Whether each figure with a target meets it, by figure name (see `TARGETS`)."""
        verdicts = {}
        for name, (bound, target) in TARGETS.items():
            value = getattr(self, name)
            verdicts[name] = value <= target if bound == "max" else value >= target
        return verdicts


def rainy_clip_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """RGB uint8 frames of a drawn scene under synthetic rain, the camera panning slowly.

    The content matters to the encoder (rain is costly to encode), not to the network,
    whose cost depends only on the frame size.
    """
    rng = np.random.default_rng(seed)
    scene = _scene(height, width + 2 * count, rng)
    frames = []
    for i in range(count):
        view = np.ascontiguousarray(scene[:, 2 * i : 2 * i + width])
        frames.append(to_integer(add_rain(view, rng)))
    return frames


def _scene(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [rng.uniform(0.3, 0.7) + rng.uniform(-0.3, 0.3) * xx / width + rng.uniform(-0.3, 0.3) * yy / height
                for _ in range(3)]
    image = np.stack(channels, axis=2)
    for _ in range(max(8, height * width // 20000)):
        colour = tuple(float(c) for c in rng.uniform(0.05, 0.95, 3))
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        if rng.random() < 0.5:
            cv2.circle(image, centre, int(rng.integers(4, max(5, height // 6))), colour, -1, cv2.LINE_AA)
        else:
            corner = (centre[0] + int(rng.integers(-80, 80)), centre[1] + int(rng.integers(-80, 80)))
            cv2.rectangle(image, centre, corner, colour, -1, cv2.LINE_AA)
    texture = cv2.GaussianBlur(rng.normal(0, 0.05, image.shape).astype(np.float32), (0, 0), 1.5)
    return np.clip(image + texture, 0.0, 1.0)


def obvious_loop(loaded: LoadedModel, source: Path, destination: Path) -> int:
    """Derain `source` the way anyone would in ten lines: frame by frame, whole, no overlap of stages.

    Frames are padded to the network's stride (it needs that) and cropped back. A temporal
    model gets each frame's window, stacked in the same loop with the `video` job's
    preparation (`vidderain.jobs.windows`, alignment included); a model with a veil estimate
    has each derained frame's veil lifted, as the engine does.

    Returns:
        Frames written.
    """
    stride = loaded.stride
    spec = WindowSpec.from_metadata(loaded.metadata)
    with VideoReader(source) as reader, VideoWriter.matching(destination, reader) as writer:
        decoded = ((time, to_float(frame)) for frame, time in reader.timed())
        for time, rgb in model_inputs(decoded, spec):
            height, width = rgb.shape[:2]
            padded = pad_frame(rgb, math.ceil(height / stride) * stride, math.ceil(width / stride) * stride)
            derained = np.asarray(loaded.model.predict_on_batch(padded[None]))[0, :height, :width]
            if loaded.veil is not None:
                seen = thumbnails(rgb, derained, thumbnail_size(loaded.veil))
                derained = lift(derained, estimate_veils(loaded.veil, [seen])[0])
            writer.write(to_integer(derained), time)
        return writer.frames_written


def matmul_gflops(size: int, repeats: int, dtype: str = "float32") -> float:
    """Best GFLOP/s of a dense `size` x `size` matrix multiply in `dtype` with the current Keras backend."""
    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.random((size, size), dtype=np.float32), dtype=dtype)
    b = keras.ops.convert_to_tensor(rng.random((size, size), dtype=np.float32), dtype=dtype)

    def multiply() -> None:
        # Reading one element back waits for the whole product, also on asynchronous backends.
        keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.matmul(a, b)[0, 0], "float32"))

    best = _best_seconds(multiply, repeats)
    return 2 * size**3 / best / 1e9


def peak_rss_of_video_job(loaded: LoadedModel, tiles: TileSettings, source: Path, destination: Path,
                          precision: Precision = FLOAT32) -> float:
    """Peak resident memory (MB) of a `vidderain video` subprocess deraining `source`.

    Raises:
        RuntimeError: the subprocess failed; the message ends with its last error line.
    """
    command = [
        sys.executable, "-m", "vidderain", "video", str(source), str(destination), "--overwrite",
        "--model", str(loaded.path), "--tile", str(tiles.tile), "--overlap", str(tiles.overlap),
        "--batch", str(tiles.batch), "--precision", precision.name,
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        try:
            # wait4 reports this child's own peak; RUSAGE_CHILDREN would keep the largest so far.
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"`vidderain video` exited with {process.returncode}: {lines[-1] if lines else ''}")
    return usage.ru_maxrss / 1024  # Linux reports kilobytes


def run_bench(
    loaded: LoadedModel,
    settings: BenchSettings = BenchSettings(),
    on_stage: Callable[[str], None] | None = None,
) -> BenchResult:
    """Measure the seven figures on a clip drawn for the purpose, in a temporary folder.

    Args:
        loaded: LoadedModel. The model to measure (`vidderain.models.load_model`).
        settings: BenchSettings. Clip size and length, engine settings. Defaults to BenchSettings().
        on_stage: callable or None. Called with a short description as each measurement starts.

    Returns:
        BenchResult with every figure.

    Raises:
        ParameterError: a setting cannot work.
    """
    settings.check()
    check_settings(settings.tiles, loaded.stride)
    stage = on_stage or (lambda _: None)
    width, height, count = settings.width, settings.height, settings.frames
    megapixels = width * height * count / 1e6
    network = at_precision(loaded.model, settings.precision)
    engine = Engine(network, loaded.stride, settings.tiles, veil=loaded.veil)
    whole = Engine(network, loaded.stride, TileSettings(tile=0, overlap=settings.tiles.overlap, batch=1), veil=loaded.veil)
    float32_engine = Engine(loaded.model, loaded.stride, settings.tiles, veil=loaded.veil)
    spec = WindowSpec.from_metadata(loaded.metadata)
    check_window(engine, spec)

    with tempfile.TemporaryDirectory(prefix="vidderain-bench-") as folder:
        work = Path(folder)
        stage(f"drawing a {width}x{height} clip of {count} frames and one of {LONG_CLIP_FACTOR * count}")
        clip, long_clip = work / "clip.mp4", work / "long.mp4"
        drawn = rainy_clip_frames(width, height, count)
        for path, repeat in ((clip, 1), (long_clip, LONG_CLIP_FACTOR)):
            with VideoWriter(path, width, height, _FPS) as writer:
                for _ in range(repeat):
                    for frame in drawn:
                        writer.write(frame)
        with VideoReader(clip) as reader:
            decoded = [to_float(frame) for frame in reader]

        stacker = WindowStacker(spec)

        def first_input() -> np.ndarray:
            # One frame's input: a temporal model's full window, prepared and stacked anew.
            if spec.frames == 1:
                return decoded[0]
            window = [decoded[index % len(decoded)] for index in range(spec.frames)]
            return stacker.stack([stacker.prepare(frame) for frame in window])

        stage("compiling")
        engine.process(first_input())
        whole.process(first_input())
        float32_engine.process(first_input())
        plan = engine.plan(height, width)

        stage("1: engine compute" + (", windows included" if spec.frames > 1 else ""))
        started = time.perf_counter()
        for _, _ in engine.run(_inputs(decoded, spec)):
            pass
        compute = time.perf_counter() - started

        stage("2: `video` end to end")
        started = time.perf_counter()
        derain_video(engine, clip, work / "video.mp4", VideoOptions(), window=spec)
        video = time.perf_counter() - started

        stage("3: the obvious loop")
        started = time.perf_counter()
        obvious_loop(loaded, clip, work / "loop.mp4")
        loop = time.perf_counter() - started

        stage("4: one frame tiled and whole")
        tiled_frame = _best_seconds(lambda: engine.process(first_input()), settings.repeats)
        whole_frame = _best_seconds(lambda: whole.process(first_input()), settings.repeats)

        stage("5: dense matrix multiply")
        gflops = 2 * count_macs(loaded.model) * megapixels * 1e6 / compute / 1e9
        peak = matmul_gflops(settings.matmul_size, settings.repeats, settings.precision.name)

        stage(f"6: peak memory of `vidderain video` on {count} and {LONG_CLIP_FACTOR * count} frames")
        rss = peak_rss_of_video_job(loaded, settings.tiles, clip, work / "rss.mp4", settings.precision)
        rss_long = peak_rss_of_video_job(loaded, settings.tiles, long_clip, work / "rss-long.mp4", settings.precision)

        if settings.precision.name == "float32":
            float32_compute = compute
        else:
            stage("7: engine compute at float32")
            started = time.perf_counter()
            for _, _ in float32_engine.run(_inputs(decoded, spec)):
                pass
            float32_compute = time.perf_counter() - started

    return BenchResult(
        model=str(loaded.path),
        device=describe_device(),
        precision=settings.precision.describe(),
        width=width,
        height=height,
        frames=count,
        tile=settings.tiles.tile,
        overlap=settings.tiles.overlap,
        batch=settings.tiles.batch,
        tiles_per_frame=plan.count,
        tile_height=plan.tile_height,
        tile_width=plan.tile_width,
        compute_seconds=compute,
        compute_megapixels_per_second=megapixels / compute,
        video_seconds=video,
        video_frames_per_second=count / video,
        video_over_compute=video / compute,
        loop_seconds=loop,
        speedup_over_loop=loop / video,
        tiled_frame_seconds=tiled_frame,
        whole_frame_seconds=whole_frame,
        tiling_overhead=tiled_frame / whole_frame - 1,
        network_gflops=gflops,
        matmul_gflops=peak,
        fraction_of_matmul=gflops / peak,
        peak_rss_mb=rss,
        peak_rss_long_mb=rss_long,
        memory_ratio=rss_long / rss,
        float32_compute_seconds=float32_compute,
        precision_speedup=float32_compute / compute,
        window_frames=spec.frames,
        align=spec.align,
    )


def _inputs(decoded: list[np.ndarray], spec: WindowSpec):
    """The engine's input for each decoded frame: the frame, or its window stacked in a thread as `video` does."""
    if spec.frames == 1:
        return enumerate(decoded)
    return prefetch(model_inputs(enumerate(decoded), spec), depth=read_ahead(spec), name="stack-windows")


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm: the first call may compile
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best
