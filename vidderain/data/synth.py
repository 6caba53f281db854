"""Synthetic rain over clean images, for training from clean-only data and for samples.

The model is the one the public deraining sets were made with. Rain100L/H (Yang et
al., CVPR 2017) and Rain1400 (Fu et al., CVPR 2017) drew sparse random noise, smeared
it with a motion blur along one direction, adjusted its levels and laid it over the
photograph, additively (`O = B + S`, clipped) or in Photoshop's screen mode; Rain100H
stacks several such layers and veils the result with haze,
`O = t (B + S) + (1 - t) A`. Here each layer is:

    seeds (sparse noise) -> line kernel (length, width, angle) -> clip -> Gaussian blur
    -> brightness

Layers of one image share a wind direction to within a few degrees and play different
depths: near rain is sparse, long, wide, bright and defocused; far rain is dense,
short, thin and faint. Everything here is numpy and OpenCV, so it can run inside a
data loader, and every random choice comes from the caller's generator, so an image
is a pure function of (clean image, generator state, settings).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import cv2
import numpy as np

Range = tuple[float, float]

# The Gaussian's tails and the round-off of filter2D's DFT (~1e-15) leave tiny values
# far from any streak. Below half a uint8 step they cannot show, and zeroing them keeps
# pixels without visible rain bit-identical to the clean image.
_INVISIBLE = 0.5 / 255
# How far a layer's depth may pull its parameters apart from one another, as a
# fraction of each range: 0 would tie length, width, brightness, blur and density
# rigidly to depth; 0.3 keeps them correlated but lets every combination occur.
_DEPTH_SPREAD = 0.3


@dataclass(frozen=True)
class RainSettings:
    """Ranges the rain of one image is drawn from; (low, high) pairs are inclusive.

    The defaults span light rain like Rain100L (one sparse layer of thin streaks;
    its inputs score 26.9 dB against the clean images) to heavy rain like Rain100H
    (several layers of wide streaks under haze, around 14 dB), with Rain1400's
    variety of angles and blend modes in between. Measured on four 0.14-0.27 MP photos,
    20 draws each, the rainy images score 14.3 / 23.0 / 29.7 dB PSNR and 0.45 / 0.75 /
    0.93 SSIM (5th / 50th / 95th percentile, luma protocol of vidderain.metrics).
    """

    density: Range = (0.0001, 0.008)  # fraction of pixels that start a streak, per layer; drawn log-uniformly
    length: Range = (10.0, 50.0)  # streak length in pixels (motion blur extent)
    width: Range = (0.8, 2.5)  # streak width in pixels; below 1 a streak is a fainter 1 px line
    angle: Range = (-30.0, 30.0)  # degrees from vertical, positive leans the top to the right ("/")
    angle_jitter: float = 8.0  # degrees a layer may turn from the image's angle (kept inside `angle`)
    brightness: Range = (0.15, 0.9)  # peak intensity a single streak adds, 1 = white where it is opaque
    blur: Range = (0.0, 1.0)  # Gaussian sigma in pixels over the layer: defocus of near rain
    layers: tuple[int, int] = (1, 3)  # number of streak layers at different depths
    screen_probability: float = 0.5  # chance of screen blending (Rain1400) instead of clipped addition (Rain100L/H)
    haze_probability: float = 0.25  # chance the image is veiled: O = t * rainy + (1 - t) * A
    haze: Range = (0.1, 0.6)  # haze strength 1 - t, the share of atmospheric light in each pixel
    haze_light: Range = (0.7, 1.0)  # atmospheric light A, a grey level

    def check(self) -> None:
        """Raise ValueError, naming the field and its value, for settings that cannot work."""
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, tuple):
                if len(value) != 2 or not all(math.isfinite(v) for v in value) or value[0] > value[1]:
                    raise ValueError(
                        f"{field.name} must be a range (low, high) with low <= high. Received: {field.name}={value}"
                    )
            elif not math.isfinite(value):
                raise ValueError(f"{field.name} must be a finite number. Received: {field.name}={value}")
        if not all(isinstance(n, (int, np.integer)) for n in self.layers):
            raise ValueError(f"layers must be whole numbers. Received: layers={self.layers}")
        _check_bounds("density", self.density, 0.0, 1.0, open_low=True)
        _check_bounds("length", self.length, 1.0, math.inf)
        _check_bounds("width", self.width, 0.0, math.inf, open_low=True)
        _check_bounds("angle", self.angle, -90.0, 90.0)
        _check_bounds("angle_jitter", self.angle_jitter, 0.0, 90.0)
        _check_bounds("brightness", self.brightness, 0.0, 1.0)
        _check_bounds("blur", self.blur, 0.0, math.inf)
        _check_bounds("layers", self.layers, 1, math.inf)
        _check_bounds("screen_probability", self.screen_probability, 0.0, 1.0)
        _check_bounds("haze_probability", self.haze_probability, 0.0, 1.0)
        _check_bounds("haze", self.haze, 0.0, 1.0)
        _check_bounds("haze_light", self.haze_light, 0.0, 1.0)


def _check_bounds(name: str, value: float | tuple, low: float, high: float, open_low: bool = False) -> None:
    smallest, largest = value if isinstance(value, tuple) else (value, value)
    if smallest < low or largest > high or (open_low and smallest <= low):
        relation = "<" if open_low else "<="
        raise ValueError(f"{name} must lie in {low} {relation} {name} <= {high}. Received: {name}={value}")


@dataclass(frozen=True)
class StreakLayer:
    """The drawn parameters of one layer of rain (one value from each range of RainSettings)."""

    density: float  # fraction of pixels that start a streak
    length: float  # streak length in pixels
    width: float  # streak width in pixels
    angle: float  # degrees from vertical, positive leans the top to the right
    brightness: float  # peak intensity of one streak, in [0, 1]
    blur: float  # Gaussian sigma in pixels, 0 for none


def sample_layers(settings: RainSettings, rng: np.random.Generator) -> list[StreakLayer]:
    """Draw the streak layers of one image from `settings`.

    Each layer gets a depth in [0, 1]; its length, width, brightness and blur grow
    with depth and its density falls, each with independent spread, so near rain is
    sparse and bold and far rain dense and faint. The angles share one draw.

    Args:
        settings: RainSettings. The ranges to draw from (not checked here).
        rng: np.random.Generator. The only source of randomness.
    """
    count = int(rng.integers(settings.layers[0], settings.layers[1] + 1))
    base_angle = rng.uniform(*settings.angle)
    layers = []
    for _ in range(count):
        depth = rng.random()
        # How near each of density, length, width, brightness and blur places the layer.
        near = np.clip(depth + rng.uniform(-_DEPTH_SPREAD, _DEPTH_SPREAD, size=5), 0.0, 1.0)
        angle = base_angle + rng.uniform(-settings.angle_jitter, settings.angle_jitter)
        low_density, high_density = settings.density
        layers.append(
            StreakLayer(
                density=float(low_density * (high_density / low_density) ** (1.0 - near[0])),
                length=_lerp(settings.length, near[1]),
                width=_lerp(settings.width, near[2]),
                angle=float(np.clip(angle, *settings.angle)),
                brightness=_lerp(settings.brightness, near[3]),
                blur=_lerp(settings.blur, near[4]),
            )
        )
    return layers


def _lerp(bounds: Range, t: float) -> float:
    return float(bounds[0] + (bounds[1] - bounds[0]) * t)


def streak_kernel(length: float, width: float, angle: float) -> np.ndarray:
    """The image of one streak: an anti-aliased line through the centre of an odd square.

    Each pixel holds the share of it the line covers, computed separately across and
    along the line (exact for vertical lines, close at other angles), so widths and
    lengths below a pixel give fainter lines instead of snapping to whole pixels. The
    line is flat in the middle and fades over its ends (1 - s^4 for s from -1 to 1 along
    it), as a drop smeared by the exposure does, which reads as rain rather than a stroke.

    Args:
        length: float. Length in pixels, at least 1.
        width: float. Width in pixels, positive.
        angle: float. Degrees from vertical, positive leans the top to the right.

    Returns:
        float32 KxK array in [0, 1], K odd; 1 where a line at least 1 px wide covers a pixel.
    """
    radius = math.ceil((length + width) / 2)
    coords = np.arange(-radius, radius + 1, dtype=np.float32)
    x, y = coords[None, :], coords[:, None]
    sin, cos = math.sin(math.radians(angle)), math.cos(math.radians(angle))
    along = x * sin - y * cos  # image rows grow downwards, so the top is -y
    across = x * cos + y * sin
    taper = np.clip(1.0 - (along * np.float32(2 / length)) ** 4, 0.0, 1.0)
    return _coverage(across, width) * _coverage(along, length) * taper


def _coverage(offset: np.ndarray, extent: float) -> np.ndarray:
    """Length of overlap of each unit pixel [offset - 1/2, offset + 1/2] with [-extent/2, extent/2]."""
    half = np.float32(extent / 2)
    return np.clip(np.minimum(offset + 0.5, half) - np.maximum(offset - 0.5, -half), 0.0, 1.0)


def rain_layer(shape: tuple[int, int], streaks: StreakLayer, rng: np.random.Generator) -> np.ndarray:
    """Render one layer of parallel streaks.

    Seeds are drawn on a canvas larger than the image by the streak's reach, so
    streaks cross the border as they would in a larger photograph instead of thinning
    out near it (which matters on small training crops).

    Args:
        shape: (height, width) of the image.
        streaks: StreakLayer. The layer's parameters.
        rng: np.random.Generator. Draws the seed positions and intensities.

    Returns:
        float32 HxW rain intensity in [0, streaks.brightness], exactly 0 where no streak passes.
    """
    height, width = shape
    kernel = streak_kernel(streaks.length, streaks.width, streaks.angle)
    pad = kernel.shape[0] // 2 + math.ceil(3 * streaks.blur)
    noise = rng.random((height + 2 * pad, width + 2 * pad), dtype=np.float32)
    # One draw gives both: a pixel seeds a streak when u < density, and u / density is
    # then uniform, which sets the seed's intensity in (0.5, 1].
    hit = noise < streaks.density
    seeds = np.where(hit, 1.0 - 0.5 * noise / np.float32(streaks.density), 0.0).astype(np.float32)
    # The kernel is point-symmetric, so filter2D's correlation is the convolution.
    layer = cv2.filter2D(seeds, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    np.minimum(layer, 1.0, out=layer)
    if streaks.blur > 0:
        layer = cv2.GaussianBlur(layer, (0, 0), streaks.blur, borderType=cv2.BORDER_CONSTANT)
    layer = layer[pad : pad + height, pad : pad + width] * np.float32(streaks.brightness)
    layer[layer < _INVISIBLE] = 0.0
    return layer


def add_rain(clean: np.ndarray, rng: np.random.Generator, settings: RainSettings = RainSettings()) -> np.ndarray:
    """Return `clean` with synthetic rain drawn from `settings`.

    The same image, generator state and settings give the same bytes.

    Args:
        clean: np.ndarray. float32 HxWx3 RGB in [0, 1].
        rng: np.random.Generator. The only source of randomness; it is advanced.
        settings: RainSettings. Ranges to draw the rain from. Defaults to RainSettings().

    Returns:
        float32 HxWx3 in [0, 1], the shape of `clean`. Without haze it is nowhere darker
        than `clean`, and identical to it wherever no streak passes.

    Raises:
        ValueError: `clean` is not a float HxWx3 image, or `settings` cannot work.
    """
    if clean.ndim != 3 or clean.shape[2] != 3 or not np.issubdtype(clean.dtype, np.floating):
        raise ValueError(f"Expected a float HxWx3 image. Received: shape={clean.shape}, dtype={clean.dtype}")
    settings.check()
    clean = clean.astype(np.float32, copy=False)
    streak_layers = sample_layers(settings, rng)
    screen = rng.random() < settings.screen_probability
    hazy = rng.random() < settings.haze_probability
    haze, light = rng.uniform(*settings.haze), rng.uniform(*settings.haze_light)

    rain = _draw_streaks(clean.shape[:2], streak_layers, rng)
    return _composite(clean, rain, screen, haze if hazy else 0.0, light)


def add_rain_frames(cleans: list[np.ndarray], rng: np.random.Generator,
                    settings: RainSettings = RainSettings()) -> list[np.ndarray]:
    """Rain over consecutive video frames: one draw of the rain's look, fresh streaks in every frame.

    The layers (angle, length, width, brightness, density, depth), the blend and the haze
    are drawn once for the clip, as the weather of one scene; where the streaks fall is
    drawn anew in every frame. At 25-60 frames/s a drop crosses much of the picture
    between two frames, so the streaks of one frame do not predict the next's.

    Args:
        cleans: list of float32 HxWx3 frames in [0, 1], all of one size.
        rng: np.random.Generator. The only source of randomness; it is advanced.
        settings: RainSettings. Ranges to draw the rain from. Defaults to RainSettings().

    Returns:
        The rainy frames, float32 HxWx3 in [0, 1], in order.
    """
    settings.check()
    streak_layers = sample_layers(settings, rng)
    screen = rng.random() < settings.screen_probability
    hazy = rng.random() < settings.haze_probability
    haze, light = rng.uniform(*settings.haze), rng.uniform(*settings.haze_light)
    rainy = []
    for clean in cleans:
        clean = clean.astype(np.float32, copy=False)
        rain = _draw_streaks(clean.shape[:2], streak_layers, rng)
        rainy.append(_composite(clean, rain, screen, haze if hazy else 0.0, light))
    return rainy


def _draw_streaks(shape: tuple[int, int], streak_layers: list[StreakLayer], rng: np.random.Generator) -> np.ndarray:
    rain = np.zeros(shape, np.float32)
    for streaks in streak_layers:
        # Layers combine in screen mode, so crossing streaks brighten without exceeding 1;
        # written as r + l (1 - r) so that a pixel with no rain stays exactly 0.
        layer = rain_layer(shape, streaks, rng)
        rain += layer * (1.0 - rain)
    return rain[:, :, None]


def _composite(clean: np.ndarray, rain: np.ndarray, screen: bool, haze: float, light: float) -> np.ndarray:
    if screen:
        rainy = clean + rain * (1.0 - clean)
    else:
        rainy = clean + rain
    if haze:
        rainy = rainy * np.float32(1.0 - haze) + np.float32(haze * light)
    return np.clip(rainy, 0.0, 1.0).astype(np.float32, copy=False)


# Rain for mixing into paired training data (`vidderain train --rain-mix`): wider than the
# defaults where real footage differs from Rain100L's light, near-vertical streaks: angles
# to 45 degrees, dense and long streaks, up to four depth layers, defocused near rain, and
# a light veil of haze now and then.
MIXED_RAIN = RainSettings(
    density=(0.0002, 0.015),
    length=(8.0, 80.0),
    width=(0.6, 2.5),
    angle=(-45.0, 45.0),
    brightness=(0.1, 0.9),
    blur=(0.0, 1.5),
    layers=(1, 4),
    haze_probability=0.3,
    haze=(0.05, 0.35),
    haze_light=(0.6, 1.0),
)
RAIN_PRESETS: dict[str, RainSettings] = {
    "mixed": MIXED_RAIN,
    "mixed-clear": dataclasses.replace(MIXED_RAIN, haze_probability=0.0),
    "synth": RainSettings(),
}


Synthesizer = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # (clean, rng) -> rainy


def make_synthesizer(settings: RainSettings = RainSettings()) -> Synthesizer:
    """Return `(clean, rng) -> rainy` for `PatchBatches(synthesize=...)`, settings checked now.

    It is a `functools.partial` of `add_rain`, so it pickles into data-loader worker
    processes, and its `.keywords["settings"]` says how the rain was made.

    Args:
        settings: RainSettings. Ranges to draw the rain from. Defaults to RainSettings().

    Raises:
        ValueError: `settings` cannot work.
    """
    settings.check()
    return functools.partial(add_rain, settings=settings)
