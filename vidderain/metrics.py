"""PSNR and SSIM as the deraining literature computes them: on MATLAB's luma.

MATLAB's `rgb2ycbcr` for R, G, B in [0, 1] gives
Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255. PSNR is 10 log10(1 / MSE) on Y;
SSIM uses an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 1,
averaged over the window positions that lie fully inside the image (as Wang et al.'s
reference code and MATLAB's `ssim_index` do).
"""

from __future__ import annotations

import cv2
import numpy as np

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0
_Y_OFFSET = 16.0 / 255.0


def luma(rgb: np.ndarray) -> np.ndarray:
    """MATLAB `rgb2ycbcr` luma of an RGB image in [0, 1], as float64 in [16/255, 235/255].

    Args:
        rgb: np.ndarray. HxWx3 RGB, float in [0, 1]; or HxW, already luma, returned as float64.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.ndim == 2:
        return rgb
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"Expected HxWx3 RGB or HxW luma. Received: shape={rgb.shape}")
    return rgb @ _Y_WEIGHTS + _Y_OFFSET


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"Images must have the same shape. Received: {a.shape} and {b.shape}")


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB between two RGB images in [0, 1], on MATLAB luma, data range 1.

    Returns:
        The PSNR; `inf` for identical images.
    """
    _check_pair(pred, target)
    mse = float(np.mean((luma(pred) - luma(target)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = cv2.getGaussianKernel(size, sigma, ktype=cv2.CV_64F)
    return g @ g.T


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM between two RGB images in [0, 1], on MATLAB luma, data range 1.

    Raises:
        ValueError: if the images differ in shape or are smaller than the 11x11 window.
    """
    _check_pair(pred, target)
    x, y = luma(pred), luma(target)
    if min(x.shape) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels. Received: shape={x.shape}")
    c1, c2 = 0.01**2, 0.03**2
    window = _gaussian_window()

    def filt(img: np.ndarray) -> np.ndarray:
        return cv2.filter2D(img, -1, window, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    mu_x, mu_y = filt(x), filt(y)
    sigma_xx = filt(x * x) - mu_x**2
    sigma_yy = filt(y * y) - mu_y**2
    sigma_xy = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_xx + sigma_yy + c2))
    return float(ssim_map.mean())
