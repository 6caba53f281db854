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
    assert meta["arch"] == "default" and meta["stride"] == 8
    assert meta["val_psnr"] > 30


@pytest.mark.parametrize("name", sorted(bundled_models()))
def test_bundled_model_is_small_and_loads_in_safe_mode(name):
    path = bundled_models()[name]
    assert path.stat().st_size <= MAX_MODEL_BYTES
    assert load_model(name).model.inputs[0].shape[-1] == 3


@pytest.mark.slow
def test_default_model_removes_rain_from_a_bundled_sample():
    loaded = load_model("default")
    rainy, _, _ = split_rgb(read_image(SAMPLES / "images" / "chelsea.png"))
    clean, _, _ = split_rgb(read_image(SAMPLES / "clean" / "chelsea.png"))
    derained = Engine(loaded.model, loaded.stride, TileSettings(overlap=loaded.overlap)).process(rainy)
    assert psnr(derained, clean) >= psnr(rainy, clean) + 3.0


def test_sample_video_is_short_small_and_has_sound():
    path = SAMPLES / "rainy-launch.mp4"
    info = probe_video(path)
    assert path.stat().st_size <= 5 * 1024 * 1024
    assert 2.0 <= info.duration <= 6.0
    assert info.audio_streams == 1
