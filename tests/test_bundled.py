"""The models shipped in models/: present, safe to load, and clearly better than the rainy input."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidderain.engine import Engine, TileSettings
from vidderain.io.images import read_image
from vidderain.io.video import probe_video
from vidderain.metrics import psnr
from vidderain.models import bundled_models, load_model, read_metadata
from vidderain.pixels import split_rgb

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
MAX_MODEL_BYTES = 20 * 1024 * 1024


def test_default_model_is_bundled_with_its_metadata():
    assert "default" in bundled_models()
    meta = read_metadata(bundled_models()["default"])
    assert meta["arch"] in ("default", "unet") and meta["stride"] == 8  # trained as `unet`, the same network
    assert meta["val_psnr"] > 37.4


@pytest.mark.parametrize("name", sorted(bundled_models()))
def test_bundled_model_is_small_and_loads_in_safe_mode(name):
    path = bundled_models()[name]
    assert path.stat().st_size <= MAX_MODEL_BYTES
    assert load_model(name).model.inputs[0].shape[-1] == 3


# Each sample's PSNR gain over its rainy input, a little under what the bundled model measured
# (models/README.md: +4.87, +14.47, +7.27, +4.01 dB).
SAMPLE_GAINS = {"astronaut.png": 4.5, "chelsea.png": 14.0, "coffee.png": 7.0, "rocket.jpg": 3.7}


@pytest.fixture(scope="module")
def default_engine():
    loaded = load_model("default")
    return Engine(loaded.model, loaded.stride, TileSettings(overlap=loaded.overlap))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAMPLE_GAINS))
def test_default_model_removes_rain_from_every_bundled_sample(default_engine, name):
    rainy, _, _ = split_rgb(read_image(SAMPLES / "images" / name))
    clean, _, _ = split_rgb(read_image(SAMPLES / "clean" / f"{Path(name).stem}.png"))
    derained = default_engine.process(rainy)
    assert psnr(derained, clean) >= psnr(rainy, clean) + SAMPLE_GAINS[name]


def test_sample_video_is_short_small_and_has_sound():
    path = SAMPLES / "rainy-launch.mp4"
    info = probe_video(path)
    assert path.stat().st_size <= 5 * 1024 * 1024
    assert 2.0 <= info.duration <= 6.0
    assert info.audio_streams == 1
