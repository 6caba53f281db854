"""Throughput and training speed of the networks, at float32 and bfloat16, side by side.

Run from the repository root: `python benchmarks/speed.py` (about 10 minutes on 2 cores).
Weights are random: speed does not depend on them. It prints

1. for `default`, seconds per 640x480 frame over a sweep of tile and batch settings, at
   each precision (this settles the `--tile`/`--batch` defaults per precision);
2. for every network of the architecture A/B in models/README.md, and `paper`: parameters,
   multiply-adds per pixel, whole-frame inference MP/s and training steps/s (batch 16 of
   96x96 crops), at each precision.

`vidderain bench` measures one setting end to end against its targets; this compares settings.
"""

from __future__ import annotations

import sys
import time

import keras
import numpy as np

from vidderain.engine import Engine, TileSettings
from vidderain.nets import ARCHITECTURES, count_macs
from vidderain.precision import Precision, at_precision
from vidderain.train.losses import charbonnier

PRECISIONS = [Precision("float32", "asked for"), Precision("bfloat16", "asked for")]
SWEEP = ((256, 4), (256, 1), (512, 2), (512, 1), (1024, 1), (0, 1))
NETWORKS = ("unet", "unet-deep", "unet-wide", "gated", "paper", "temporal")


def seconds_per_call(fn, rounds: int) -> float:
    fn()  # the first call compiles
    started = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - started) / rounds


def frame_for(arch) -> np.ndarray:
    return np.random.default_rng(0).random((480, 640, 3 * arch.frames), dtype=np.float32)


def sweep_tiles() -> None:
    arch = ARCHITECTURES["default"]
    model = arch.build()
    frame = frame_for(arch)
    print("default, seconds per 640x480 frame (MP/s)")
    print("tile, batch | " + " | ".join(p.name for p in PRECISIONS))
    for tile, batch in SWEEP:
        cells = []
        for precision in PRECISIONS:
            engine = Engine(at_precision(model, precision), arch.stride, TileSettings(tile=tile, overlap=32, batch=batch))
            dt = seconds_per_call(lambda: engine.process(frame), 3)
            cells.append(f"{dt:.3f} s ({640 * 480 / dt / 1e6:.2f})")
        print(f"{tile or 'whole'}, {batch} | " + " | ".join(cells), flush=True)


def compare_networks(names) -> None:
    print("\nnetwork | parameters | MAC/px | " + " | ".join(
        f"{p.name} inference MP/s | {p.name} training steps/s" for p in PRECISIONS))
    for name in names:
        arch = ARCHITECTURES[name]
        model = arch.build()
        frame = frame_for(arch)
        crops = np.random.default_rng(1).random((16, 96, 96, 3 * arch.frames), dtype=np.float32)
        targets = crops[..., :3]
        cells = []
        for precision in PRECISIONS:
            engine = Engine(at_precision(model, precision), arch.stride, TileSettings(tile=0))
            dt = seconds_per_call(lambda: engine.process(frame), 3)
            trained = at_precision(arch.build(), precision)
            trained.compile(optimizer=keras.optimizers.Adam(1e-3), loss=charbonnier)
            step = seconds_per_call(lambda: trained.train_on_batch(crops, targets), 8)
            cells += [f"{640 * 480 / dt / 1e6:.2f}", f"{1 / step:.2f}"]
        print(f"{name} | {model.count_params():,} | {count_macs(model):,.0f} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    sweep_tiles()
    compare_networks(sys.argv[1:] or NETWORKS)
