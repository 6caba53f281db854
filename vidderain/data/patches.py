"""Training data: a fixed validation split and batches of random aligned crops."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import keras
import numpy as np

from vidderain.data.pairs import Pair, find_folders, load_pair, pair_files
from vidderain.data.synth import RainSettings, add_rain, add_rain_frames, make_synthesizer
from vidderain.errors import InputError, ParameterError
from vidderain.io.files import check_readable_folder
from vidderain.io.images import is_image_path, read_image
from vidderain.io.video import VideoReader, is_video_path, probe_video
from vidderain.pipeline import prefetch
from vidderain.pixels import split_rgb, to_float
from vidderain.temporal import WindowSpec, WindowStacker


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


AUGMENTATIONS = ("flip", "flip+rot90", "flip+highlights", "flip+highlights+dark", "flip+highlights+dark+twins")
HIGHLIGHT_SHARE = 0.35  # the share of crops that get highlights with "flip+highlights"
DARK_SHARE = 0.3  # the share of crops whose scene is dimmed under its rain with "flip+highlights+dark" (and +twins)
DARK_GAIN = (0.03, 0.35)  # the range the dimmed scene's gain is drawn from
TWIN_SHARE = 0.12  # the share of batch slots that start a pair of twins with "flip+highlights+dark+twins"
TWIN_HIGHLIGHTS = 0.5  # the share of twins whose coloured scene gets highlights drawn over it


def augment(images: Sequence[np.ndarray], rng: np.random.Generator, mode: str = "flip") -> list[np.ndarray]:
    """Apply one random geometric change, the same to every image in `images`.

    Args:
        images: sequence of HxWxC arrays of one size.
        rng: np.random.Generator. Draws the change.
        mode: str. "flip": a left-right mirror half of the time, which keeps the rain's
            direction of fall (Rain100L's streaks are near vertical, and a quarter turn
            lays them across the image: about 3 dB worse at equal steps, models/README.md).
            "flip+rot90": a random quarter turn too, the recipe of runs that began before
            `--augment` existed. "flip+highlights": mirrors, and in HIGHLIGHT_SHARE of the
            crops one to three thin bright curves (`highlights`) drawn into every image alike,
            so that the network sees bright lines that are not rain kept. "flip+highlights+dark":
            the same here; `PatchBatches` then dims some crops' scenes under their rain (`darken`).
            "flip+highlights+dark+twins": the same here; `PatchBatches` also makes twins of some
            crops (`twins`). Defaults to "flip".
    """
    if mode in ("flip", "flip+highlights", "flip+highlights+dark", "flip+highlights+dark+twins"):
        flip = bool(rng.integers(2))
        images = [image[:, ::-1] if flip else image for image in images]
        if mode != "flip" and rng.random() < HIGHLIGHT_SHARE:
            layer = highlights(images[0].shape[:2], rng)[..., None]
            images = [image + layer - image * layer for image in images]  # screen blend, as light adds
        return images
    if mode != "flip+rot90":
        raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}. Received: augment={mode!r}")
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = []
    for image in images:
        image = np.rot90(image, k)
        out.append(image[:, ::-1] if flip else image)
    return out


def highlights(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One to three thin bright curves over an HxW crop, float32 in [0, 1]: rims, wires, reflections.

    Each is an arc of an ellipse (semi-axes 8-120 and 4-60 px, 30-200 degrees of it, any
    tilt, 1-2 px wide, peak 0.5-1.0), anti-aliased and softened a little (Gaussian sigma
    0.3-0.8 px). A rain streak is straight and its neighbours fall the same way; a curve
    is content, which `default` darkened on `coffee`'s saucer rim before a leg with these
    (models/README.md, "The highlights leg").
    """
    height, width = shape
    layer = np.zeros((height, width), np.float32)
    sub = 16  # cv2's fixed-point drawing: 4 fractional bits
    for _ in range(int(rng.integers(1, 4))):
        centre = (int(rng.uniform(0, width) * sub), int(rng.uniform(0, height) * sub))
        axes = (int(rng.uniform(8, 120) * sub), int(rng.uniform(4, 60) * sub))
        tilt, start, span = float(rng.uniform(0, 180)), float(rng.uniform(0, 360)), float(rng.uniform(30, 200))
        cv2.ellipse(layer, centre, axes, tilt, start, start + span, float(rng.uniform(0.5, 1.0)),
                    int(rng.integers(1, 3)), cv2.LINE_AA, 4)
    return np.clip(cv2.GaussianBlur(layer, (0, 0), float(rng.uniform(0.3, 0.8))), 0.0, 1.0)


