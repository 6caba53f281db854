"""`vidderain bench`: speed and memory of this machine with a model, against targets."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from vidderain.cli.application import command, err, out, quiet_native_stderr
from vidderain.cli.options import (
    BatchOption,
    ModelOption,
    OverlapOption,
    PrecisionOption,
    TileOption,
    check_model,
    describe_window,
    load_checked,
)
from vidderain.engine import TileSettings
from vidderain.errors import InputError
from vidderain.models import DEFAULT_MODEL
from vidderain.temporal import WindowSpec


def _frame_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise InputError(f"--size must be WIDTHxHEIGHT, e.g. 1920x1080. Received: {text!r}")
    return int(width), int(height)


@command()
def bench(
    model: ModelOption = DEFAULT_MODEL,
    size: Annotated[str, typer.Option("--size", help="Frame size of the generated clip, WIDTHxHEIGHT.")] = "640x360",
    frames: Annotated[int, typer.Option("--frames", min=2, help="Frames in the clip; the memory figure also runs 4x as many.")] = 24,
    tile: TileOption = TileSettings.tile,
    overlap: OverlapOption = None,
    batch: BatchOption = TileSettings.batch,
    precision: PrecisionOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of a table.")] = False,
) -> None:
    """Measure speed and memory on a rainy clip drawn for the purpose, against targets.

    In one run and on the same frames: (1) the engine alone, (2) the `video` job end to
    end, as a ratio to (1), (3) the obvious per-frame loop with the same model (float32,
    as loaded), (4) one frame tiled against whole, (5) the network's FLOP/s against a
    dense matrix multiply's, (6) peak memory of `vidderain video` on the clip and on one
    4x as long, (7) the network at the chosen precision against float32. With a temporal
    model, each frame's window is made in every figure, its optical flow included.
    """
    width, height = _frame_size(size)
    # Before Keras takes seconds to start.
    checked, tiles = check_model(model, tile, overlap, batch, ensemble=False, precision=precision)
    with quiet_native_stderr():
        # Imported here: the bench imports Keras, which takes seconds and writes to stderr as it starts.
        from vidderain.jobs.bench import TARGETS, BenchSettings, run_bench
    BenchSettings(width=width, height=height, frames=frames, tiles=tiles).check()
    loaded, device, chosen = load_checked(checked, precision)
    settings = BenchSettings(width=width, height=height, frames=frames, tiles=tiles, precision=chosen)
    err.print(f"benchmarking {loaded.path.name} on {device} in {chosen.describe()}", markup=False)
    result = run_bench(loaded, settings, on_stage=lambda text: err.print(f"  {text}", markup=False))
    passed = result.passed()
    if as_json:
        out.print_json(json.dumps({**dataclasses.asdict(result), "targets": TARGETS, "passed": passed}))
        return

    def row(figure: str, measured: str, name: str | None = None, ratio: str = "") -> str:
        if name is None:
            return f"{figure:<34} {measured}"
        bound, target = TARGETS[name]
        goal = f"{'<=' if bound == 'max' else '>='} {target:g}"
        return f"{figure:<34} {measured:<36} {ratio:>8}  {goal:<8} {'pass' if passed[name] else 'FAIL'}"

    r = result
    plan = f"{r.tiles_per_frame} tile{'s' if r.tiles_per_frame > 1 else ''} of {r.tile_width}x{r.tile_height}"
    window = describe_window(WindowSpec(r.window_frames, r.align))
    lines = [
        (f"{r.frames} frames of {r.width}x{r.height}; tile {r.tile or 'whole frame'} ({plan}), overlap {r.overlap}, "
         f"batch {r.batch}{window + ' (in every figure)' if window else ''}; {r.device}; {r.precision}"),
        row("figure", f"{'measured':<36} {'ratio':>8}  {'target':<8} result"),
        row("1 engine compute", f"{r.compute_megapixels_per_second:.3f} MP/s, {r.frames / r.compute_seconds:.2f} frames/s"),
        row("2 `video` end to end / compute", f"{r.video_frames_per_second:.2f} frames/s", "video_over_compute",
            f"{r.video_over_compute:.3f}"),
        row("3 speed-up over the obvious loop", f"loop {r.frames / r.loop_seconds:.2f} frames/s", "speedup_over_loop",
            f"{r.speedup_over_loop:.3f}x"),
        row("4 tiling overhead, one frame", f"{r.tiled_frame_seconds:.3f} s tiled, {r.whole_frame_seconds:.3f} s whole",
            "tiling_overhead", f"{r.tiling_overhead:+.1%}"),
        row("5 network / dense matmul", f"{r.network_gflops:.1f} / {r.matmul_gflops:.1f} GFLOP/s", "fraction_of_matmul",
            f"{r.fraction_of_matmul:.0%}"),
        row("6 peak RSS, 4x clip / clip", f"{r.peak_rss_long_mb:.0f} / {r.peak_rss_mb:.0f} MB", "memory_ratio",
            f"{r.memory_ratio:.3f}"),
        row("7 network at its precision / float32",
            f"{r.compute_seconds:.2f} s against {r.float32_compute_seconds:.2f} s: {r.precision_speedup:.2f}x"),
    ]
    for line in lines:
        out.print(line, markup=False)
