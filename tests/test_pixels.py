"""Specification of vidderain.pixels: value range and colour layout in one place."""

import numpy as np
import pytest

from vidderain.pixels import Layout, merge_rgb, split_rgb, to_float, to_integer


def test_to_float_maps_uint8_range_onto_zero_one():
    out = to_float(np.array([0, 51, 255], np.uint8))
    assert out.dtype == np.float32
    assert out[0] == 0.0 and out[2] == 1.0
    assert out[1] == pytest.approx(0.2, abs=1e-7)


def test_to_float_maps_uint16_range_onto_zero_one():
    out = to_float(np.array([0, 13107, 65535], np.uint16))
    assert out.dtype == np.float32
    assert out[0] == 0.0 and out[2] == 1.0
    assert out[1] == pytest.approx(0.2, abs=1e-7)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_every_integer_value_survives_float_and_back(dtype):
    values = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
    np.testing.assert_array_equal(to_integer(to_float(values), dtype), values)


def test_to_integer_rounds_to_nearest_and_clips():
    out = to_integer(np.array([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 1.5], np.float32))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [0, 0, 0, 1, 255, 255])


def test_to_integer_leaves_its_input_unchanged():
    image = np.array([0.25, 2.0], np.float32)
    to_integer(image)
    np.testing.assert_array_equal(image, [0.25, 2.0])


def test_to_float_refuses_float_input():
    with pytest.raises(ValueError, match="float32"):
        to_float(np.zeros(3, np.float32))


def test_to_integer_refuses_other_integer_types():
    with pytest.raises(ValueError, match="int32"):
        to_integer(np.zeros(3, np.float32), np.int32)


def test_split_gray_gives_three_equal_channels_and_gray_layout():
    gray = np.array([[0, 128], [200, 255]], np.uint8)
    rgb, alpha, layout = split_rgb(gray)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.float32
    assert alpha is None
    assert layout == Layout(1, np.dtype(np.uint8))
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], to_float(gray))


def test_split_single_channel_image_is_treated_as_gray():
    _, _, layout = split_rgb(np.zeros((2, 3, 1), np.uint8))
    assert layout.channels == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_round_trip_is_exact_and_stays_gray(dtype):
    gray = np.arange(np.iinfo(dtype).max + 1, dtype=dtype).reshape(16, -1)
    back = merge_rgb(*split_rgb(gray))
    assert back.shape == gray.shape and back.dtype == dtype
    np.testing.assert_array_equal(back, gray)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgb_round_trip_is_exact(dtype):
    rgb = np.random.default_rng(0).integers(0, np.iinfo(dtype).max + 1, (5, 7, 3), dtype=dtype)
    back = merge_rgb(*split_rgb(rgb))
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, rgb)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_alpha_is_split_off_and_put_back_bit_for_bit(dtype):
    rgba = np.random.default_rng(1).integers(0, np.iinfo(dtype).max + 1, (4, 6, 4), dtype=dtype)
    rgb, alpha, layout = split_rgb(rgba)
    assert rgb.shape == (4, 6, 3)
    assert layout == Layout(4, np.dtype(dtype))
    np.testing.assert_array_equal(alpha, rgba[:, :, 3])
    # The network changes colours; the alpha plane must come back untouched anyway.
    back = merge_rgb(1.0 - rgb, alpha, layout)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back[:, :, 3], rgba[:, :, 3])
    np.testing.assert_array_equal(back[:, :, :3], np.iinfo(dtype).max - rgba[:, :, :3])


def test_split_alpha_is_a_copy_not_a_view_of_the_input():
    rgba = np.full((2, 2, 4), 7, np.uint8)
    _, alpha, _ = split_rgb(rgba)
    rgba[:, :, 3] = 0
    np.testing.assert_array_equal(alpha, 7)


def test_merge_to_gray_uses_bt601_luma():
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    gray = merge_rgb(rgb, None, Layout(1, np.dtype(np.uint8)))
    np.testing.assert_array_equal(gray, [[round(0.299 * 255), round(0.587 * 255), round(0.114 * 255)]])


def test_merge_rgba_without_alpha_is_refused():
    with pytest.raises(ValueError, match="alpha"):
        merge_rgb(np.zeros((2, 2, 3), np.float32), None, Layout(4, np.dtype(np.uint8)))


@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 2, 5), (2,), (2, 2, 3, 1)])
def test_split_refuses_layouts_that_are_not_gray_rgb_or_rgba(shape):
    with pytest.raises(ValueError, match="shape"):
        split_rgb(np.zeros(shape, np.uint8))
