"""Specification of vidderain.metrics: PSNR and SSIM on MATLAB luma, checked by hand."""

import math

import numpy as np
import pytest

from vidderain.metrics import luma, psnr, ssim


def test_luma_follows_matlab_rgb2ycbcr():
    rgb = np.array([[[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], np.float32)
    expected = np.array([[16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966]]) / 255
    np.testing.assert_allclose(luma(rgb), expected, rtol=0, atol=1e-12)


def test_luma_passes_a_single_channel_through():
    y = np.array([[0.1, 0.9]], np.float32)
    np.testing.assert_allclose(luma(y), y)


def test_psnr_of_a_constant_offset_is_exact():
    base = np.random.default_rng(0).uniform(0.2, 0.7, (9, 13, 3))
    delta = 0.05
    # Adding delta to R, G and B moves Y by delta * (65.481 + 128.553 + 24.966) / 255 = delta * 219 / 255.
    expected = -20 * math.log10(delta * 219 / 255)
    assert psnr(base + delta, base) == pytest.approx(expected, abs=1e-9)


def test_psnr_ignores_colour_changes_that_keep_luma():
    base = np.full((4, 4, 3), 0.5)
    shifted = base.copy()
    # Raise red and lower blue so that 65.481 dR + 24.966 dB = 0.
    shifted[:, :, 0] += 0.1
    shifted[:, :, 2] -= 0.1 * 65.481 / 24.966
    assert psnr(shifted, base) > 200


def test_psnr_of_identical_images_is_infinite():
    image = np.random.default_rng(1).random((8, 8, 3))
    assert psnr(image, image.copy()) == math.inf


def test_psnr_is_symmetric():
    rng = np.random.default_rng(2)
    a, b = rng.random((6, 7, 3)), rng.random((6, 7, 3))
    assert psnr(a, b) == psnr(b, a)


def reference_ssim(x, y):
    """SSIM of Wang et al. 2004 written out plainly: 11x11 Gaussian (sigma 1.5), valid windows."""
    coords = np.arange(11) - 5
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    height, width = x.shape
    values = []
    for i in range(height - 10):
        for j in range(width - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (window * px).sum(), (window * py).sum()
            vx, vy = (window * (px - mx) ** 2).sum(), (window * (py - my) ** 2).sum()
            cxy = (window * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_plain_reference_implementation():
    rng = np.random.default_rng(3)
    clean = rng.random((15, 18, 3))
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
    expected = reference_ssim(luma(noisy), luma(clean))
    assert 0.1 < expected < 0.99  # a case where the formula's terms all matter
    assert ssim(noisy, clean) == pytest.approx(expected, abs=1e-10)


def test_ssim_of_a_constant_offset_on_a_flat_image_is_known():
    # Flat images: no variance, so SSIM is the luminance term (2 mx my + c1) / (mx^2 + my^2 + c1).
    a, b = np.full((12, 12, 3), 0.2), np.full((12, 12, 3), 0.6)
    ya, yb = luma(a)[0, 0], luma(b)[0, 0]
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * ya * yb + c1) / (ya**2 + yb**2 + c1), abs=1e-12)


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(4).random((16, 16, 3))
    assert ssim(image, image.copy()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_metrics_refuse_images_of_different_shapes(metric):
    with pytest.raises(ValueError, match="same shape"):
        metric(np.zeros((12, 12, 3)), np.zeros((12, 13, 3)))


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((10, 30, 3)), np.zeros((10, 30, 3)))


def test_luma_refuses_images_that_are_not_rgb():
    with pytest.raises(ValueError, match="shape"):
        luma(np.zeros((4, 4, 4)))
