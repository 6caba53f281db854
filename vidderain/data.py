"""Training data: a fixed validation split and batches of random aligned crops."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from vidderain.errors import InputError, ParameterError
from vidderain.io.images import is_image_path, read_image
from vidderain.pairs import Pair, find_folders, load_pair, pair_files
from vidderain.pipeline import prefetch
from vidderain.io.video import is_video_path
from vidderain.pixels import split_rgb, to_float
from vidderain.synth import RainSettings, add_rain, make_synthesizer

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


AUGMENTATIONS = ("flip", "flip+rot90")


def augment(images: Sequence[np.ndarray], rng: np.random.Generator, mode: str = "flip+rot90") -> list[np.ndarray]:
    """Apply one random geometric change, the same to every image in `images`.

    Args:
        images: sequence of HxWxC arrays of one size.
        rng: np.random.Generator. Draws the change.
        mode: str. "flip": a left-right mirror half of the time, which keeps the rain's
            direction of fall (Rain100L's streaks are near vertical, and a quarter turn
            lays them across the image: about 3 dB worse at equal steps, models/README.md).
            "flip+rot90": a random quarter turn too, the recipe of runs that began before
            `--augment` existed. Defaults to "flip+rot90".
    """
    if mode == "flip":
        flip = bool(rng.integers(2))
        return [image[:, ::-1] if flip else image for image in images]
    if mode != "flip+rot90":
        raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}. Received: augment={mode!r}")
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
        synthesize: callable or None. `(clean, rng) -> rainy`, the synthesizer that makes
            a rainy crop from a clean one. Defaults to None (every crop keeps its pair's rainy side).
        rain_mix: float. With `synthesize`, the fraction of crops from `pairs` whose rainy side
            is synthesized from the clean side instead of taken from the pair; 1.0 makes every
            one (pairs may then be (clean, clean)). Defaults to 1.0.
        extra_clean: sequence of float32 HxWx3 clean frames whose crops always get synthetic
            rain, drawn alongside `pairs` in proportion to their number. Needs `synthesize`.
            Defaults to ().
        augment: str. The geometric augmentation, a name in AUGMENTATIONS. Defaults to "flip+rot90",
            the behaviour of runs that began before the choice existed.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        batch: int,
        patch: int,
        steps: int,
        seed: int = 0,
        synthesize: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        rain_mix: float = 1.0,
        extra_clean: Sequence[np.ndarray] = (),
        augment: str = "flip+rot90",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not pairs and not extra_clean:
            raise ValueError("PatchBatches needs at least one pair. Received: pairs=[]")
        if extra_clean and synthesize is None:
            raise ValueError("extra_clean frames need a synthesizer. Received: synthesize=None")
        if not 0.0 <= rain_mix <= 1.0:
            raise ParameterError("rain_mix", rain_mix, "a fraction between 0 and 1")
        if augment not in AUGMENTATIONS:
            raise ParameterError("augment", augment, f"one of {', '.join(AUGMENTATIONS)}")
        self.items = list(pairs) + [(clean, clean) for clean in extra_clean]
        smallest = min(min(p[0].shape[:2]) for p in self.items)
        if patch > smallest:
            raise ParameterError("patch", patch, f"at most the smallest training image side ({smallest} px)")
        self.paired = len(pairs)  # items from this index on are clean frames that always get rain
        self.batch, self.patch, self.steps = batch, patch, steps
        self.seed, self.synthesize, self.rain_mix, self.augment = seed, synthesize, rain_mix, augment

    def __len__(self) -> int:
        return self.steps

    def _synthesized(self, item: int, rng: np.random.Generator) -> bool:
        if self.synthesize is None:
            return False
        if item >= self.paired or self.rain_mix >= 1.0:
            return True
        # Only a true mixture draws, so the crops of older runs stay what they were.
        return self.rain_mix > 0.0 and bool(rng.random() < self.rain_mix)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, index])
        rainy_batch = np.empty((self.batch, self.patch, self.patch, 3), np.float32)
        clean_batch = np.empty_like(rainy_batch)
        for b in range(self.batch):
            item = int(rng.integers(len(self.items)))
            rainy, clean = self.items[item]
            y = int(rng.integers(rainy.shape[0] - self.patch + 1))
            x = int(rng.integers(rainy.shape[1] - self.patch + 1))
            crop = (slice(y, y + self.patch), slice(x, x + self.patch))
            rainy_crop, clean_crop = augment([rainy[crop], clean[crop]], rng, self.augment)
            if self._synthesized(item, rng):
                rainy_crop = self.synthesize(np.ascontiguousarray(clean_crop), rng)
            rainy_batch[b], clean_batch[b] = rainy_crop, clean_crop
        return rainy_batch, clean_batch


@dataclass(frozen=True)
class TrainingData:
    """Decoded training and validation pairs, and how the rainy side is made.

    Attributes:
        train: (rainy, clean) pairs to crop from; (clean, clean) when `clean_only`.
        val: (rainy, clean) pairs scored whole after every validation interval.
        val_names: file names of the validation pairs, so they can be scored again.
        source: str. The data folder, as given.
        synthesize: callable or None. Makes a rainy crop from a clean one during training.
        extra: clean frames (from `extra_clean`) whose crops always get synthetic rain.
        clean_only: bool. `train` holds clean images only: every crop gets synthetic rain.
    """

    train: list[Pair]
    val: list[Pair]
    val_names: list[str]
    source: str
    synthesize: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None
    extra: list[np.ndarray] = field(default_factory=list)
    clean_only: bool = False


def _load_paired(folder: Path) -> tuple[list[Pair], list[str]]:
    rainy_dir, clean_dir = find_folders(folder)
    pairs = pair_files(rainy_dir, clean_dir)
    loaded = list(prefetch((load_pair(*p) for p in pairs), depth=8, name="read-pairs"))
    return loaded, [rainy.name for rainy, _ in pairs]


VIDEO_FRAMES_PER_CLIP = 48  # clean frames taken from each video, evenly spaced


def _video_frames(path: Path, count: int = VIDEO_FRAMES_PER_CLIP) -> list[tuple[np.ndarray, str]]:
    from vidderain.io.video import VideoReader, probe_video

    info = probe_video(path)
    every = max(1, (info.frame_count or count) // count)
    with VideoReader(path, info=info) as reader:
        return [(to_float(frame), f"{path.name}#{i}") for i, frame in enumerate(reader) if i % every == 0][:count]


def _load_clean(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if is_image_path(p)]
    videos = [p for p in files if is_video_path(p)]
    if not images and not videos:
        raise InputError(f"{folder}: no images or videos to synthesize rain on")
    frames = list(prefetch((split_rgb(read_image(p))[0] for p in images), depth=8, name="read-clean"))
    names = [p.name for p in images]
    for video in videos:
        for frame, name in _video_frames(video):
            frames.append(frame)
            names.append(name)
    return frames, names


def load_training_data(
    data_dir: str | os.PathLike,
    val_dir: str | os.PathLike | None = None,
    val_split: float = 0.1,
    seed: int = 0,
    synthesize: bool = False,
    rain_mix: float = 0.0,
    extra_clean: str | os.PathLike | None = None,
    rain: RainSettings = RainSettings(),
) -> TrainingData:
    """Decode a training folder once and split off a fixed validation part.

    Args:
        data_dir: str or PathLike. Paired folders (see `vidderain.pairs`), or with
            `synthesize` a folder of clean images and videos (48 evenly spaced frames of each).
        val_dir: str or PathLike or None. A separate folder of the same kind for validation;
            then all of `data_dir` trains. Defaults to None.
        val_split: float. Fraction of `data_dir` held out when `val_dir` is None. Defaults to 0.1.
        seed: int. Chooses the held-out part (and the synthetic rain of validation images). Defaults to 0.
        synthesize: bool. `data_dir` holds clean images only; make every rainy input with
            `vidderain.synth`. Defaults to False.
        rain_mix: float. For paired data, the share of crops whose rainy side is synthesized
            over the clean side instead of taken from the pair. Defaults to 0.
        extra_clean: str or PathLike or None. A folder of clean images and videos added to the
            training data; their crops always get synthetic rain. Defaults to None.
        rain: RainSettings. The synthesizer's ranges for `rain_mix` and `extra_clean` crops;
            clean-only data (`synthesize`) keeps the defaults. Defaults to RainSettings().
    """
    data_dir = Path(data_dir)
    if not 0.0 <= val_split < 1.0:
        raise ParameterError("val_split", val_split, "in [0, 1)")
    if not 0.0 <= rain_mix <= 1.0:
        raise ParameterError("rain_mix", rain_mix, "a fraction between 0 and 1")
    extra = _load_clean(Path(extra_clean))[0] if extra_clean is not None else []
    if synthesize:
        rain = RainSettings()
    synthesizer = make_synthesizer(rain) if synthesize or rain_mix > 0 or extra else None
    if synthesize:
        clean, names = _load_clean(data_dir)
        if val_dir is not None:
            val_clean, val_names = _load_clean(Path(val_dir))
            train_clean = clean
        else:
            count = round(len(clean) * val_split)
            train_clean, val_clean = split_validation(clean, count, seed)
            _, val_names = split_validation(names, count, seed)
        val = [(add_rain(c, np.random.default_rng([seed, i]), rain), c) for i, c in enumerate(val_clean)]
        return TrainingData([(c, c) for c in train_clean], val, val_names, str(data_dir), synthesizer, extra,
                            clean_only=True)
    pairs, names = _load_paired(data_dir)
    if val_dir is not None:
        val, val_names = _load_paired(Path(val_dir))
        return TrainingData(pairs, val, val_names, str(data_dir), synthesizer, extra)
    count = round(len(pairs) * val_split)
    train, val = split_validation(pairs, count, seed)
    _, val_names = split_validation(names, count, seed)
    return TrainingData(train, val, val_names, str(data_dir), synthesizer, extra)


def describe_data(data: TrainingData) -> str:
    """One line saying what a run trains and validates on."""
    kind = "clean images with synthesized rain" if data.clean_only else "pairs"
    extra = f" and {len(data.extra)} clean frames with synthesized rain" if data.extra else ""
    return f"{data.source}: {len(data.train)} training {kind}{extra}, {len(data.val)} validation pairs"
