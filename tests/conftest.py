"""Shared fixtures: synthetic natural-looking images and a small trained model.

No data set is read here: every image is drawn with OpenCV from a seed, and the
model is trained in the session on rain drawn onto those images.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

TINY_UNET_WIDTHS = (8, 16, 32, 64)  # the default U-Net's depth (stride 8), a fraction of its width
TINY_UNET_STEPS = 48
TINY_TEMPORAL_WIDTHS = (4, 8, 16, 32)  # the temporal network's depth (stride 8) at an eighth of its width
TINY_TEMPORAL_STEPS = 40


def natural_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A float32 HxWx3 RGB image in [0, 1] with the statistics of a photograph, roughly.

    Smooth colour gradients, soft low-frequency variation, anti-aliased shapes with
    edges at every angle, and fine band-limited texture: the mix of flat areas,
    edges and detail that a network meets in real frames.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy /= max(height - 1, 1)
    xx /= max(width - 1, 1)
    image = np.empty((height, width, 3), np.float32)
    for c in range(3):
        a, b, base = rng.uniform(-0.35, 0.35), rng.uniform(-0.35, 0.35), rng.uniform(0.3, 0.7)
        image[:, :, c] = base + a * (xx - 0.5) + b * (yy - 0.5)
    # Low-frequency blotches: a coarse random grid upsampled smoothly.
    coarse = rng.uniform(-0.15, 0.15, (max(height // 96, 2), max(width // 96, 2), 3)).astype(np.float32)
    image += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    # Shapes with hard, anti-aliased edges, drawn at 4x sub-pixel precision.
    shift = 2
    canvas = np.zeros_like(image)
    mask = np.zeros((height, width), np.float32)
    scale = max(height, width)
    for _ in range(max(6, height * width // 40000)):
        colour = tuple(float(v) for v in rng.uniform(0.05, 0.95, 3))
        cx, cy = (int(rng.uniform(0, width) * 4), int(rng.uniform(0, height) * 4))
        kind = rng.integers(3)
        layer = np.zeros((height, width), np.float32)
        if kind == 0:
            radius = int(rng.uniform(0.02, 0.15) * scale * 4) + 1
            cv2.circle(layer, (cx, cy), radius, 1.0, -1, cv2.LINE_AA, shift)
        elif kind == 1:
            half = rng.uniform(0.02, 0.12, 2) * scale * 4
            angle = rng.uniform(0, 180)
            box = cv2.boxPoints(((cx / 4, cy / 4), (half[0] / 2, half[1] / 2), angle))
            cv2.fillPoly(layer, [np.round(box * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift)
        else:
            end = (int(rng.uniform(0, width) * 4), int(rng.uniform(0, height) * 4))
            thickness = int(rng.integers(1, max(2, scale // 200) + 1))
            cv2.line(layer, (cx, cy), end, 1.0, thickness, cv2.LINE_AA, shift)
        canvas = canvas * (1 - layer[:, :, None]) + layer[:, :, None] * np.array(colour, np.float32)
        mask = np.maximum(mask, layer)
    image = image * (1 - mask[:, :, None]) + canvas
    # Fine texture: white noise blurred to a few pixels, at low amplitude.
    texture = rng.normal(0, 0.06, (height, width, 3)).astype(np.float32)
    image += cv2.GaussianBlur(texture, (0, 0), 1.2)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def add_rain(clean: np.ndarray, seed: int = 0, streaks: int | None = None) -> np.ndarray:
    """Draw bright, slanted, slightly blurred streaks onto a float32 RGB image in [0, 1]."""
    rng = np.random.default_rng(seed)
    height, width = clean.shape[:2]
    layer = np.zeros((height, width), np.float32)
    angle = np.deg2rad(rng.uniform(-20, 20))
    count = streaks if streaks is not None else max(4, height * width // 100)
    for _ in range(count):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        length = rng.uniform(4, 14)
        end = (int(x + length * np.sin(angle)), int(y + length * np.cos(angle)))
        cv2.line(layer, (int(x), int(y)), end, float(rng.uniform(0.3, 0.8)), 1, cv2.LINE_AA)
    layer = cv2.GaussianBlur(layer, (3, 3), 0.6)
    return np.clip(clean + layer[:, :, None], 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="session")
def make_natural_image() -> Callable[..., np.ndarray]:
    """`make_natural_image(height, width, seed=0)`: a float32 HxWx3 RGB image in [0, 1]."""
    return natural_image


@pytest.fixture(scope="session")
def make_rainy() -> Callable[..., np.ndarray]:
    """`make_rainy(clean, seed=0)`: `clean` with synthetic rain streaks drawn on it."""
    return add_rain


def train_tiny_unet(steps: int = TINY_UNET_STEPS):
    """A small residual U-Net trained for `steps` Adam steps on synthetic rain; returns (model, losses).

    It has the default network's depth (three 2x downsamplings, stride 8, the same
    receptive field) and residual design at an eighth of its width, trained on
    64x64 crops: cheap, but real trained weights rather than an initialisation.
    """
    import keras

    from vidderain.train.losses import mse
    from vidderain.nets import build_unet

    keras.utils.set_random_seed(0)
    model = build_unet(widths=TINY_UNET_WIDTHS, name="default")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=mse)
    rng = np.random.default_rng(0)
    scenes = [natural_image(192, 192, seed=100 + i) for i in range(4)]
    batch, patch = 8, 64
    losses = []
    for step in range(steps):
        clean = np.empty((batch, patch, patch, 3), np.float32)
        for i in range(batch):
            scene = scenes[rng.integers(len(scenes))]
            y, x = rng.integers(0, scene.shape[0] - patch + 1, 2)
            clean[i] = scene[y : y + patch, x : x + patch]
        rainy = np.stack([add_rain(c, seed=step * batch + i) for i, c in enumerate(clean)])
        losses.append(float(np.asarray(model.train_on_batch(rainy, clean))))
    return model, losses


@pytest.fixture(scope="session")
def trained_model_path(tmp_path_factory) -> Path:
    """`train_tiny_unet()` saved with `vidderain.models.save_model`, as the default network."""
    from vidderain.models import save_model

    model, losses = train_tiny_unet()
    # Guard against the collapse to the identity that brief training can end in.
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), f"the fixture model did not learn: {losses}"
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    save_model(
        model,
        path,
        {
            "arch": "default",
            "widths": list(TINY_UNET_WIDTHS),
            "stride": 8,
            "overlap": 32,
            "data": "synthetic rain on drawn images (tests/conftest.py)",
            "step": len(losses),
            "losses": losses,
        },
    )
    return path


@pytest.fixture(scope="session")
def trained_model(trained_model_path):
    """The trained fixture model, loaded once through `vidderain.models.load_model`."""
    from vidderain.models import load_model

    return load_model(trained_model_path)


def train_tiny_temporal(steps: int = TINY_TEMPORAL_STEPS):
    """A small temporal U-Net (5 frames aligned by the camera's motion) trained for `steps` Adam steps on synthetic rainy clips.

    Returns (model, identity_mse, trained_mse): the mean squared error against the clean
    centre frames of a held-out batch of windows, of the rainy centre frame itself and of
    the model's result.
    """
    import keras

    from vidderain.data.patches import CLIP_MOTIONS, ClipBatches
    from vidderain.data.synth import RainSettings
    from vidderain.nets.temporal import build_temporal_unet
    from vidderain.temporal import WindowSpec
    from vidderain.train.losses import mse

    keras.utils.set_random_seed(0)
    model = build_temporal_unet(5, widths=TINY_TEMPORAL_WIDTHS, name="temporal")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=mse)
    scenes = [natural_image(160, 160, seed=200 + i) for i in range(4)]
    spec = WindowSpec(5, align="camera")
    # Gentle motion (no near layer, slow objects): a few steps learn what the tests need, less rain.
    gentle = CLIP_MOTIONS["gentle"]
    batches = ClipBatches(scenes, batch=8, patch=48, steps=steps, spec=spec, rain=RainSettings(), seed=0, motion=gentle)
    for step in range(steps):
        model.train_on_batch(*batches[step])
    windows, clean = ClipBatches(scenes, batch=16, patch=48, steps=1, spec=spec, rain=RainSettings(), seed=99,
                                 motion=gentle)[0]
    identity = float(np.mean((windows[..., 6:9] - clean) ** 2))
    trained = float(np.mean((np.asarray(model.predict_on_batch(windows)) - clean) ** 2))
    return model, identity, trained


@pytest.fixture(scope="session")
def temporal_model_path(tmp_path_factory) -> Path:
    """`train_tiny_temporal()` saved as a `temporal` model file: windows of 5 frames aligned by the camera's motion."""
    from vidderain.models import save_model

    model, identity, trained = train_tiny_temporal()
    assert trained < identity, f"the temporal fixture removes no rain: {trained} against {identity}"
    path = tmp_path_factory.mktemp("models") / "tiny-temporal.keras"
    save_model(
        model,
        path,
        {
            "arch": "temporal",
            "widths": list(TINY_TEMPORAL_WIDTHS),
            "stride": 8,
            "overlap": 32,
            "frames": 5,
            "align": "camera",
            "data": "synthetic rainy clips of drawn images (tests/conftest.py)",
            "step": TINY_TEMPORAL_STEPS,
        },
    )
    return path


@pytest.fixture(scope="session")
def temporal_model(temporal_model_path):
    """The temporal fixture model, loaded once through `vidderain.models.load_model`."""
    from vidderain.models import load_model

    return load_model(temporal_model_path)
