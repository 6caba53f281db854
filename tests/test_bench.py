"""`vidderain bench`: six figures measured in one run on a clip it draws itself."""

from __future__ import annotations

import json
import math
import time

import numpy as np
from typer.testing import CliRunner

from vidderain.jobs import bench
from vidderain.jobs.bench import TARGETS, BenchResult, rainy_clip_frames
from vidderain.cli import app
from vidderain.temporal import WindowStacker

runner = CliRunner()


def test_bench_json_gives_all_six_figures_measured_on_a_tiled_clip(trained_model_path):
    # 80x48 frames with tiles of at most 48: two tiles across, so figure 4 compares real tiling.
    result = runner.invoke(app, ["bench", "--model", str(trained_model_path), "--size", "80x48", "--frames", "3",
                                 "--tile", "48", "--overlap", "8", "--batch", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["width"], report["height"], report["frames"]) == (80, 48, 3)
    assert (report["tile"], report["overlap"], report["batch"]) == (48, 8, 2)
    assert report["tiles_per_frame"] == 2 and (report["tile_height"], report["tile_width"]) == (48, 48)
    timings = ["compute_seconds", "video_seconds", "loop_seconds", "tiled_frame_seconds", "whole_frame_seconds"]
    rates = ["compute_megapixels_per_second", "video_frames_per_second", "network_gflops", "matmul_gflops"]
    for name in timings + rates:
        assert math.isfinite(report[name]) and report[name] > 0, name
    assert report["video_over_compute"] == report["video_seconds"] / report["compute_seconds"]
    assert report["speedup_over_loop"] == report["loop_seconds"] / report["video_seconds"]
    assert report["tiling_overhead"] == report["tiled_frame_seconds"] / report["whole_frame_seconds"] - 1
    assert report["fraction_of_matmul"] == report["network_gflops"] / report["matmul_gflops"]
    # A Python process with Keras loaded holds well over 100 MB; a frame here is 11 kB.
    assert 100 < report["peak_rss_mb"] < 16_000 and 100 < report["peak_rss_long_mb"] < 16_000
    assert report["memory_ratio"] == report["peak_rss_long_mb"] / report["peak_rss_mb"]
    assert set(report["passed"]) == set(TARGETS) and all(isinstance(v, bool) for v in report["passed"].values())
    # Figure 7: the engine at the chosen precision against float32, on the same frames.
    assert report["precision"].startswith(("float32", "bfloat16"))
    assert math.isfinite(report["float32_compute_seconds"]) and report["float32_compute_seconds"] > 0
    assert report["precision_speedup"] == report["float32_compute_seconds"] / report["compute_seconds"]
    if report["precision"].startswith("float32"):
        assert report["precision_speedup"] == 1.0  # at float32 there is nothing to compare with


def test_bench_forced_to_bfloat16_times_float32_beside_it(trained_model_path):
    result = runner.invoke(app, ["bench", "--model", str(trained_model_path), "--size", "64x48", "--frames", "2",
                                 "--precision", "bfloat16", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["precision"] == "bfloat16 (asked for)"
    assert report["float32_compute_seconds"] != report["compute_seconds"]  # measured separately
    assert "in bfloat16 (asked for)" in result.stderr


def test_bench_with_a_temporal_model_times_its_windows_in_every_figure(temporal_model_path, monkeypatch):
    # Stacking a window (the optical flow) is made to take 50 ms: every time the bench reports must hold it.
    stack = WindowStacker.stack

    def slow_stack(self, window):
        time.sleep(0.05)
        return stack(self, window)

    monkeypatch.setattr(WindowStacker, "stack", slow_stack)
    monkeypatch.setattr(bench, "peak_rss_of_video_job", lambda *args, **kwargs: 500.0)  # subprocesses: not this test's
    frames = 4
    result = runner.invoke(app, ["bench", "--model", str(temporal_model_path), "--size", "64x48", "--frames", frames,
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["window_frames"], report["align"]) == (5, "camera")
    for name in ("compute_seconds", "video_seconds", "loop_seconds", "float32_compute_seconds"):
        assert report[name] >= frames * 0.05, name
    for name in ("tiled_frame_seconds", "whole_frame_seconds"):
        assert report[name] >= 0.05, name
    assert "windows included" in result.stderr


def _result(**changes) -> BenchResult:
    figures = {
        "model": "m.keras", "device": "CPU (2 cores, tensorflow)", "width": 640, "height": 360, "frames": 24,
        "tile": 1024, "overlap": 32, "batch": 1, "tiles_per_frame": 1, "tile_height": 360, "tile_width": 640,
        "compute_seconds": 10.0, "compute_megapixels_per_second": 0.553, "video_seconds": 10.5,
        "video_frames_per_second": 2.29, "video_over_compute": 1.05, "loop_seconds": 11.0, "speedup_over_loop": 1.048,
        "tiled_frame_seconds": 0.4, "whole_frame_seconds": 0.4, "tiling_overhead": 0.0, "network_gflops": 90.0,
        "matmul_gflops": 120.0, "fraction_of_matmul": 0.75, "peak_rss_mb": 900.0, "peak_rss_long_mb": 910.0,
        "memory_ratio": 910 / 900, "precision": "bfloat16 (CPU has avx512_bf16)", "float32_compute_seconds": 19.0,
        "precision_speedup": 1.9,
    }
    return BenchResult(**{**figures, **changes})


def test_each_figure_passes_or_fails_against_its_target():
    assert _result().passed() == {"video_over_compute": True, "speedup_over_loop": False, "tiling_overhead": True,
                                  "fraction_of_matmul": True, "memory_ratio": True}
    failing = _result(video_over_compute=1.2, tiling_overhead=0.2, fraction_of_matmul=0.4, memory_ratio=1.5)
    assert not any(failing.passed().values())


def test_bench_table_shows_the_six_figures_with_targets_and_verdicts(monkeypatch, trained_model_path):
    monkeypatch.setattr(bench, "run_bench", lambda loaded, settings, on_stage=None: _result())
    result = runner.invoke(app, ["bench", "--model", str(trained_model_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for number, ratio, target, verdict in [("2", "1.050", "<= 1.15", "pass"), ("3", "1.048x", ">= 1.3", "FAIL"),
                                           ("4", "+0.0%", "<= 0.15", "pass"), ("5", "75%", ">= 0.5", "pass"),
                                           ("6", "1.011", "<= 1.1", "pass")]:
        row = next(line for line in lines if line.startswith(f"{number} "))
        assert ratio in row and target in row and row.endswith(verdict), row
    assert any(line.startswith("1 engine compute") and "0.553 MP/s" in line for line in lines)
    assert any(line.startswith("7 network at its precision / float32") and "1.90x" in line for line in lines)
    assert "bfloat16 (CPU has avx512_bf16)" in lines[0]


def test_bench_table_says_a_temporal_models_windows_are_in_every_figure(monkeypatch, temporal_model_path):
    monkeypatch.setattr(bench, "run_bench", lambda loaded, settings, on_stage=None: _result(window_frames=5, align="flow"))
    result = runner.invoke(app, ["bench", "--model", str(temporal_model_path)])
    assert result.exit_code == 0, result.output
    assert "batch 1, windows of 5 frames aligned by optical flow (in every figure);" in result.stdout.splitlines()[0]


def test_bench_refuses_a_size_that_is_not_width_x_height():
    result = runner.invoke(app, ["bench", "--size", "640"])
    assert result.exit_code == 2
    assert "--size must be WIDTHxHEIGHT" in result.output and "'640'" in result.output


def test_the_drawn_clip_pans_under_changing_rain():
    frames = rainy_clip_frames(64, 40, 3)
    assert [f.shape for f in frames] == [(40, 64, 3)] * 3 and all(f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[1])
