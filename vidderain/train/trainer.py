"""Training: one resumable run of a registered network on image pairs.

The loop is Keras 3 only (`train_on_batch`, a `PyDataset`, Keras optimizers and
schedules), so it runs under any Keras backend. A run keeps its state in its run
folder beside the output model (`vidderain.train.checkpoint`): the latest checkpoint
(weights, optimizer variables, step, settings), a CSV log, a loss/PSNR plot and a
sample grid. The best model by validation PSNR is exported to OUT with its metadata.

Several devices or machines take part through a `vidderain.train.distribution.Distribution`:
each step's global batch is split over the replicas, and only the chief writes to OUT.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from vidderain import __version__
from vidderain.data.pairs import Pair
from vidderain.data.patches import AUGMENTATIONS, CLIP_MOTIONS, ClipBatches, PatchBatches, clip_validation
from vidderain.data.synth import RAIN_PRESETS
from vidderain.engine import Engine, TileSettings
from vidderain.errors import InputError, ParameterError
from vidderain.io.images import write_image
from vidderain.metrics import psnr, ssim
from vidderain.models import load_model, save_model
from vidderain.nets import ARCHITECTURES, count_macs, get_architecture, start_from_single_frame
from vidderain.pipeline import prefetch
from vidderain.pixels import to_integer
from vidderain.precision import FLOAT32, Precision, at_precision
from vidderain.temporal import WindowSpec
from vidderain.train.checkpoint import (
    find_checkpoint,
    read_state,
    run_folder,
    save_checkpoint,
    saved_state,
    weights_path,
)
from vidderain.train.distribution import ONE_DEVICE, Distribution
from vidderain.train.losses import LOSSES
from vidderain.train.plots import plot_training_log


@dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a training run; stored in its checkpoint."""

    arch: str = "default"  # network name in vidderain.nets.ARCHITECTURES
    steps: int = 20000  # optimizer steps in the whole run
    batch: int = 16  # crops per step
    patch: int = 96  # crop side in pixels, a multiple of the network's stride
    lr: float = 1e-3  # peak learning rate, reached after the warm-up
    warmup: int = 300  # steps of linear warm-up from 0, then cosine decay to lr/100
    loss: str = "charbonnier"  # a name in vidderain.train.losses.LOSSES
    val_every: int = 500  # steps between validations (and best-model exports)
    seed: int = 0  # seeds the weights and the crops
    checkpoint_seconds: float = 300.0  # a checkpoint at least this often
    augment: str = "flip"  # geometric augmentation, a name in vidderain.data.patches.AUGMENTATIONS
    rain_mix: float = 0.0  # fraction of paired crops whose rainy side is synthesized instead
    extra_clean: str | None = None  # folder of clean images/videos whose crops always get synthetic rain
    rain: str = "mixed"  # synthesizer ranges for --rain-mix and --extra-clean, a name in vidderain.data.synth.RAIN_PRESETS
    val_split: float = 0.1  # share of the data held out for validation (when val_dir is None)
    val_dir: str | None = None  # a separate folder of validation pairs, resolved
    synthesize: bool = False  # the data folder holds clean images only; every crop gets synthetic rain
    init: str | None = None  # a trained model file whose weights the run starts from (fine-tuning), resolved
    motion: str = "parallax"  # temporal networks: how training clips move, a name in vidderain.data.patches.CLIP_MOTIONS

    def check(self) -> None:
        """Raise ParameterError, naming the setting and its value, for a setting that cannot work."""
        if self.arch not in ARCHITECTURES:
            raise ParameterError("arch", self.arch, f"one of {', '.join(ARCHITECTURES)}")
        arch = ARCHITECTURES[self.arch]
        if self.loss not in LOSSES:
            raise ParameterError("loss", self.loss, f"one of {', '.join(LOSSES)}")
        for name in ("steps", "batch", "patch", "val_every"):
            if getattr(self, name) < 1:
                raise ParameterError(name, getattr(self, name), "at least 1")
        if self.patch % arch.stride:
            raise ParameterError("patch", self.patch, f"a multiple of {arch.stride} for {self.arch}")
        if not self.lr > 0:
            raise ParameterError("lr", self.lr, "positive")
        if self.augment not in AUGMENTATIONS:
            raise ParameterError("augment", self.augment, f"one of {', '.join(AUGMENTATIONS)}")
        if not 0.0 <= self.rain_mix <= 1.0:
            raise ParameterError("rain_mix", self.rain_mix, "a fraction between 0 and 1")
        if self.rain not in RAIN_PRESETS:
            raise ParameterError("rain", self.rain, f"one of {', '.join(RAIN_PRESETS)}")
        if self.motion not in CLIP_MOTIONS:
            raise ParameterError("motion", self.motion, f"one of {', '.join(CLIP_MOTIONS)}")

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> "TrainSettings":
        """The settings a checkpoint stored; a setting it predates gets the value that run used."""
        return cls(**{**LEGACY_SETTINGS, **saved})


