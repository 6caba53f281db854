"""Thumbnails for training the veil estimate (`vidderain.nets.veil`): veiled where rain is heavy.

The estimate reads a whole frame shrunk to a thumbnail, as it came in and as the
network derained it, so it learns from whole images: each image goes through the
network once, and windows of 60-100 % of each side of both are shrunk. Two kinds:

- the pairs' own images, rainy and clean, never veiled: a light rain like
  Rain100L's, and a pale or misty scene, are not a veil to lift;
- the clean images under fresh synthetic rain (`vidderain.data.synth`, no haze),
  veiled before deraining with a chance that grows with how heavy the rain is
  (none above `VeilSettings.heavy[0]` dB, `share` at `heavy[1]` dB and below), since
  that is when rain veils a scene.

A scene's own haze and a veil look alike in one picture; what the network takes
away, the rain, is what tells them apart here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from vidderain.data.pairs import Pair
from vidderain.data.synth import RAIN_PRESETS, RainSettings, add_rain
from vidderain.errors import ParameterError
from vidderain.metrics import psnr
from vidderain.veil import thumbnails

Range = tuple[float, float]
Derain = Callable[[np.ndarray], np.ndarray]  # float32 HxWx3 frame -> the network's derained frame
# The synthetic rain the veils go over: light to heavy, narrow to wide angles, no haze of its own.
VEIL_RAIN: tuple[RainSettings, ...] = (
    RainSettings(haze_probability=0.0),
    RAIN_PRESETS["mixed-clear"],
    RainSettings(layers=(2, 4), haze_probability=0.0),
)


@dataclass(frozen=True)
class VeilSettings:
    """How the veil estimate's training thumbnails are made.

    Attributes:
        size: int. Thumbnail side in pixels. Defaults to 128 (`vidderain.nets.veil.THUMBNAIL`).
        draws: int. Synthetic rain drawn over each clean training image. Defaults to 4.
        windows: int. Windows shrunk from each image: the whole, then random ones of 60-100 %
            of each side. Defaults to 2.
        share: float. The chance that an image in the heaviest rain is veiled. Defaults to 0.8.
        heavy: (float, float). PSNR of the rainy image against its clean one, in dB: above
            the first no veil, at or below the second `share`, linear between. Defaults to (26, 20).
        own: float. The share of each batch taken from the pairs' own images. Defaults to 0.4.
        haze: (float, float). The veil's strength h is drawn from this range. Defaults to (0.05, 0.6).
        light: (float, float). Its atmospheric light A, a grey level. Defaults to (0.6, 1.0).
    """

    size: int = 128
    draws: int = 4
    windows: int = 2
    share: float = 0.8
    heavy: Range = (26.0, 20.0)
    own: float = 0.4
    haze: Range = (0.05, 0.6)
    light: Range = (0.6, 1.0)

    def check(self) -> None:
        """Raise ParameterError, naming the setting and its value, for settings that cannot work."""
        for name in ("size", "draws", "windows"):
            if getattr(self, name) < 1:
                raise ParameterError(name, getattr(self, name), "at least 1")
        for name in ("share", "own"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ParameterError(name, getattr(self, name), "a fraction between 0 and 1")
        if not self.heavy[0] > self.heavy[1]:
            raise ParameterError("heavy", self.heavy, "(no veil above, full share at or below) dB, first larger")
        if not 0.0 <= self.haze[0] <= self.haze[1] < 1.0:
            raise ParameterError("haze", self.haze, "a range within [0, 1)")
        if not 0.0 < self.light[0] <= self.light[1] <= 1.0:
            raise ParameterError("light", self.light, "a range within (0, 1]")


@dataclass(frozen=True)
class Thumbnails:
    """What the veil estimate learns from: thumbnails before and after deraining, and their veils.

    Attributes:
        own: float32 N x S x S x 6, the pairs' rainy and clean images (never veiled).
        synthetic: float32 M x S x S x 6, the clean images under synthetic rain, some veiled.
        veils: float32 M x 2, each synthetic thumbnail's veil as (offset, haze): (h * A, h), or (0, 0).
    """

    own: np.ndarray
    synthetic: np.ndarray
    veils: np.ndarray


def veil(image: np.ndarray, haze: float, light: float) -> np.ndarray:
    """Return `image` under a veil of strength `haze` and light `light`: (1 - haze) * image + haze * light."""
    return image * np.float32(1.0 - haze) + np.float32(haze * light)


def make_thumbnails(pairs: list[Pair], derain: Derain, rng: np.random.Generator,
                    settings: VeilSettings = VeilSettings(), on_image: Callable[[], None] | None = None) -> Thumbnails:
    """Derain `pairs` (rainy, clean float32 HxWx3) and fresh rain over their clean sides; shrink windows of each.

    Args:
        pairs: the training pairs.
        derain: callable. The network the estimate goes with, frame -> derained frame.
        rng: np.random.Generator. Draws the rain, the veils and the windows.
        settings: VeilSettings. Defaults to VeilSettings().
        on_image: callable or None. Called after each image is derained. Defaults to None.
    """
    settings.check()
    if not pairs:
        raise ValueError("Expected at least one training pair. Received: none")
    own, synthetic, veils = [], [], []
    low, high = settings.heavy
    step = on_image or (lambda: None)
    for rainy, clean in pairs:
        for image in (rainy, clean):
            own += _windows(image, derain(image), settings, rng)
            step()
        for draw in range(settings.draws):
            base = np.ascontiguousarray(clean[:, ::-1]) if draw % 2 else clean
            rained = add_rain(base, rng, VEIL_RAIN[draw % len(VEIL_RAIN)])
            heaviness = float(np.clip((low - psnr(rained, base)) / (low - high), 0.0, 1.0))
            drawn = (0.0, 0.0)
            if rng.random() < settings.share * heaviness:
                haze, light = rng.uniform(*settings.haze), rng.uniform(*settings.light)
                rained, drawn = veil(rained, haze, light), (haze * light, haze)
            shrunk = _windows(rained, derain(rained), settings, rng)
            step()
            synthetic += shrunk
            veils += [drawn] * len(shrunk)
    return Thumbnails(np.stack(own), np.stack(synthetic), np.asarray(veils, dtype=np.float32))


def _windows(rainy: np.ndarray, derained: np.ndarray, settings: VeilSettings,
             rng: np.random.Generator) -> list[np.ndarray]:
    height, width = rainy.shape[:2]
    out = []
    for k in range(settings.windows):
        scale = 1.0 if k == 0 else rng.uniform(0.6, 1.0)
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        y, x = rng.integers(height - h + 1), rng.integers(width - w + 1)
        crop = (slice(y, y + h), slice(x, x + w))
        out.append(thumbnails(np.ascontiguousarray(rainy[crop]), np.ascontiguousarray(derained[crop]), settings.size))
    return out


class VeilBatches(keras.utils.PyDataset):
    """Batches of (thumbnails, their veil as (offset, haze)) for the veil estimate, drawn afresh each step.

    Args:
        thumbnails: Thumbnails. What `make_thumbnails` returned.
        batch: int. Thumbnails per batch.
        steps: int. Batches per epoch.
        seed: int. Seeds the draws; batch i of a seed is always the same.
        own: float. The share of each batch taken from the pairs' own images. Defaults to 0.4.
    """

    def __init__(self, thumbnails: Thumbnails, batch: int, steps: int, seed: int, own: float = 0.4):
        super().__init__()
        self.thumbnails, self.batch, self.steps, self.seed, self.own = thumbnails, batch, steps, seed, own

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, index])
        pool = self.thumbnails
        inputs = np.empty((self.batch, *pool.own.shape[1:]), np.float32)
        veils = np.zeros((self.batch, 2), np.float32)
        for n in range(self.batch):
            if rng.random() < self.own:
                image = pool.own[rng.integers(len(pool.own))]
            else:
                i = rng.integers(len(pool.synthetic))
                image, veils[n] = pool.synthetic[i], pool.veils[i]
            inputs[n] = image[:, ::-1] if rng.random() < 0.5 else image
        return inputs, veils
