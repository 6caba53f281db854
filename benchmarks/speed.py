"""Throughput over a sweep of tile and batch settings, and training speed, of both networks.

Run from the repository root: `python benchmarks/speed.py`. Weights are random:
speed does not depend on them. `vidderain bench` measures one setting end to end
against its targets; this sweep compares tile and batch settings.
"""
import time, numpy as np, keras
from vidderain.nets import ARCHITECTURES
from vidderain.engine import Engine, TileSettings
from vidderain.train.losses import charbonnier
frame = np.random.default_rng(0).random((480, 640, 3), dtype=np.float32)
x = np.random.default_rng(1).random((8, 96, 96, 3), dtype=np.float32)
for name in ("default", "paper"):
    arch = ARCHITECTURES[name]; m = arch.build()
    for tile, batch in ((256, 4), (256, 1), (512, 2), (512, 1), (1024, 1), (0, 1)):
        e = Engine(m, arch.stride, TileSettings(tile=tile, overlap=32, batch=batch))
        e.process(frame)
        t = time.perf_counter(); n = 3
        for _ in range(n): e.process(frame)
        dt = (time.perf_counter() - t) / n
        print(f"{name}: tile {tile} batch {batch}: {dt:.2f} s per 640x480 frame = {640*480/dt/1e6:.3f} MP/s", flush=True)
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss=charbonnier)
    for _ in range(3): m.train_on_batch(x, x)
    t = time.perf_counter(); n = 10
    for _ in range(n): m.train_on_batch(x, x)
    dt = (time.perf_counter() - t) / n
    print(f"{name}: training batch 8 patch 96: {1/dt:.2f} steps/s ({dt:.2f} s/step)", flush=True)