# What a run that began before a setting existed did, so a resumed run keeps its recipe.
LEGACY_SETTINGS: dict[str, Any] = {"augment": "flip+rot90", "rain_mix": 0.0, "extra_clean": None, "rain": "mixed",
                                   "val_split": 0.1, "val_dir": None, "synthesize": False,
                                   "init": None, "motion": "gentle"}


@dataclass(frozen=True)
class Progress:
    """What the loop reports after each step."""

    step: int
    steps: int
    loss: float
    steps_per_second: float
    val_psnr: float | None
    val_ssim: float | None


LOG_FIELDS = ("step", "loss", "lr", "steps_per_second", "val_psnr", "val_ssim", "elapsed_seconds", "precision")


class PlannedDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, then cosine segments, each from one rate down to another.

    A run is planned once: warm-up, then one cosine from `peak` to `peak / 100` at the
    last step (what `keras.optimizers.schedules.CosineDecay` computes). Extending a
    resumed run appends a segment that continues from the rate reached, down to
    `peak / 100` at the new last step, so the rate never jumps back up.

    Args:
        peak: float. The rate reached at the end of the warm-up.
        warmup: int. Steps of linear warm-up from 0.
        segments: list of [start, end, from_rate, to_rate]; the last one starting at or
            before a step gives that step's rate.
    """

    def __init__(self, peak: float, warmup: int, segments: list[list[float]]):
        self.peak, self.warmup = float(peak), int(warmup)
        self.segments = [[float(v) for v in segment] for segment in segments]

    @classmethod
    def plan(cls, settings: "TrainSettings") -> "PlannedDecay":
        """The schedule of a new run of `settings`."""
        warmup = min(settings.warmup, max(settings.steps - 1, 0))
        return cls(settings.lr, warmup, [[warmup, settings.steps, settings.lr, settings.lr * FINAL_LR_FRACTION]])

    @property
    def end(self) -> int:
        """The step at which the rate reaches its floor."""
        return int(self.segments[-1][1])

    def extended(self, step: int, steps: int, restart: float | None = None) -> "PlannedDecay":
        """This schedule continued from `step` down to its floor at `steps`.

        The new cosine starts at the rate the schedule has at `step` (after the warm-up,
        where `step` falls inside it), or at `restart` when one is asked for (a warm restart).
        """
        if steps == self.end and restart is None:
            return self
        start = max(step, self.warmup)
        rate = self.rate(start) if restart is None else float(restart)
        return PlannedDecay(self.peak, self.warmup, self.segments + [[start, steps, rate, self.peak * FINAL_LR_FRACTION]])

    def rate(self, step: int) -> float:
        """The learning rate at `step`, in plain Python."""
        return float(np.asarray(self(np.float32(step))))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = self.peak * step / max(self.warmup, 1)
        for start, end, high, low in self.segments:
            progress = ops.clip((step - start) / max(end - start, 1.0), 0.0, 1.0)
            cosine = low + (high - low) * 0.5 * (1.0 + ops.cos(np.pi * progress))
            rate = ops.where(step >= start, cosine, rate)
        return rate

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "warmup": self.warmup, "segments": self.segments}


FINAL_LR_FRACTION = 0.01  # the cosine ends at lr / 100


def build_model(settings: TrainSettings, precision: Precision = FLOAT32,
                schedule: PlannedDecay | None = None) -> keras.Model:
    """Build and compile the network of `settings` at `precision` with its optimizer and schedule.

    At bfloat16 the network computes in bfloat16 with float32 weights (Keras's
    mixed_bfloat16) and its residual subtraction, output and loss stay float32.
    """
    keras.utils.set_random_seed(settings.seed)
    model = at_precision(get_architecture(settings.arch).build(), precision)
    schedule = schedule or PlannedDecay.plan(settings)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=LOSSES[settings.loss])
    return model


def evaluate(model: keras.Model, stride: int, pairs: Sequence[Pair],
             veil: keras.Model | None = None) -> tuple[float, float, list[np.ndarray]]:
    """Mean PSNR/SSIM of `model` on whole validation pairs, run through the inference engine.

    Args:
        veil: keras.Model or None. A veil estimate the engine runs before `model` (`vidderain.nets.veil`).

    Returns:
        (psnr, ssim, outputs): the means over the pairs and the derained frames.
    """
    engine = Engine(model, stride, TileSettings(tile=0, batch=1), veil=veil)
    outputs = [out for _, out in engine.run((i, rainy) for i, (rainy, _) in enumerate(pairs))]
    scores_p = [psnr(out, clean) for out, (_, clean) in zip(outputs, pairs)]
    scores_s = [ssim(out, clean) for out, (_, clean) in zip(outputs, pairs)]
    return float(np.mean(scores_p)), float(np.mean(scores_s)), outputs


class Trainer:
    """One training run with its checkpoint folder, resumable step for step.

    Args:
        settings: TrainSettings. The run's definition.
        train_pairs: sequence of (rainy, clean) float32 frames to crop from.
        val_pairs: sequence of (rainy, clean) float32 frames, scored whole; may be empty.
        out: Path. Where the best model is exported; its run folder (`run_folder(out)`) is beside it.
        data_description: str. Recorded in the model's metadata.
        val_names: sequence of str. Names of the validation pairs, recorded in the metadata.
        synthesize: callable or None. Makes the rainy side of a crop from its clean side: every
            crop's with `clean_only`, else a `settings.rain_mix` share of the pairs' crops and
            every crop of `extra_clean`.
        extra_clean: sequence of float32 clean frames whose crops always get synthetic rain.
        precision: Precision. What the network computes in; each leg of a resumed run may
            use another (the weights are float32 either way). Defaults to float32.
        restart_lr: float or None. When resuming, start the rest of the schedule at this rate
            (a warm restart asked for) instead of where the schedule is. Defaults to None.
        on_progress: callable or None. Called with a Progress after every step.
        distribution: Distribution. Devices and machines taking part, and whether this
            process is the chief; a worker that is not writes its files to a temporary
            folder and reads a checkpoint to resume from OUT's run folder. Defaults to one device.
    """

    def __init__(
        self,
        settings: TrainSettings,
        train_pairs: Sequence[Pair],
        val_pairs: Sequence[Pair],
        out: Path,
        data_description: str,
        val_names: Sequence[str] = (),
        synthesize: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        distribution: Distribution = ONE_DEVICE,
        extra_clean: Sequence[np.ndarray] = (),
        clean_only: bool = False,
        precision: Precision = FLOAT32,
        restart_lr: float | None = None,
    ):
        settings.check()
        distribution.check_batch(settings.batch)
        self.settings = settings
        self.train_pairs, self.val_pairs = list(train_pairs), list(val_pairs)
        self.out = Path(out)
        self.run_dir = run_folder(self.out)
        self.data_description = data_description
        self.val_names = list(val_names)
        self.synthesize = synthesize
        self.extra_clean = list(extra_clean)
        self.clean_only = clean_only
        self.precision = precision
        self.restart_lr = restart_lr
        self.on_progress = on_progress
        self.distribution = distribution
        self.arch = get_architecture(settings.arch)
        if self.arch.clips:
            # A temporal network (or its single-frame control) learns from clips filmed from
            # the clean images; validation gets one fixed clip per validation image.
            self.spec = WindowSpec(self.arch.frames, self.arch.align)
            self.scenes = [clean for _, clean in self.train_pairs] + self.extra_clean
            self.val_pairs = clip_validation([clean for _, clean in self.val_pairs], self.spec,
                                             RAIN_PRESETS[settings.rain], seed=settings.seed,
                                             motion=CLIP_MOTIONS[settings.motion])

    # Checkpoints (vidderain.train.checkpoint) ----------------------------------------

    @staticmethod
    def saved_settings(out: Path) -> TrainSettings | None:
        """The settings stored in the checkpoint of the run for `out`, or None if there is none."""
        state = saved_state(out)
        return None if state is None else TrainSettings.from_saved(state["settings"])

    def saved_step(self) -> int | None:
        """The step of the run's latest checkpoint, or None if none was saved (or this worker is not the chief)."""
        folder = find_checkpoint(self.run_dir) if self.distribution.is_chief else None
        return None if folder is None else read_state(folder)["step"]

    def _restore(self, model: keras.Model, folder: Path) -> dict[str, Any]:
        state = read_state(folder)
        try:
            model.load_weights(weights_path(folder))
        except ValueError as exc:
            raise InputError(f"{folder}: checkpoint does not fit the {self.settings.arch} network ({exc})") from None
        if int(np.asarray(model.optimizer.iterations)) != state["step"]:
            raise InputError(f"{folder}: checkpoint optimizer is at step {int(np.asarray(model.optimizer.iterations))}, "
                             f"its state at step {state['step']}")
        return state

    def _initialize(self, model: keras.Model, init: str) -> None:
        """Start `model` from the weights of the trained model file `init` (fine-tuning).

        A temporal network may start from a single-frame model of the same body
        (`start_from_single_frame`): it then derains as that model does, neighbours unread.
        """
        source = load_model(init)
        weights = source.model.get_weights()
        shapes = [tuple(w.shape) for w in weights]
        if shapes == [tuple(v.shape) for v in model.weights]:
            model.set_weights(weights)
            return
        arch = source.metadata.get("arch", "unknown")
        if get_architecture(self.settings.arch).frames > 1 and int(source.metadata.get("frames", 1)) == 1:
            try:
                start_from_single_frame(model, source.model)
                return
            except ValueError as exc:
                raise InputError(f"{source.path}: its network ({arch}) cannot start the {self.settings.arch} "
                                 f"network: {exc}; --init needs a model of the same architecture, or a "
                                 f"single-frame one of the same body") from None
        raise InputError(f"{source.path}: its network ({arch}) does not fit the {self.settings.arch} network; "
                         f"--init needs a model of the same architecture")

    # The loop --------------------------------------------------------------------

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to `settings.steps`, from scratch or from the run's checkpoint.

        Returns:
            The final state: step, best validation PSNR/SSIM and the step it came at.

        Raises:
            KeyboardInterrupt: after saving a checkpoint, so `--resume` continues from there
                (in a multi-worker run the last periodic checkpoint stands instead).
        """
        if self.distribution.is_chief:
            return self._fit(resume, self.out, self.run_dir)
        # The other workers take the same steps, saves included (a save may read variables
        # across the workers), but into a folder that is thrown away.
        with tempfile.TemporaryDirectory(prefix="vidderain-worker-") as scratch:
            out = Path(scratch) / self.out.name
            return self._fit(resume, out, run_folder(out))

    def _fit(self, resume: bool, out: Path, run_dir: Path) -> dict[str, Any]:
        s = self.settings
        dist = self.distribution
        with dist.scope():
            model = build_model(s, self.precision)
            # Built now, in the distribution's scope, so that its variables are placed with the
            # model's and a checkpoint's optimizer state is read back with the weights.
            model.optimizer.build(model.trainable_variables)
        state: dict[str, Any] = {"step": 0, "best_psnr": None, "best_ssim": None, "best_step": None,
                                 "wall_seconds": 0.0}
        folder = find_checkpoint(self.run_dir) if resume else None
        if resume and folder is None:
            raise InputError(f"{self.run_dir}: no checkpoint to resume from")
        schedule = PlannedDecay.plan(s)
        if folder is not None:
            with dist.scope():
                state = self._restore(model, folder)
            # The schedule the run was planned with (older runs: rebuilt from their settings),
            # continued from the current rate when --steps changed.
            saved = state.get("schedule")
            planned = PlannedDecay(**saved) if saved else PlannedDecay.plan(TrainSettings.from_saved(state["settings"]))
            schedule = planned.extended(state["step"], s.steps, self.restart_lr)
            model.optimizer.learning_rate = schedule
        else:
            if run_dir.exists():
                shutil.rmtree(run_dir)
            if s.init is not None:
                with dist.scope():
                    self._initialize(model, s.init)
        run_dir.mkdir(parents=True, exist_ok=True)
        state["settings"] = dataclasses.asdict(s)
        state["schedule"] = schedule.get_config()
        state.setdefault("legs", []).append({"from_step": state["step"], "precision": self.precision.name,
                                             "device": self.distribution.describe()})
        # Every worker must save at the same steps, so a multi-worker run saves on steps alone.
        timed_checkpoints = dist.workers == 1
        train_step = dist.make_train_step(model)

        dataset = self._dataset()
        start_step = state["step"]
        log_path = run_dir / "log.csv"
        new_log = not log_path.exists() or start_step == 0
        if not new_log:
            _widen_log(log_path)
        started = time.monotonic()
        wall_before = state["wall_seconds"]
        last_checkpoint = started
        val_psnr = state["best_psnr"]
        val_ssim = state["best_ssim"]
        recent = time.monotonic()
        with open(log_path, "w" if new_log else "a", newline="") as log_file:
            log = csv.DictWriter(log_file, LOG_FIELDS)
            if new_log:
                log.writeheader()
            batches = prefetch((dataset[i] for i in range(start_step, s.steps)), depth=4, name="crops")
            try:
                for step in range(start_step + 1, s.steps + 1):
                    rainy, clean = next(batches)
                    loss = train_step(rainy, clean)
                    if not np.isfinite(loss):
                        raise FloatingPointError(f"training diverged at step {step} (loss={loss}); "
                                                 f"try a learning rate (lr) below {s.lr:g}")
                    now = time.monotonic()
                    rate = 1.0 / max(now - recent, 1e-9)
                    recent = now
                    state["step"] = step
                    state["wall_seconds"] = wall_before + now - started
                    row: dict[str, Any] = {"step": step, "loss": f"{loss:.6f}",
                                           "lr": f"{float(np.asarray(model.optimizer.learning_rate)):.3e}",
                                           "steps_per_second": f"{rate:.3f}",
                                           "elapsed_seconds": f"{state['wall_seconds']:.1f}",
                                           "precision": self.precision.name}
                    if step % s.val_every == 0 or step == s.steps:
                        val_psnr, val_ssim = self._validate(model, state, step, out, run_dir)
                        row.update(val_psnr=_fmt(val_psnr), val_ssim=_fmt(val_ssim))
                    log.writerow(row)
                    if row.get("val_psnr"):
                        log_file.flush()
                        plot_training_log(log_path, run_dir / "curve.png")
                    timed = timed_checkpoints and now - last_checkpoint >= s.checkpoint_seconds
                    if step % s.val_every == 0 or timed or step == s.steps:
                        log_file.flush()
                        save_checkpoint(model, state, run_dir)
                        last_checkpoint = time.monotonic()
                    if self.on_progress:
                        self.on_progress(Progress(step, s.steps, loss, rate, val_psnr, val_ssim))
            except KeyboardInterrupt:
                log_file.flush()
                # A stop that lands between a step's update and its bookkeeping leaves the
                # update applied: the optimizer's count is the step the weights are at.
                state["step"] = max(state["step"], int(np.asarray(model.optimizer.iterations)))
                # The other workers of a multi-worker run may be gone; a save would wait for them.
                if state["step"] > start_step and dist.workers == 1:
                    save_checkpoint(model, state, run_dir)
                raise
            finally:
                batches.close()
        if not self.val_pairs:
            self._export(model, state, out)
        return state

    def _dataset(self) -> keras.utils.PyDataset:
        s = self.settings
        if self.arch.clips:
            return ClipBatches(self.scenes, s.batch, s.patch, s.steps, self.spec, RAIN_PRESETS[s.rain], seed=s.seed,
                               motion=CLIP_MOTIONS[s.motion])
        return PatchBatches(self.train_pairs, s.batch, s.patch, s.steps, seed=s.seed, synthesize=self.synthesize,
                            rain_mix=1.0 if self.clean_only else s.rain_mix, extra_clean=self.extra_clean,
                            augment=s.augment)

    def _plain_copy(self, model: keras.Model) -> keras.Model:
        """The network with `model`'s weights, on one device and without its optimizer."""
        plain = self.arch.build()
        plain.set_weights(model.get_weights())
        return plain

    def _validate(self, model: keras.Model, state: dict[str, Any], step: int, out: Path,
                  run_dir: Path) -> tuple[float | None, float | None]:
        if not self.val_pairs:
            return None, None
        # A distributed model's predictions run on every replica; validation needs one device.
        net = self._plain_copy(model) if self.distribution.distributed else model
        val_psnr, val_ssim, outputs = evaluate(net, self.arch.stride, self.val_pairs)
        rainy, clean = self.val_pairs[0]
        centre = 3 * (self.arch.frames // 2)  # a temporal window's centre frame
        grid = np.concatenate([rainy[:, :, centre : centre + 3], outputs[0], clean], axis=1)
        write_image(run_dir / "samples.png", to_integer(grid))
        if state["best_psnr"] is None or val_psnr > state["best_psnr"]:
            state.update(best_psnr=val_psnr, best_ssim=val_ssim, best_step=step)
            self._export(model, state, out)
        return val_psnr, val_ssim

    def _export(self, model: keras.Model, state: dict[str, Any], out: Path) -> None:
        s = self.settings
        metadata = {
            "arch": s.arch,
            "stride": self.arch.stride,
            "overlap": self.arch.overlap,
            "frames": self.arch.frames,
            "align": self.arch.align,
            "description": self.arch.description,
            "parameters": int(model.count_params()),
            "macs_per_pixel": count_macs(model),
            "data": self.data_description,
            "train_pairs": len(self.train_pairs),
            "val_pairs": len(self.val_pairs),
            "val_files": self.val_names,
            "synthesized_rain": self.synthesize is not None,
            "extra_clean": len(self.extra_clean),
            "legs": state.get("legs", []),
            "step": state["step"],
            # Folder names, never paths: a model file says what it learnt from, not where that was.
            "training": {**dataclasses.asdict(s), **{key: Path(value).name for key in ("extra_clean", "val_dir", "init")
                                                     if (value := getattr(s, key)) is not None}},
            "val_psnr": state["best_psnr"],
            "val_ssim": state["best_ssim"],
            "wall_seconds": round(state["wall_seconds"], 1),
            "distribution": self.distribution.describe(),
            "versions": {"vidderain": __version__, "keras": keras.__version__, "backend": keras.backend.backend(),
                         "python": platform.python_version()},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        # Export an uncompiled copy: the optimizer state belongs in the checkpoint, not the model.
        out.parent.mkdir(parents=True, exist_ok=True)
        save_model(self._plain_copy(model), out, metadata)


def _widen_log(path: Path) -> None:
    """Rewrite a log.csv written before a column existed with today's columns (new ones empty)."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        if reader.fieldnames == list(LOG_FIELDS):
            return
    with open(path, "w", newline="") as file:
        log = csv.DictWriter(file, LOG_FIELDS)
        log.writeheader()
        log.writerows({key: row.get(key, "") for key in LOG_FIELDS} for row in rows)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
