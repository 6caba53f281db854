"""Make the bundled sample images: public-domain and CC0 photographs with synthetic rain.

scikit-image is NOT a dependency of vidderain. It is only where these photographs
come from (they ship inside its wheel), so install it to run this script:

    pip install scikit-image
    python samples/make_samples.py

The rain comes from vidderain.data.synth with a fixed seed per photograph, so running
the script again writes byte-identical files (same numpy and OpenCV versions).
It writes samples/images/<name>.<png|jpg> (rainy) and samples/clean/<name>.png,
and samples/rainy-launch.mp4: a slow pan across one photograph with fresh rain in
every frame and a rain-like noise track for audio, so `vidderain video` can show
that sound and frame rate are kept.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

try:
    import skimage.data
except ImportError:
    sys.exit("make_samples.py needs scikit-image, which is not a vidderain dependency: pip install scikit-image")

from vidderain.io.images import write_image
from vidderain.io.video import EncoderSettings, VideoWriter, ffmpeg_exe
from vidderain.pixels import to_float, to_integer
from vidderain.data.synth import RainSettings, add_rain

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


@dataclass(frozen=True)
class SampleVideo:
    """A camera pan across one photograph, with rain drawn afresh in every frame."""

    name: str  # file name of the video in the samples folder
    photo: str  # the scikit-image `data` function that loads the photograph
    size: tuple[int, int]  # (width, height) of the frames, a window into the photograph
    fps: Fraction  # frame rate; NTSC's 30000/1001, as phones and cameras record
    seconds: float  # length of the clip
    seed: int  # seeds the rain of frame 0; frame i uses seed + i
    # Degenerate ranges (low == high) keep the rain's look the same from frame to frame;
    # only where the streaks fall changes, as in real rain filmed at 30 frames/s.
    rain: RainSettings


VIDEO = SampleVideo(
    "rainy-launch.mp4", "rocket", size=(480, 270), fps=Fraction(30000, 1001), seconds=3.0, seed=100,
    rain=RainSettings(density=(0.003, 0.003), length=(25.0, 25.0), width=(1.0, 1.0), angle=(12.0, 12.0),
                      angle_jitter=0.0, brightness=(0.5, 0.5), blur=(0.5, 0.5), layers=(2, 2),
                      screen_probability=0.0, haze_probability=0.0),
)


def pan_frames(photo: np.ndarray, size: tuple[int, int], count: int):
    """Yield `count` windows of `size` (width, height) sliding diagonally across `photo`."""
    width, height = size
    room_x, room_y = photo.shape[1] - width, photo.shape[0] - height
    if room_x < 0 or room_y < 0:
        raise ValueError(f"The photograph must be larger than the frames. Received: {photo.shape} for {size}")
    for i in range(count):
        t = i / max(count - 1, 1)
        x, y = round(room_x * t), round(room_y * (1 - t))
        yield photo[y : y + height, x : x + width]


def make_video(samples_dir: Path, video: SampleVideo = VIDEO) -> Path:
    """Write `video` into `samples_dir`: H.264 frames with rain, plus an AAC track of rain-like noise.

    Returns:
        The path of the video.
    """
    photo = load_photo(video.photo)
    count = round(video.seconds * video.fps)
    path = samples_dir / video.name
    with tempfile.TemporaryDirectory() as scratch:
        silent = Path(scratch) / "silent.mp4"
        with VideoWriter(silent, *video.size, video.fps, settings=EncoderSettings(crf=23, preset="slow")) as writer:
            for i, clean in enumerate(pan_frames(photo, video.size, count)):
                rainy = add_rain(to_float(np.ascontiguousarray(clean)), np.random.default_rng(video.seed + i), video.rain)
                writer.write(to_integer(rainy))
        # Pink noise through a low-pass sounds like steady rain; it gives `vidderain video`
        # an audio track to carry over. The video stream is copied, not re-encoded.
        sound = f"anoisesrc=color=pink:amplitude=0.3:seed={video.seed}:duration={float(count / video.fps):.6f},lowpass=f=3000"
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-y", "-i", str(silent), "-f", "lavfi", "-i", sound,
             "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "96k",
             "-ac", "2", "-shortest", "-fflags", "+bitexact", "-map_metadata", "-1", str(path)],
            check=True,
        )
    return path


def main() -> None:
    for path in [*make_images(SAMPLES_DIR), make_video(SAMPLES_DIR)]:
        print(f"{path.relative_to(SAMPLES_DIR.parent)}  {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
