"""Training a veil estimate for a trained network, and saving the two as one model file.

The network stays as it is. It derains the training pairs and synthetic rain over
their clean sides, some veiled (`vidderain.data.veil`), and the estimate
(`vidderain.nets.veil`) learns from thumbnails before and after deraining the veil
drawn over each: its offset and haze strength, both 0 where there is none (mean
absolute error). Then the network runs over the validation pairs through the engine,
with and without the estimate, so the model file says what the estimate costs where
there is no veil to lift.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vidderain import __version__
from vidderain.data.patches import TrainingData
from vidderain.data.veil import VeilBatches, VeilSettings, make_thumbnails
from vidderain.engine import Engine, TileSettings
from vidderain.models import LoadedModel, file_sha256, save_model
from vidderain.nets.veil import attach_veil, build_veil, copy_veil_weights
from vidderain.precision import FLOAT32, Precision, at_precision
from vidderain.train.trainer import evaluate
from vidderain.veil import NEGLIGIBLE, estimate_veils, thumbnails


@dataclass(frozen=True)
class VeilTraining:
    """How a veil estimate is trained.

    Attributes:
        steps: int. Optimizer steps. Defaults to 4000.
        batch: int. Thumbnails per step. Defaults to 64.
        lr: float. Adam's learning rate at the start, decayed to 0 along a cosine. Defaults to 1e-3.
        seed: int. Seeds the weights, the rain and the veils. Defaults to 0.
        thumbnails: VeilSettings. How the thumbnails are made. Defaults to VeilSettings().
    """

    steps: int = 4000
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    thumbnails: VeilSettings = VeilSettings()

    def images(self, pairs: int) -> int:
        """Images the network derains to make the thumbnails of `pairs` training pairs."""
        return pairs * (2 + self.thumbnails.draws)


@dataclass(frozen=True)
class VeilReport:
    """What a trained veil estimate did on the validation pairs.

    Attributes:
        val_psnr, val_ssim: float. The network with the estimate, on the validation pairs.
        base_psnr, base_ssim: float. The network alone, on the same pairs.
        lifted: int. Validation pairs whose rainy side the estimate found veiled.
        seconds: float. Wall time of the training.
    """

    val_psnr: float
    val_ssim: float
    base_psnr: float
    base_ssim: float
    lifted: int
    seconds: float


def train_veil(base: LoadedModel, data: TrainingData, out: Path, settings: VeilTraining = VeilTraining(),
               precision: Precision = FLOAT32, on_image=None, on_step=None, start: LoadedModel | None = None
               ) -> VeilReport:
    """Train a veil estimate for `base`'s network on `data`'s training pairs; save both to `out`.

    Args:
        base: LoadedModel. The trained single-frame network; a veil estimate it carries is replaced.
        data: TrainingData. Paired training data (`load_training_data`); its validation pairs
            only score the result.
        out: Path. The `.keras` file to write: `base`'s network with the new estimate.
        settings: VeilTraining. Steps, batch, learning rate, seed and thumbnails. Defaults to VeilTraining().
        precision: Precision. What the network derains at, as `folder` and `video` would run it.
            Defaults to float32.
        on_image: callable() or None. Called after each training image is derained. Defaults to None.
        on_step: callable(step, steps, loss) or None. Called after each step. Defaults to None.
        start: LoadedModel or None. A file whose veil estimate training starts from instead
            of random weights (one trained for a network close to `base`'s, such as one of
            the networks `base` averages); with `settings.steps` 0 it is carried over as it
            is and only scored. Defaults to None.
    """
    if int(base.metadata.get("frames", 1)) != 1:
        raise ValueError(f"A veil estimate goes with a single-frame network. Received: {base.path.name}, "
                         f"a window of {base.metadata['frames']} frames")
    if start is not None and start.veil is None:
        raise ValueError(f"{start.path.name} carries no veil estimate to start from")
    network = at_precision(base.model, precision)
    started = time.monotonic()
    keras.utils.set_random_seed(settings.seed)
    unbounded = build_veil(settings.thumbnails.size, bound=False)  # the clip and cap pass no gradient (build_veil)
    if start is not None:
        copy_veil_weights(start.veil, unbounded)
    if settings.steps:
        rng = np.random.default_rng(settings.seed)
        engine = Engine(network, base.stride, TileSettings(tile=0, batch=1))
        pool = make_thumbnails(data.train, engine.process, rng, settings.thumbnails, on_image=on_image)
        batches = VeilBatches(pool, settings.batch, settings.steps, settings.seed, settings.thumbnails.own)
        thumbnail = keras.Input((settings.thumbnails.size, settings.thumbnails.size, 6))
        estimate = unbounded(thumbnail)
        # Scored on the veil itself, (offset, haze) against the drawn one: the lift divides by 1 - haze,
        # which an unclipped estimate can take to 0.
        haze = estimate[:, 0:1] / estimate[:, 1:2]
        estimator = keras.Model(thumbnail, keras.layers.Concatenate()([estimate[:, 0:1], haze]))
        schedule = keras.optimizers.schedules.CosineDecay(settings.lr, settings.steps)
        estimator.compile(optimizer=keras.optimizers.Adam(schedule), loss="mean_absolute_error")
        for step in range(settings.steps):
            loss = estimator.train_on_batch(*batches[step])
            if on_step is not None:
                on_step(step + 1, settings.steps, float(loss))
    seconds = time.monotonic() - started
    veil = build_veil(settings.thumbnails.size)
    copy_veil_weights(unbounded, veil)

    base_psnr, base_ssim, derained = evaluate(network, base.stride, data.val)
    val_psnr, val_ssim, _ = evaluate(network, base.stride, data.val, veil=veil)
    seen = [thumbnails(rainy, out, settings.thumbnails.size) for (rainy, _), out in zip(data.val, derained)]
    lifted = sum(v.offset >= NEGLIGIBLE for v in estimate_veils(veil, seen)) if seen else 0
    report = VeilReport(val_psnr, val_ssim, base_psnr, base_ssim, int(lifted), round(seconds, 1))
    metadata = _metadata(base, data, settings, report, precision)
    if start is not None:
        metadata["veil"]["start"] = {"file": start.path.name, "sha256": file_sha256(start.path)}
    save_model(attach_veil(base.model, veil), out, metadata)
    return report


def _metadata(base: LoadedModel, data: TrainingData, settings: VeilTraining, report: VeilReport,
              precision: Precision) -> dict[str, Any]:
    metadata = dict(base.metadata)
    metadata["veil"] = {
        "thumbnail": settings.thumbnails.size,
        "data": data.name,
        "train_pairs": len(data.train),
        "val_pairs": len(data.val),
        "training": asdict(settings),  # the thumbnails' settings nested in it
        **asdict(report),
        "precision": precision.name,  # what the network derained the training images at
        "versions": {"vidderain": __version__, "keras": keras.__version__, "backend": keras.backend.backend()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if data.val:
        # The file's headline validation figures are those of what runs: the network with its veil estimate.
        metadata["val_psnr"], metadata["val_ssim"] = report.val_psnr, report.val_ssim
    return metadata
