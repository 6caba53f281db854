"""Score folders of derained images against clean ones with the literature's metrics."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vidderain.data.pairs import load_pair, pair_files
from vidderain.metrics import psnr, ssim
from vidderain.pipeline import prefetch


def evaluate_folders(pred_dir: str | os.PathLike, clean_dir: str | os.PathLike) -> dict[str, Any]:
    """Mean PSNR and SSIM (MATLAB luma) of every predicted image against its clean partner.

    Images pair by name as in training data (identical names, or the clean name plus `_suffix`);
    every predicted image needs a partner, while clean images without one are allowed.

    Returns:
        {"psnr": float, "ssim": float, "count": int, "files": [{"name", "psnr", "ssim"}, ...]}.

    Raises:
        InputError: a folder is missing, an image fails to read, sizes differ, or a
            predicted image has no clean partner.
    """
    pairs = pair_files(pred_dir, clean_dir, require_all_clean=False)
    files = []
    for (pred_path, _), (pred, clean) in zip(pairs, prefetch((load_pair(*p) for p in pairs), depth=4, name="read-pairs")):
        files.append({"name": pred_path.name, "psnr": psnr(pred, clean), "ssim": ssim(pred, clean)})
    return {
        "psnr": float(np.mean([f["psnr"] for f in files])),
        "ssim": float(np.mean([f["ssim"] for f in files])),
        "count": len(files),
        "files": files,
    }
