"""Wall time of `vidderain folder` locally and with `--ray local` on 1 and 2 workers.

Run from the repository root with Ray installed: `python benchmarks/ray_speedup.py [COUNT]`.
It makes COUNT (default 16) rainy 640x480 images from the bundled samples with the rain
synthesizer, derains them with the bundled default model each way, checks that every
way wrote the same bytes, and prints the wall times (cluster start and model loading
included, as a user would see them).
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vidderain.io.images import read_image, write_image
from vidderain.pixels import split_rgb, to_float, to_integer
from vidderain.data.synth import RainSettings, add_rain

count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
samples = sorted(Path("samples/clean").glob("*.png")) or sorted(Path("samples/images").glob("*"))
with tempfile.TemporaryDirectory() as scratch:
    rainy = Path(scratch) / "rainy"
    rainy.mkdir()
    for i in range(count):
        rgb, _, _ = split_rgb(read_image(samples[i % len(samples)]))
        frame = cv2.resize(to_float(to_integer(rgb)), (640, 480), interpolation=cv2.INTER_AREA)
        write_image(rainy / f"{i:02d}.png", to_integer(add_rain(frame, np.random.default_rng(i), RainSettings())))
    outputs = {}
    for label, extra in (("local", []), ("ray 1 worker", ["--ray", "local", "--workers", "1"]),
                         ("ray 2 workers", ["--ray", "local", "--workers", "2"])):
        out = Path(scratch) / label.replace(" ", "-")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from vidderain.cli import main; main()", "folder", str(rainy), str(out),
                        *extra], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        outputs[label] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        print(f"{label}: {count} images 640x480 in {seconds:.1f} s ({count / seconds:.2f} images/s)", flush=True)
    same = all(files == outputs["local"] for files in outputs.values())
    print(f"identical outputs: {same}")
