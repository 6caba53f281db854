"""Training losses as plain functions of (target, prediction), in Keras ops only.

Each returns one value per image of the batch (NHWC in, shape (N,) out). Keras then
averages over the batch, and under a `tf.distribute` strategy also divides by the
number of replicas, so the gradients summed across replicas are those of the global
batch's mean; a loss that returned the batch mean itself would skip that division.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from keras import ops

CHARBONNIER_EPS = 1e-3
IMAGE_AXES = (1, 2, 3)  # all but the batch axis


def charbonnier(y_true, y_pred):
    """Charbonnier loss, a smooth L1: mean of sqrt((y - p)^2 + eps^2), eps = 1e-3."""
    return ops.mean(ops.sqrt(ops.square(y_true - y_pred) + CHARBONNIER_EPS**2), axis=IMAGE_AXES)


def l1(y_true, y_pred):
    """Mean absolute error."""
    return ops.mean(ops.abs(y_true - y_pred), axis=IMAGE_AXES)


def mse(y_true, y_pred):
    """Mean squared error."""
    return ops.mean(ops.square(y_true - y_pred), axis=IMAGE_AXES)


def _gaussian_kernel(channels: int, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    window = np.outer(g, g).astype(np.float32)
    return np.tile(window[:, :, None, None], (1, 1, channels, 1))


def ssim_loss(y_true, y_pred):
    """1 - SSIM, per RGB channel with an 11x11 Gaussian window (sigma 1.5), data range 1."""
    kernel = ops.convert_to_tensor(_gaussian_kernel(3))

    def filt(x):
        return ops.depthwise_conv(x, kernel, strides=1, padding="valid")

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = filt(y_true), filt(y_pred)
    sxx = filt(y_true * y_true) - mu_x**2
    syy = filt(y_pred * y_pred) - mu_y**2
    sxy = filt(y_true * y_pred) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return 1.0 - ops.mean(ssim_map, axis=IMAGE_AXES)


def charbonnier_ssim(y_true, y_pred):
    """Charbonnier plus 0.1 x (1 - SSIM): pixel fidelity with a push towards structure."""
    return charbonnier(y_true, y_pred) + 0.1 * ssim_loss(y_true, y_pred)


LOSSES: dict[str, Callable] = {
    "charbonnier": charbonnier,
    "l1": l1,
    "mse": mse,
    "ssim": ssim_loss,
    "charbonnier+ssim": charbonnier_ssim,
}