def darken(rainy: np.ndarray, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The scene dimmed to a gain drawn from DARK_GAIN, its rain left as bright: (rainy, clean).

    The rain is what the pair's rainy side adds to its clean side, laid back over the
    dimmed scene, so a pair of light rain over a daylight photograph becomes the same rain
    over a dark one: a black helmet, a night sky, a shadow, where streaks stand out most
    and `default` left faint ones (models/README.md, "The dark leg").
    """
    gain = np.float32(rng.uniform(*DARK_GAIN))
    dim = clean * gain
    return np.clip(dim + (rainy - clean), 0.0, 1.0), dim


def twins(rainy: np.ndarray, clean: np.ndarray,
          rng: np.random.Generator) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The pair's rain over one saturated colour of its scene, added and screen-blended: two (rainy, clean) pairs.

    The scene keeps one channel at 0.6-1.0 of itself and the others scaled down (a red
    saucer, a blue car); in half the twins bright curves (`highlights`) are drawn over the
    colour, kept. The rain (what the pair's rainy side adds) is added to the first,
    clipped, as in Rain100L, and screen-blended into the second (it brightens each channel
    in proportion to the light left in it), over the same clean side: only the streaks'
    colour tells the two apart, so that the network does not take a grey streak off a
    screen-blended one and leave a dark trace (`coffee`'s saucer; models/README.md, "Twins").
    """
    rain = np.clip(rainy - clean, 0.0, 1.0)
    top = rng.uniform(0.6, 1.0)
    second = rng.uniform(0.05, 0.7) * top
    third = rng.uniform(0.05, 1.0) * second
    gain = rng.permutation(np.array([top, second, third])).astype(np.float32)
    tinted = clean * gain
    if rng.random() < TWIN_HIGHLIGHTS:
        layer = highlights(tinted.shape[:2], rng)[..., None]
        tinted = tinted + layer - tinted * layer
    added = np.clip(tinted + rain, 0.0, 1.0)
    screened = np.clip(tinted + rain * (1.0 - tinted), 0.0, 1.0)
    return (added, tinted), (screened, tinted)


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
        augment: str. The geometric augmentation, a name in AUGMENTATIONS. Defaults to "flip".
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
        augment: str = "flip",
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
        twin = None  # the second of a pair of twins, for the next slot
        for b in range(self.batch):
            if twin is not None:
                rainy_batch[b], clean_batch[b] = twin
                twin = None
                continue
            item = int(rng.integers(len(self.items)))
            rainy, clean = self.items[item]
            y = int(rng.integers(rainy.shape[0] - self.patch + 1))
            x = int(rng.integers(rainy.shape[1] - self.patch + 1))
            crop = (slice(y, y + self.patch), slice(x, x + self.patch))
            rainy_crop, clean_crop = augment([rainy[crop], clean[crop]], rng, self.augment)
            if self.augment == "flip+highlights+dark" and rng.random() < DARK_SHARE:
                rainy_crop, clean_crop = darken(rainy_crop, clean_crop, rng)
            elif self.augment == "flip+highlights+dark+twins":
                draw = rng.random()
                if draw < DARK_SHARE:
                    rainy_crop, clean_crop = darken(rainy_crop, clean_crop, rng)
                elif draw < DARK_SHARE + TWIN_SHARE and b + 1 < self.batch:
                    (rainy_batch[b], clean_batch[b]), twin = twins(rainy_crop, clean_crop, rng)
                    continue  # the pair's own rain, never the synthesizer's
            if self._synthesized(item, rng):
                rainy_crop = self.synthesize(np.ascontiguousarray(clean_crop), rng)
            rainy_batch[b], clean_batch[b] = rainy_crop, clean_crop
        return rainy_batch, clean_batch


@dataclass(frozen=True)
class CameraMotion:
    """Ranges of the camera motion drawn for each synthetic clip; per frame, relative to the scene.

    Attributes:
        still_probability: float. Chance of a camera that does not move (a tripod, CCTV).
        speed: float. Largest pan in pixels per frame, in a random direction.
        zoom: float. Largest change of scale per frame (0.01: 1 %).
        rotation: float. Largest turn in degrees per frame.
        shake: float. Hand-held jitter: standard deviation in pixels added to each frame's position.
        object_probability: float. Chance of an object moving across the scene on its own,
            which no camera motion explains (what alignment cannot undo).
        object_speed: float. Largest speed of that object in pixels per frame.
        parallax_probability: float. Chance, when the camera moves, of a near layer in front of
            the scene (a pole, a sign, a wall's edge, a parked car) that moves faster than the
            scene behind it, as near things do for a moving camera: one motion for the whole
            frame then aligns the scene or the near layer, never both.
        parallax: float. Largest speed of the near layer as a multiple of the camera's
            (drawn from 1.5 to it).
    """

    still_probability: float = 0.25
    speed: float = 6.0
    zoom: float = 0.01
    rotation: float = 0.5
    shake: float = 0.7
    object_probability: float = 0.35
    object_speed: float = 16.0
    parallax_probability: float = 0.25
    parallax: float = 5.0


# How the cameras and objects of training clips move (`vidderain train --motion`).
CLIP_MOTIONS: dict[str, CameraMotion] = {
    # A near layer in a quarter of the moving-camera clips, objects up to 16 px a frame (since 2026-12-06).
    "parallax": CameraMotion(),
    # No near layer, objects up to 8 px a frame: the clips of the runs before it.
    "gentle": CameraMotion(object_speed=8.0, parallax_probability=0.0),
}


def synthesize_clip(
    scene: np.ndarray,
    rng: np.random.Generator,
    frames: int,
    size: int,
    rain: RainSettings,
    motion: CameraMotion = CameraMotion(),
    sprite: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A short rainy clip with its clean frames, filmed from `scene` by a moving camera.

    The camera looks at a random `size` x `size` part of `scene` and moves smoothly
    (pan, zoom, turn, a little shake); with `sprite`, an object crosses the view on its
    own and, when the camera moves, a near layer passes in front of the scene faster than
    it (parallax); rain falls afresh in every frame (`vidderain.data.synth.add_rain_frames`).

    Args:
        scene: float32 HxWx3 clean image in [0, 1].
        rng: np.random.Generator. The only source of randomness.
        frames: int. Frames in the clip.
        size: int. Side of the square frames.
        rain: RainSettings. The rain's ranges.
        motion: CameraMotion. The camera's ranges. Defaults to CameraMotion().
        sprite: float32 hxwx3 image or None. Cut into the moving object and the near layer.
            Defaults to None.

    Returns:
        (rainy, clean): two lists of `frames` float32 size x size x 3 frames.
    """
    height, width = scene.shape[:2]
    cx = rng.uniform(size / 2, max(width - size / 2, size / 2))
    cy = rng.uniform(size / 2, max(height - size / 2, size / 2))
    still = rng.random() < motion.still_probability
    angle = rng.uniform(0, 2 * np.pi)
    speed = 0.0 if still else rng.uniform(0, motion.speed)
    zoom = 0.0 if still else rng.uniform(-motion.zoom, motion.zoom)
    turn = 0.0 if still else rng.uniform(-motion.rotation, motion.rotation)
    shake = 0.0 if still else rng.uniform(0, motion.shake)
    jitter = rng.normal(0, 1, (frames, 2)) * shake
    clean = _film(scene, (cx, cy), speed, angle, zoom, turn, jitter, frames, size)
    if sprite is not None and rng.random() < motion.object_probability:
        _paste_moving_object(clean, sprite, rng, motion.object_speed)
    # Drawn only where asked for, so clips of motions without it stay as they were.
    if sprite is not None and not still and motion.parallax_probability > 0 and rng.random() < motion.parallax_probability:
        _put_near_layer(clean, sprite, rng, speed * rng.uniform(1.5, max(motion.parallax, 1.5)), angle, zoom, turn,
                        jitter)
    return add_rain_frames(clean, rng, rain), clean


def _film(scene: np.ndarray, centre: tuple[float, float], speed: float, angle: float, zoom: float, turn: float,
          jitter: np.ndarray, frames: int, size: int) -> list[np.ndarray]:
    """The frames a camera moving steadily across `scene` sees; its centre frame looks at `centre`."""
    centre_frame = frames // 2
    views = []
    for i in range(frames):
        d = i - centre_frame
        # Output pixel (size/2, size/2) looks at scene point (x, y) of this frame.
        x = centre[0] + d * speed * np.cos(angle) + jitter[i, 0]
        y = centre[1] + d * speed * np.sin(angle) + jitter[i, 1]
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), d * turn, (1 + zoom) ** d)
        matrix[:, 2] += (x - size / 2, y - size / 2)
        views.append(cv2.warpAffine(scene, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REFLECT101))
    return views


def _put_near_layer(frames: list[np.ndarray], sprite: np.ndarray, rng: np.random.Generator, speed: float,
                    angle: float, zoom: float, turn: float, jitter: np.ndarray) -> None:
    """Cover part of every frame with a near layer cut from `sprite` that moves `speed` px per frame.

    The layer is a bar (a pole, a sign's post) or everything on one side of an edge (a wall,
    a car), soft at its border, drawn in the sprite's own coordinates so it moves with it.
    """
    size = frames[0].shape[0]
    height, width = sprite.shape[:2]
    centre = (rng.uniform(size / 2, max(width - size / 2, size / 2)), rng.uniform(size / 2, max(height - size / 2, size / 2)))
    normal = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    offset = rng.uniform(-size / 3, size / 3)
    distance = (xx - centre[0]) * np.cos(normal) + (yy - centre[1]) * np.sin(normal) - offset
    edge = rng.uniform(0.5, 2.0)  # px of softness: near things are sharp, a little out of focus at most
    if rng.random() < 0.5:
        half_width = rng.uniform(size / 20, size / 6)
        mask = np.clip((half_width - np.abs(distance)) / edge + 0.5, 0.0, 1.0)
    else:
        mask = np.clip(distance / edge + 0.5, 0.0, 1.0)
    layer = np.concatenate([sprite, mask[:, :, None]], axis=2)
    views = _film(layer, centre, speed, angle, zoom, turn, jitter, len(frames), size)
    for frame, view in zip(frames, views):
        alpha = view[:, :, 3:]
        frame[:] = frame * (1 - alpha) + view[:, :, :3] * alpha


def _paste_moving_object(frames: list[np.ndarray], sprite: np.ndarray, rng: np.random.Generator, top_speed: float) -> None:
    size = frames[0].shape[0]
    side = int(rng.integers(size // 6, size // 2 + 1))
    y0 = int(rng.integers(0, sprite.shape[0] - side + 1))
    x0 = int(rng.integers(0, sprite.shape[1] - side + 1))
    patch = sprite[y0 : y0 + side, x0 : x0 + side]
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    r = ((yy - side / 2 + 0.5) ** 2 + (xx - side / 2 + 0.5) ** 2) / (side / 2) ** 2
    mask = np.clip((1.0 - r) * 4.0, 0.0, 1.0)[:, :, None]  # a soft-edged disc
    angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(1, top_speed)
    start = rng.uniform(0, size - side, 2)
    centre_frame = len(frames) // 2
    for i, frame in enumerate(frames):
        d = i - centre_frame
        top = int(round(start[0] + d * speed * np.sin(angle)))
        left = int(round(start[1] + d * speed * np.cos(angle)))
        _blend_into(frame, patch, mask, top, left)


def _blend_into(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray, top: int, left: int) -> None:
    height, width = frame.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch.shape[0], height), min(left + patch.shape[1], width)
    if y0 >= y1 or x0 >= x1:
        return
    region = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    alpha = mask[region]
    frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - alpha) + patch[region] * alpha


CLIP_MARGIN = 16  # px around a training crop, so alignment at its border sees what moved in


class ClipBatches(keras.utils.PyDataset):
    """Batches of synthetic rainy clips for temporal models; batch `i` depends only on (seed, i).

    Each item is a window of frames filmed from a clean image by a moving camera,
    with fresh rain in every frame (`synthesize_clip`), stacked as the model wants it
    (`vidderain.temporal`), and the clean centre frame as the target. A window of one
    frame makes the single-frame control: the same data, without the neighbours.

    Args:
        scenes: sequence of float32 HxWx3 clean images.
        batch: int. Windows per batch.
        patch: int. Side of the square frames.
        steps: int. Number of batches.
        spec: WindowSpec. Frames per window and whether to align them.
        rain: RainSettings. The rain's ranges.
        seed: int. Seeds everything drawn. Defaults to 0.
        motion: CameraMotion. The camera's ranges. Defaults to CameraMotion().
    """

    def __init__(self, scenes: Sequence[np.ndarray], batch: int, patch: int, steps: int, spec: WindowSpec,
                 rain: RainSettings, seed: int = 0, motion: CameraMotion = CameraMotion(), **kwargs):
        super().__init__(**kwargs)
        if not scenes:
            raise ValueError("ClipBatches needs at least one scene. Received: scenes=[]")
        self.scenes, self.batch, self.patch, self.steps = list(scenes), batch, patch, steps
        self.spec, self.rain, self.seed, self.motion = spec, rain, seed, motion
        self._stackers = threading.local()  # DIS keeps state: one solver per thread

    def __len__(self) -> int:
        return self.steps

    def _stacker(self) -> WindowStacker:
        if not hasattr(self._stackers, "stacker"):
            self._stackers.stacker = WindowStacker(self.spec)
        return self._stackers.stacker

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, index])
        stacker = self._stacker()
        windows = np.empty((self.batch, self.patch, self.patch, 3 * self.spec.frames), np.float32)
        targets = np.empty((self.batch, self.patch, self.patch, 3), np.float32)
        side = self.patch + 2 * CLIP_MARGIN
        crop = slice(CLIP_MARGIN, CLIP_MARGIN + self.patch)
        for b in range(self.batch):
            scene = self.scenes[int(rng.integers(len(self.scenes)))]
            sprite = self.scenes[int(rng.integers(len(self.scenes)))]
            if rng.integers(2):
                scene = scene[:, ::-1]
            rainy, clean = synthesize_clip(scene, rng, self.spec.frames, side, self.rain, self.motion, sprite)
            window = stacker.stack([stacker.prepare(frame) for frame in rainy])
            windows[b] = window[crop, crop]
            targets[b] = clean[self.spec.radius][crop, crop]
        return windows, targets


def clip_validation(scenes: Sequence[np.ndarray], spec: WindowSpec, rain: RainSettings,
                    seed: int = 0, motion: CameraMotion = CameraMotion()) -> list[Pair]:
    """Fixed (window, clean centre) pairs of whole validation images, one synthetic clip each."""
    stacker = WindowStacker(spec)
    pairs = []
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng([seed, 1_000_003, i])
        side = min(scene.shape[:2]) // 8 * 8
        rainy, clean = synthesize_clip(scene, rng, spec.frames, side, rain, motion, sprite=scenes[(i + 1) % len(scenes)])
        pairs.append((stacker.stack([stacker.prepare(frame) for frame in rainy]), clean[spec.radius]))
    return pairs


@dataclass(frozen=True)
class TrainingData:
    """Decoded training and validation pairs, and how the rainy side is made.

    Attributes:
        train: (rainy, clean) pairs to crop from; (clean, clean) when `clean_only`.
        val: (rainy, clean) pairs scored whole after every validation interval.
        val_names: file names of the validation pairs, so they can be scored again.
        source: str. The data folder, as given.
        name: str. The data set's name: the data folder's own name, without the path to it.
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

    @property
    def name(self) -> str:
        return Path(self.source).resolve().name


def _load_paired(folder: Path) -> tuple[list[Pair], list[str]]:
    rainy_dir, clean_dir = find_folders(folder)
    pairs = pair_files(rainy_dir, clean_dir)
    loaded = list(prefetch((load_pair(*p) for p in pairs), depth=8, name="read-pairs"))
    return loaded, [rainy.name for rainy, _ in pairs]


VIDEO_FRAMES_PER_CLIP = 48  # clean frames taken from each video, evenly spaced


def _video_frames(path: Path, count: int = VIDEO_FRAMES_PER_CLIP) -> list[tuple[np.ndarray, str]]:
    info = probe_video(path)
    every = max(1, (info.frame_count or count) // count)
    with VideoReader(path, info=info) as reader:
        # Stop decoding once `count` frames are taken.
        taken = ((i, frame) for i, frame in enumerate(reader) if i % every == 0)
        return [(to_float(frame), f"{path.name}#{i}") for i, frame in itertools.islice(taken, count)]


def _load_clean(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    check_readable_folder(folder, "a folder of clean images and videos")
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
        data_dir: str or PathLike. Paired folders (see `vidderain.data.pairs`), or with
            `synthesize` a folder of clean images and videos (48 evenly spaced frames of each).
        val_dir: str or PathLike or None. A separate folder of the same kind for validation;
            then all of `data_dir` trains. Defaults to None.
        val_split: float. Fraction of `data_dir` held out when `val_dir` is None. Defaults to 0.1.
        seed: int. Chooses the held-out part (and the synthetic rain of validation images). Defaults to 0.
        synthesize: bool. `data_dir` holds clean images only; make every rainy input with
            `vidderain.data.synth`. Defaults to False.
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
            count = _validation_count(len(clean), val_split)
            train_clean, val_clean = split_validation(clean, count, seed)
            _, val_names = split_validation(names, count, seed)
        val = [(add_rain(c, np.random.default_rng([seed, i]), rain), c) for i, c in enumerate(val_clean)]
        return TrainingData([(c, c) for c in train_clean], val, val_names, str(data_dir), synthesizer, extra,
                            clean_only=True)
    pairs, names = _load_paired(data_dir)
    if val_dir is not None:
        val, val_names = _load_paired(Path(val_dir))
        return TrainingData(pairs, val, val_names, str(data_dir), synthesizer, extra)
    count = _validation_count(len(pairs), val_split)
    train, val = split_validation(pairs, count, seed)
    _, val_names = split_validation(names, count, seed)
    return TrainingData(train, val, val_names, str(data_dir), synthesizer, extra)


def _validation_count(total: int, val_split: float) -> int:
    """How many of `total` items `val_split` holds out; refused where none would be left to train on."""
    count = round(total * val_split)
    if count >= total:
        raise ParameterError("val_split", val_split, f"small enough to leave images to train on "
                             f"(it would hold out all {total})")
    return count


def describe_data(data: TrainingData) -> str:
    """One line saying what a run trains and validates on, by the data set's name and size (a model records it)."""
    kind = "clean images with synthesized rain" if data.clean_only else "pairs"
    extra = f" and {len(data.extra)} clean frames with synthesized rain" if data.extra else ""
    return f"{data.name}: {len(data.train)} training {kind}{extra}, {len(data.val)} validation pairs"
