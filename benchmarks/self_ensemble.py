"""How much a test-time self-ensemble gains, and which one to ship as `--ensemble`.

Run from the repository root: `python benchmarks/self_ensemble.py RAIN_DIR CLEAN_DIR [MODEL]`
(pairs matched by name; MODEL defaults to the bundled `default`). Each rainy image is
derained in all 8 orientations (4 rotations, each also mirrored left to right), each
result turned back, and three averages scored with the literature's protocol (MATLAB
luma PSNR/SSIM of the 8-bit result, as `vidderain eval` scores files):

- 1: the image as it is (what `vidderain folder` writes);
- 2: the image and its mirror image (what `vidderain folder --ensemble` writes);
- 8: all 8 orientations.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from vidderain.engine import Engine, TileSettings
from vidderain.io.images import read_image
from vidderain.metrics import psnr, ssim
from vidderain.models import load_model
from vidderain.pixels import to_float, to_integer


def orientations(image: np.ndarray) -> list[np.ndarray]:
    """The 8 orientations: rotation k (0..3) without, then with, a left-right mirror."""
    return [np.ascontiguousarray(np.rot90(image, k)[:, ::-1] if mirror else np.rot90(image, k))
            for k in range(4) for mirror in (False, True)]


def turned_back(results: list[np.ndarray]) -> list[np.ndarray]:
    return [np.rot90(out[:, ::-1] if i % 2 else out, -(i // 2)) for i, out in enumerate(results)]


def main(rain_dir: Path, clean_dir: Path, model_name: str) -> None:
    loaded = load_model(model_name)
    engine = Engine(loaded.model, loaded.stride, TileSettings(overlap=loaded.overlap))
    scores: dict[int, list[tuple[float, float]]] = {1: [], 2: [], 8: []}
    for rainy_path in sorted(rain_dir.iterdir()):
        clean = to_float(read_image(clean_dir / rainy_path.name))
        results = turned_back([engine.process(o) for o in orientations(to_float(read_image(rainy_path)))])
        for count, values in scores.items():
            average = to_float(to_integer(np.mean(results[:count], axis=0)))
            values.append((psnr(average, clean), ssim(average, clean)))
    print(f"{model_name}, {len(scores[1])} pairs")
    for count, values in scores.items():
        mean_psnr, mean_ssim = np.mean(values, axis=0)
        print(f"{count} orientation{'s' if count > 1 else ''}: PSNR {mean_psnr:.3f} dB, SSIM {mean_ssim:.4f}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else "default")
