"""Training data: pairing rainy and clean images, and batches of random crops.

A data folder holds a rainy folder and a clean folder under one of the names
people use (`rain`/`norain`, `rainy`/`clean`, `input`/`target`,
`rainy_image`/`ground_truth`). A rainy file pairs with the clean file of the
same name, or with the clean file whose name it extends by `_<suffix>`
(Rain1400's `12_3.jpg` is a rainy version of `12.jpg`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from vidderain.errors import InputError
from vidderain.io.images import is_image_path, read_image
from vidderain.pixels import split_rgb

FOLDER_NAMES: tuple[tuple[str, str], ...] = (
    ("rain", "norain"),
    ("rainy", "clean"),
    ("input", "target"),
    ("rainy_image", "ground_truth"),
)

Pair = tuple[np.ndarray, np.ndarray]  # (rainy, clean), float32 HxWx3 in [0, 1]


def find_folders(data_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Return the (rainy, clean) folders inside `data_dir`.

    Raises:
        InputError: no known pair of folder names is there.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: not a folder")
    for rainy, clean in FOLDER_NAMES:
        if (data_dir / rainy).is_dir() and (data_dir / clean).is_dir():
            return data_dir / rainy, data_dir / clean
    names = ", ".join(f"{r}/{c}" for r, c in FOLDER_NAMES)
    raise InputError(f"{data_dir}: expected a rainy and a clean folder named one of {names}")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))


def pair_files(rainy_dir: str | os.PathLike, clean_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Pair rainy images with clean ones by name (identical, or clean name plus `_suffix`).

    Returns:
        (rainy path, clean path) pairs sorted by rainy path.

    Raises:
        InputError: a rainy image has no clean partner or a clean image no rainy one;
            the message names them.
    """
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


def split_validation(items: Sequence, count: int, seed: int = 0) -> tuple[list, list]:
    """Split `items` into (train, validation) with `count` validation items chosen by `seed`.

    The choice depends only on the order of `items` and on `seed`, so it is the same
    in every run and on every machine.
    """
    if not 0 <= count < len(items):
        raise ValueError(f"validation count must be between 0 and {len(items) - 1}. Received: count={count}")
    order = np.random.default_rng(seed).permutation(len(items))
    val_index = set(order[:count].tolist())
    train = [item for i, item in enumerate(items) if i not in val_index]
    val = [item for i, item in enumerate(items) if i in val_index]
    return train, val


def augment(images: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Apply one random flip and 90-degree rotation, the same to every image in `images`."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = []
    for image in images:
        image = np.rot90(image, k)
        out.append(image[:, ::-1] if flip else image)
    return out


class PatchBatches(keras.utils.PyDataset):
    """Batches of random aligned crops from image pairs; batch `i` depends only on (seed, i).

    Because a batch is a pure function of its index, a resumed run sees exactly the
    data an uninterrupted run would have seen.

    Args:
        pairs: sequence of (rainy, clean) float32 HxWx3 frames.
        batch: int. Crops per batch.
        patch: int. Side of a square crop.
        steps: int. Number of batches (the length of the dataset).
        seed: int. Seeds the crops. Defaults to 0.
        synthesize: callable or None. `(clean, rng) -> rainy`; when given, the rainy
            side of each crop is made from its clean side (pairs may then be (clean, clean)).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        batch: int,
        patch: int,
        steps: int,
        seed: int = 0,
        synthesize: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not pairs:
            raise ValueError("PatchBatches needs at least one pair. Received: pairs=[]")
        smallest = min(min(p[0].shape[:2]) for p in pairs)
        if patch > smallest:
            raise InputError(f"--patch {patch} is larger than the smallest training image side ({smallest} px)")
        self.pairs, self.batch, self.patch, self.steps = list(pairs), batch, patch, steps
        self.seed, self.synthesize = seed, synthesize

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, index])
        rainy_batch = np.empty((self.batch, self.patch, self.patch, 3), np.float32)
        clean_batch = np.empty_like(rainy_batch)
        for b in range(self.batch):
            rainy, clean = self.pairs[int(rng.integers(len(self.pairs)))]
            y = int(rng.integers(rainy.shape[0] - self.patch + 1))
            x = int(rng.integers(rainy.shape[1] - self.patch + 1))
            crop = (slice(y, y + self.patch), slice(x, x + self.patch))
            rainy_crop, clean_crop = augment([rainy[crop], clean[crop]], rng)
            if self.synthesize is not None:
                rainy_crop = self.synthesize(np.ascontiguousarray(clean_crop), rng)
            rainy_batch[b], clean_batch[b] = rainy_crop, clean_crop
        return rainy_batch, clean_batch
