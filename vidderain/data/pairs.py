"""Pairing rainy and clean training images by folder and file name.

A data folder holds a rainy folder and a clean folder under one of the names
people use (`rain`/`norain`, `rainy`/`clean`, `input`/`target`,
`rainy_image`/`ground_truth`). A rainy file pairs with the clean file of the
same name, or with the clean file whose name it extends by `_<suffix>`
(Rain1400's `12_3.jpg` is a rainy version of `12.jpg`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidderain.errors import InputError
from vidderain.io.files import check_readable_folder
from vidderain.io.images import is_image_path, read_image
from vidderain.pixels import split_rgb

Pair = tuple[np.ndarray, np.ndarray]  # (rainy, clean), float32 HxWx3 in [0, 1]

FOLDER_NAMES: tuple[tuple[str, str], ...] = (
    ("rain", "norain"),
    ("rainy", "clean"),
    ("input", "target"),
    ("rainy_image", "ground_truth"),
)

def find_folders(data_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Return the (rainy, clean) folders inside `data_dir`.

    Raises:
        InputError: no known pair of folder names is there.
    """
    data_dir = check_readable_folder(data_dir)
    for rainy, clean in FOLDER_NAMES:
        if (data_dir / rainy).is_dir() and (data_dir / clean).is_dir():
            return data_dir / rainy, data_dir / clean
    names = ", ".join(f"{r}/{c}" for r, c in FOLDER_NAMES)
    raise InputError(f"{data_dir}: expected a rainy and a clean folder named one of {names}")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))


def pair_files(
    rainy_dir: str | os.PathLike, clean_dir: str | os.PathLike, require_all_clean: bool = True
) -> list[tuple[Path, Path]]:
    """Pair rainy images with clean ones by name (identical, or clean name plus `_suffix`).

    Args:
        rainy_dir: str or PathLike. Folder of rainy (or derained) images.
        clean_dir: str or PathLike. Folder of clean images.
        require_all_clean: bool. Also fail on clean images that no rainy image pairs with.
            Defaults to True.

    Returns:
        (rainy path, clean path) pairs sorted by rainy path.

    Raises:
        InputError: a rainy image has no clean partner or a clean image no rainy one;
            the message names them.
    """
    for folder in (rainy_dir, clean_dir):
        check_readable_folder(folder, "a folder of images")
    rainy_files, clean_files = _images(Path(rainy_dir)), _images(Path(clean_dir))
    clean_by_stem = {p.stem: p for p in clean_files}
    pairs, unpaired = [], []
    for rainy in rainy_files:
        clean = clean_by_stem.get(rainy.stem)
        if clean is None and "_" in rainy.stem:
            clean = clean_by_stem.get(rainy.stem.rsplit("_", 1)[0])
        if clean is None:
            unpaired.append(rainy)
        else:
            pairs.append((rainy, clean))
    if require_all_clean:
        used = {clean for _, clean in pairs}
        unpaired += [p for p in clean_files if p not in used]
    if unpaired:
        shown = ", ".join(str(p) for p in unpaired[:5]) + (f" and {len(unpaired) - 5} more" if len(unpaired) > 5 else "")
        raise InputError(f"{len(unpaired)} image(s) without a partner: {shown}")
    if not pairs:
        raise InputError(f"no image pairs in {rainy_dir} and {clean_dir}")
    return pairs


def load_pair(rainy_path: Path, clean_path: Path) -> Pair:
    """Decode one pair into float32 RGB frames of the same size.

    Raises:
        InputError: a file cannot be read or the two sizes differ.
    """
    rainy, _, _ = split_rgb(read_image(rainy_path))
    clean, _, _ = split_rgb(read_image(clean_path))
    if rainy.shape != clean.shape:
        raise InputError(f"{rainy_path} is {rainy.shape[1]}x{rainy.shape[0]} but {clean_path} is {clean.shape[1]}x{clean.shape[0]}")
    return rainy, clean
