"""Synthetic rain: deterministic, range-preserving, bright, oriented, and checked."""

from __future__ import annotations

import math
import pickle
import re

import numpy as np
import pytest

from vidderain.data.synth import RainSettings, add_rain, make_synthesizer, streak_kernel

NO_HAZE = RainSettings(haze_probability=0.0)


def _image(height: int = 64, width: int = 80, seed: int = 0) -> np.ndarray:
    """A mid-range random image, so that neither blend saturates."""
    return np.random.default_rng(seed).uniform(0.1, 0.6, (height, width, 3)).astype(np.float32)


def _rain_on_black(settings: RainSettings, seed: int, size: int = 96) -> np.ndarray:
    """The rain alone: on a black image both blends and the clipping leave it unchanged."""
    black = np.zeros((size, size, 3), np.float32)
    return add_rain(black, np.random.default_rng(seed), settings)[:, :, 0]


def test_same_seed_gives_identical_bytes():
    clean = _image()
    first = add_rain(clean, np.random.default_rng(7))
    second = add_rain(clean, np.random.default_rng(7))
    assert first.tobytes() == second.tobytes()


def test_different_seeds_give_different_rain():
    clean = _image()
    assert not np.array_equal(add_rain(clean, np.random.default_rng(1)), add_rain(clean, np.random.default_rng(2)))


def test_shape_dtype_and_range_are_kept_for_an_odd_size():
    clean = _image(37, 53)
    for seed in range(5):
        rainy = add_rain(clean, np.random.default_rng(seed))
        assert rainy.shape == (37, 53, 3)
        assert rainy.dtype == np.float32
        assert 0.0 <= rainy.min() and rainy.max() <= 1.0


def test_input_is_not_modified():
    clean = _image()
    before = clean.copy()
    add_rain(clean, np.random.default_rng(0))
    assert np.array_equal(clean, before)


def test_rain_brightens_the_image_on_average():
    clean = _image()
    for seed in range(5):
        assert add_rain(clean, np.random.default_rng(seed)).mean() > clean.mean()


def test_without_haze_no_pixel_gets_darker():
    clean = _image()
    for seed in range(5):
        assert np.all(add_rain(clean, np.random.default_rng(seed), NO_HAZE) >= clean)


def test_light_rain_leaves_pixels_between_streaks_bit_identical():
    light = RainSettings(density=(0.001, 0.001), length=(15, 15), blur=(1, 1), layers=(1, 1), haze_probability=0.0)
    clean = _image(96, 96)
    rainy = add_rain(clean, np.random.default_rng(3), light)
    untouched = np.all(rainy == clean, axis=2)
    assert 0.85 < untouched.mean() < 1.0


def test_rain_too_faint_to_show_in_8_bits_is_left_out():
    blurred = RainSettings(blur=(1.0, 1.0), haze_probability=0.0)
    rain = _rain_on_black(blurred, seed=4)
    assert rain[rain > 0].min() >= 0.5 / 255


def test_crossing_streaks_of_one_layer_are_no_brighter_than_one():
    dense = RainSettings(density=(0.05, 0.05), brightness=(0.5, 0.5), layers=(1, 1), haze_probability=0.0)
    rain = _rain_on_black(dense, seed=0)
    assert rain.max() <= 0.5 + 1e-6


def test_haze_lifts_every_pixel_towards_the_atmospheric_light():
    hazy = RainSettings(density=(1e-4, 1e-4), haze_probability=1.0, haze=(0.3, 0.3), haze_light=(0.9, 0.9))
    rainy = add_rain(np.zeros((32, 32, 3), np.float32), np.random.default_rng(0), hazy)
    assert rainy.min() == pytest.approx(0.3 * 0.9, abs=1e-6)


def test_vertical_streaks_vary_far_less_down_than_across():
    vertical = RainSettings(angle=(0, 0), length=(30, 30), blur=(0, 0), haze_probability=0.0)
    rain = _rain_on_black(vertical, seed=0)
    down, across = np.diff(rain, axis=0), np.diff(rain, axis=1)
    assert np.sum(down**2) < 0.2 * np.sum(across**2)


@pytest.mark.parametrize("angle", [-30.0, 20.0, 45.0])
def test_streaks_run_along_their_angle(angle):
    tilted = RainSettings(angle=(angle, angle), length=(30, 30), blur=(0, 0), haze_probability=0.0)
    rain = _rain_on_black(tilted, seed=1)
    d_row, d_col = np.gradient(rain)

    def energy_along(degrees: float) -> float:
        # Unit vector of a streak leaning `degrees` from vertical, top to the right: (x, y) = (sin, -cos).
        sin, cos = math.sin(math.radians(degrees)), math.cos(math.radians(degrees))
        return float(np.sum((d_col * sin - d_row * cos) ** 2))

    assert energy_along(angle) < 0.3 * energy_along(angle + 90)
    assert energy_along(angle) < 0.5 * energy_along(-angle if angle else 45.0)


def test_streaks_reach_the_border_as_densely_as_the_centre():
    settings = RainSettings(angle=(0, 0), length=(40, 40), layers=(1, 1), haze_probability=0.0)
    rain = np.mean([_rain_on_black(settings, seed) for seed in range(8)], axis=0)
    assert rain[:8].mean() > 0.7 * rain[40:56].mean()


def test_streak_kernel_is_point_symmetric():
    # rain_layer relies on this: filter2D correlates, and only for such kernels is that a convolution.
    kernel = streak_kernel(23.5, 1.7, 17.0)
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-6)


def test_a_streak_thinner_than_a_pixel_is_fainter():
    assert streak_kernel(20, 0.5, 0).max() == pytest.approx(0.5)
    assert streak_kernel(20, 1.0, 0).max() == pytest.approx(1.0)


def test_synthesizer_matches_add_rain_and_pickles():
    settings = RainSettings(layers=(2, 2))
    synthesize = pickle.loads(pickle.dumps(make_synthesizer(settings)))
    clean = _image()
    expected = add_rain(clean, np.random.default_rng(5), settings)
    assert np.array_equal(synthesize(clean, np.random.default_rng(5)), expected)


def test_default_settings_are_valid():
    RainSettings().check()


@pytest.mark.parametrize(
    "field, value",
    [
        ("density", (0.0, 0.01)),
        ("density", (0.02, 0.01)),
        ("length", (0.5, 10.0)),
        ("width", (0.0, 2.0)),
        ("angle", (-100.0, 0.0)),
        ("angle_jitter", -1.0),
        ("brightness", (0.5, 1.5)),
        ("blur", (-1.0, 1.0)),
        ("layers", (0, 2)),
        ("layers", (1.5, 2)),
        ("screen_probability", 2.0),
        ("haze_probability", -0.1),
        ("haze", (float("nan"), 0.2)),
        ("haze_light", (0.5, 1.2)),
    ],
)
def test_invalid_settings_are_refused_naming_the_value(field, value):
    with pytest.raises(ValueError, match=re.escape(f"Received: {field}={value}")):
        RainSettings(**{field: value}).check()


def test_make_synthesizer_checks_settings_at_once():
    with pytest.raises(ValueError, match="length"):
        make_synthesizer(RainSettings(length=(0.0, 5.0)))


@pytest.mark.parametrize(
    "image", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), np.zeros((8, 8, 4), np.float32)]
)
def test_add_rain_refuses_anything_but_a_float_rgb_image(image):
    with pytest.raises(ValueError, match=r"Received: shape="):
        add_rain(image, np.random.default_rng(0))
