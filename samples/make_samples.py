"""Make the bundled sample images: public-domain and CC0 photographs with synthetic rain.

scikit-image is NOT a dependency of vidderain. It is only where these photographs
come from (they ship inside its wheel), so install it to run this script:

    pip install scikit-image
    python samples/make_samples.py

The rain comes from vidderain.synth with a fixed seed per photograph, so running
the script again writes byte-identical files (same numpy and OpenCV versions).
It writes samples/images/<name>.<png|jpg> (rainy) and samples/clean/<name>.png.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

try:
    import skimage.data
except ImportError:
    sys.exit("make_samples.py needs scikit-image, which is not a vidderain dependency: pip install scikit-image")

from vidderain.io.images import write_image
from vidderain.pixels import to_float, to_integer
from vidderain.synth import RainSettings, add_rain

SAMPLES_DIR = Path(__file__).resolve().parent
# Rain100L's images are 481x321: the size the deraining literature evaluates at,
# odd on both sides, so the samples also exercise padding to the network's stride.
LONG_SIDE = 481


@dataclass(frozen=True)
class Sample:
    """One sample photograph and the rain drawn over it."""

    name: str  # file stem, and the scikit-image `data` function that loads the photograph
    suffix: str  # format of the rainy file: ".png", or ".jpg" to exercise JPEG input
    seed: int  # seeds the rain
    rain: RainSettings  # the ranges the rain is drawn from


# Three with light to moderate rain and no haze, like Rain100L's, which a model trained
# on Rain100L can remove; one with heavier, hazy rain, saved as JPEG, for contrast.
SAMPLES: tuple[Sample, ...] = (
    Sample("astronaut", ".png", seed=11, rain=RainSettings(
        density=(0.002, 0.004), brightness=(0.4, 0.7), layers=(1, 1), haze_probability=0.0)),
    Sample("coffee", ".png", seed=12, rain=RainSettings(
        angle=(-25.0, -10.0), layers=(2, 2), haze_probability=0.0)),
    Sample("chelsea", ".png", seed=13, rain=RainSettings(
        angle=(5.0, 20.0), width=(0.8, 1.5), brightness=(0.3, 0.6), layers=(1, 2), haze_probability=0.0)),
    Sample("rocket", ".jpg", seed=14, rain=RainSettings(
        angle=(10.0, 25.0), layers=(3, 3), haze_probability=1.0, haze=(0.15, 0.25))),
)


def load_photo(name: str) -> np.ndarray:
    """Return scikit-image's sample photograph `name` as uint8 HxWx3 RGB."""
    image = getattr(skimage.data, name)()
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"Expected a uint8 RGB photograph. Received: {name} with shape={image.shape}, dtype={image.dtype}"
        )
    return image


def fit_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Shrink `image` so its longer side is `long_side`, keeping its aspect; never enlarge.

    Args:
        image: np.ndarray. HxWxC pixels.
        long_side: int. The longest side wanted, in pixels.
    """
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return image
    size = (round(width * scale), round(height * scale))
    # INTER_AREA averages the source pixels each output pixel covers: no aliasing.
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def make_images(samples_dir: Path, samples: tuple[Sample, ...] = SAMPLES) -> list[Path]:
    """Write each sample's rainy image to `samples_dir/images` and its clean one to `samples_dir/clean`.

    Args:
        samples_dir: Path. The samples folder.
        samples: the samples to make. Defaults to SAMPLES.

    Returns:
        The paths written, rainy then clean for each sample.
    """
    written = []
    for sample in samples:
        clean = fit_long_side(load_photo(sample.name), LONG_SIDE)
        rainy = add_rain(to_float(clean), np.random.default_rng(sample.seed), sample.rain)
        paths = (samples_dir / "images" / f"{sample.name}{sample.suffix}", samples_dir / "clean" / f"{sample.name}.png")
        for path, image in zip(paths, (to_integer(rainy), clean)):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_image(path, image)
            written.append(path)
    return written


def main() -> None:
    for path in make_images(SAMPLES_DIR):
        print(f"{path.relative_to(SAMPLES_DIR.parent)}  {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
