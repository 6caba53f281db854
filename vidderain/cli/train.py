"""`vidderain train`: train a network on image pairs (or clean images with synthetic rain)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidderain.cli.application import command, err, out, progress, quiet_native_stderr
from vidderain.cli.options import PrecisionOption
from vidderain.data.synth import RAIN_PRESETS
from vidderain.devices import describe_device
from vidderain.errors import InputError
from vidderain.interrupts import exit_code, signal_name
from vidderain.models import ModelFile, inspect_model, load_model, save_model
from vidderain.precision import resolve_precision
from vidderain.train.checkpoint import run_folder, saved_state


def _check_resume(out_path: Path, resume: bool, steps: Optional[int], restart_lr: Optional[float]) -> None:
    """Refuse --resume without a checkpoint, or with a --steps it has already reached, and --restart-lr without it."""
    if not resume:
        if restart_lr is not None:
            raise InputError("--restart-lr needs --resume (a new run starts with its warm-up)")
        return
    state = saved_state(out_path)
    if state is None:
        raise InputError(f"{out_path}: no checkpoint to resume from (looked in {run_folder(out_path)})")
    if steps is not None and steps <= state["step"]:
        raise InputError(f"{out_path}: the run is at step {state['step']} already; --steps must be larger to train "
                         f"more. Received: --steps={steps}")
    if steps is None and state["step"] >= state["settings"]["steps"]:
        raise InputError(f"{out_path}: the run finished its {state['step']} steps; a larger --steps extends it")


@command()
def train(
    ctx: typer.Context,
    data_dir: Annotated[
        Path,
        typer.Argument(
            metavar="DATA_DIR",
            help="Folder with a rainy and a clean folder (rain/norain, rainy/clean, input/target or "
            "rainy_image/ground_truth); with --synthesize, a folder of clean images.",
            show_default=False,
        ),
    ],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The model file to write (.keras).", show_default=False)],
    arch: Annotated[str, typer.Option("--arch", help="Network to train: default (the U-Net), paper, temporal (a "
                                      "window of video frames, trained on synthetic clips), or one of the other "
                                      "networks in docs/networks.md.")] = "default",
    steps: Annotated[
        Optional[int],
        typer.Option("--steps", min=1, help="Optimizer steps in the whole run. [default: 20000; with --resume, the run's own]"),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Crops per step.")] = 16,
    patch: Annotated[int, typer.Option("--patch", min=8, help="Crop side in pixels (a multiple of 8).")] = 96,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate, after the warm-up.")] = 1e-3,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Steps of linear learning-rate warm-up.")] = 300,
    loss: Annotated[str, typer.Option("--loss", help="charbonnier, l1, mse, ssim or charbonnier+ssim.")] = "charbonnier",
    val_split: Annotated[
        float, typer.Option("--val-split", min=0.0, max=0.9, help="Fraction of pairs held out for validation.")
    ] = 0.1,
    val_dir: Annotated[
        Optional[Path], typer.Option("--val", help="A separate folder of validation pairs (replaces --val-split).")
    ] = None,
    val_every: Annotated[int, typer.Option("--val-every", min=1, help="Steps between validations.")] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the weights, the crops and the validation split.")] = 0,
    synthesize: Annotated[
        bool, typer.Option("--synthesize", help="Make the rainy inputs from clean images with vidderain's rain synthesizer.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run of --out from its checkpoint with its settings; a "
                           "different --steps continues the learning-rate decay from where it is.")
    ] = False,
    augment: Annotated[
        str, typer.Option("--augment", help="flip (left-right mirrors), flip+rot90 (also quarter turns, "
                          "which lay near-vertical rain across: measured worse on Rain100L), flip+highlights "
                          "(also thin bright curves drawn alike into both sides of a third of the crops, so that "
                          "bright lines that are not rain are kept), flip+highlights+dark (also the scene of "
                          "30 % of the crops dimmed under rain as bright as before, so that rain over dark "
                          "areas is taken off) or flip+highlights+dark+twins (also pairs of crops of one "
                          "saturated colour with the same rain added in one and screen-blended in the other, "
                          "so that streaks over coloured surfaces are taken off without a dark trace).")
    ] = "flip",
    rain_mix: Annotated[
        float, typer.Option("--rain-mix", min=0.0, max=1.0, help="Share of paired crops whose rainy side is drawn "
                            "by vidderain's rain synthesizer over the clean side instead.")
    ] = 0.0,
    extra_clean: Annotated[
        Optional[Path], typer.Option("--extra-clean", help="A folder of clean images and videos to add; "
                                     "their crops always get synthetic rain.", show_default=False)
    ] = None,
    rain: Annotated[
        str, typer.Option("--rain", help="The synthesizer's ranges for --rain-mix and --extra-clean: mixed (wide: "
                          "angles to 45 degrees, dense and long streaks, up to 4 layers, some haze), mixed-clear "
                          "(the same without haze) or synth (the --synthesize defaults).")
    ] = "mixed",
    motion: Annotated[
        str, typer.Option("--motion", help="Temporal networks: how the training clips move. parallax (a near layer "
                          "passing faster than the scene in a quarter of the moving-camera clips, as in hand-held footage; "
                          "objects up to 16 px a frame) or gentle (neither; objects up to 8 px a frame).")
    ] = "parallax",
    precision: PrecisionOption = "auto",
    init: Annotated[
        Optional[str], typer.Option("--init", help="Start from the weights of a trained model of the same network "
                                    "(a bundled name such as default, or a .keras file): fine-tuning, with a "
                                    "schedule planned fresh from --lr. A temporal network may start from a "
                                    "single-frame model of the same body (temporal-wide from default): it then "
                                    "derains as that model does until it learns to use the neighbours.",
                                    show_default=False)
    ] = None,
    restart_lr: Annotated[
        Optional[float], typer.Option("--restart-lr", min=0.0, help="With --resume: start the rest of the "
                                      "schedule at this learning rate (a warm restart) instead of where it is.",
                                      show_default=False)
    ] = None,
) -> None:
    """Train a network on image pairs, validating on held-out pairs with the literature's metrics.

    The best model by validation PSNR is written to --out; the run folder beside it
    (OUT.run/) keeps a checkpoint, log.csv, curve.png and samples.png. Ctrl-C saves a
    checkpoint; --resume continues exactly where the run stopped.

    Several local GPUs train together (tf.distribute.MirroredStrategy; on JAX,
    keras.distribution.DataParallel), and with TF_CONFIG set several machines do
    (MultiWorkerMirroredStrategy; run the same command on each). --batch is the global
    batch, split over the replicas; only the chief writes --out and its run folder.
    """
    if out_path.suffix != ".keras":
        raise InputError(f"{out_path}: --out must end in .keras")
    _check_resume(out_path, resume, steps, restart_lr)  # before Keras takes seconds to start
    init_file = inspect_model(init) if init is not None and not resume else None
    with quiet_native_stderr():
        # Imported here: these import Keras, which takes seconds and writes to stderr as it starts.
        from vidderain.data.patches import describe_data, load_training_data
        from vidderain.train.distribution import pick_distribution
        from vidderain.train.trainer import Trainer, TrainSettings

        # First: a multi-worker strategy must exist before TensorFlow's runtime starts.
        distribution = pick_distribution()
        device = describe_device()

    settings = TrainSettings(arch=arch, steps=steps or TrainSettings.steps, batch=batch, patch=patch, lr=lr, warmup=warmup,
                             loss=loss, val_every=val_every, seed=seed, augment=augment, rain_mix=rain_mix,
                             rain="synth" if synthesize else rain, val_split=val_split, synthesize=synthesize,
                             val_dir=str(val_dir.resolve()) if val_dir is not None else None,
                             extra_clean=str(extra_clean.resolve()) if extra_clean is not None else None,
                             init=str(init_file.path.resolve()) if init_file is not None else None, motion=motion)
    if resume:
        saved = Trainer.saved_settings(out_path)
        assert saved is not None  # _check_resume found the checkpoint
        ignored = _ignored_on_resume(ctx, settings, saved)
        if ignored:
            err.print(f"ignored with --resume, the run keeps what it started with: {', '.join(ignored)}", markup=False)
        settings = dataclasses.replace(saved, steps=steps or saved.steps)
    settings.check()
    distribution.check_batch(settings.batch)
    with quiet_native_stderr():
        resolved = resolve_precision(precision)
    err.print(f"loading {data_dir} ...")
    data = load_training_data(data_dir, val_dir=settings.val_dir, val_split=settings.val_split, seed=settings.seed,
                              synthesize=settings.synthesize, rain_mix=settings.rain_mix,
                              extra_clean=settings.extra_clean, rain=RAIN_PRESETS[settings.rain])
    err.print(describe_data(data), markup=False)
    if init_file is not None:
        _warn_if_validation_was_trained_on(init_file, data.val_names)
    err.print(f"training {settings.arch} on {device} in {resolved.describe()}, {distribution.describe()}", markup=False)
    with progress("loss", "rate", "val") as bars:
        task = bars.add_task("training", total=settings.steps, loss="", rate="", val="")

        def on_progress(p) -> None:
            val = f"val {p.val_psnr:.2f} dB" if p.val_psnr is not None else ""
            bars.update(task, completed=p.step, loss=f"loss {p.loss:.4f}", rate=f"{p.steps_per_second:.2f} it/s", val=val)

        trainer = Trainer(settings, data.train, data.val, out_path, describe_data(data),
                          val_names=data.val_names, synthesize=data.synthesize, on_progress=on_progress,
                          distribution=distribution, extra_clean=data.extra, clean_only=data.clean_only,
                          precision=resolved, restart_lr=restart_lr)
        try:
            summary = trainer.fit(resume=resume)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (`vidderain.interrupts`)
            err.print(f"interrupted ({signal_name(exc)}); {_after_a_stop(trainer, distribution.is_chief)}", markup=False)
            raise typer.Exit(exit_code(exc)) from None
    best = f", best validation {summary['best_psnr']:.2f} dB / {summary['best_ssim']:.4f} at step {summary['best_step']}" \
        if summary.get("best_psnr") is not None else ""
    written = f"model: {out_path}" if distribution.is_chief else "the chief writes the model"
    out.print(f"trained {summary['step']} steps in {summary['wall_seconds'] / 60:.1f} min{best}; {written}")


def _ignored_on_resume(ctx: typer.Context, given: "TrainSettings", saved: "TrainSettings") -> list[str]:
    """The options typed on a --resume command line that differ from what the run started with."""
    ignored = []
    for field in dataclasses.fields(saved):
        if field.name == "steps" or field.name not in ctx.params:
            continue
        # Compared by name: Typer's Context may come from its own copy of Click.
        typed = getattr(ctx.get_parameter_source(field.name), "name", None) == "COMMANDLINE"
        if typed and getattr(given, field.name) != getattr(saved, field.name):
            flag = "--val" if field.name == "val_dir" else f"--{field.name.replace('_', '-')}"
            ignored.append(f"{flag} {ctx.params[field.name]}")
    return ignored


def _warn_if_validation_was_trained_on(init_file: ModelFile, val_names: list[str]) -> None:
    """Say so when the --init model did not hold out this run's validation pairs, so its scores are not held-out."""
    held_out = init_file.metadata.get("val_files")
    if held_out is None or not val_names:
        return
    seen = sorted(set(val_names) - set(held_out))
    if seen:
        err.print(f"warning: {init_file.path.name} did not hold out {len(seen)} of this run's {len(val_names)} "
                  f"validation pairs (e.g. {seen[0]}); the validation scores will flatter it", markup=False)


def _after_a_stop(trainer, is_chief: bool) -> str:
    """What a stopped training run left to continue from."""
    if not is_chief:
        return "the chief keeps the run's checkpoints"
    step = trainer.saved_step()
    if step is None:
        return "no checkpoint was saved yet; a new run starts from step 0"
    return f"checkpoint of step {step} in {trainer.run_dir}; continue with --resume"


@command(name="train-veil", after_stop="nothing was written; run it again")
def train_veil_command(
    data_dir: Annotated[
        Path,
        typer.Argument(metavar="DATA_DIR", help="Folder with a rainy and a clean folder, as for `vidderain train`.",
                       show_default=False),
    ],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The model file to write (.keras).", show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="The trained single-frame model to add the veil "
                                       "estimate to: a bundled name or a .keras file.")] = "default",
    steps: Annotated[int, typer.Option("--steps", min=0, help="Optimizer steps; 0 with --start carries its estimate "
                                       "over as it is and only scores it.")] = 4000,
    start: Annotated[
        Optional[str], typer.Option("--start", help="A model file whose veil estimate training starts from, "
                                    "instead of random weights: one trained for a network close to this one (such "
                                    "as one of those `average` took the mean of).", show_default=False)
    ] = None,
    val_split: Annotated[
        float, typer.Option("--val-split", min=0.0, max=0.9, help="Fraction of pairs held out for validation.")
    ] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the weights, the rain, the veils and the validation split.")] = 0,
    precision: PrecisionOption = "auto",
) -> None:
    """Add a whole-frame veil estimate to a trained model: it lifts the grey veil heavy rain leaves.

    The network stays as it is. It derains the training pairs and synthetic rain over
    them, some of it veiled, and a small second network learns from thumbnails of each
    frame before and after deraining how much grey haze heavy rain left over it; `folder`
    and `video` then lift that off each derained frame. Both are scored on the validation
    pairs, with and without the estimate, and saved together to --out. --start begins from
    another file's estimate; with --steps 0 that estimate is carried over as it is.
    """
    if out_path.suffix != ".keras":
        raise InputError(f"{out_path}: --out must end in .keras")
    checked = inspect_model(model)
    if int(checked.metadata.get("frames", 1)) != 1:
        raise InputError(f"{checked.path.name}: a veil estimate goes with a single-frame model; this one reads "
                         f"{checked.metadata['frames']} frames")
    if steps == 0 and start is None:
        raise InputError("--steps 0 trains nothing; it carries over the estimate of --start, which is missing")
    with quiet_native_stderr():
        from vidderain.data.patches import describe_data, load_training_data
        from vidderain.train.veil import VeilTraining, train_veil

        base = load_model(checked.path)
        begin = load_model(inspect_model(start).path) if start is not None else None
        if begin is not None and begin.veil is None:
            raise InputError(f"{begin.path.name}: --start needs a model file with a veil estimate; this one has none")
        resolved = resolve_precision(precision)
    err.print(f"loading {data_dir} ...")
    data = load_training_data(data_dir, val_split=val_split, seed=seed)
    err.print(describe_data(data), markup=False)
    _warn_if_validation_was_trained_on(checked, data.val_names)
    settings = VeilTraining(steps=steps, seed=seed)
    err.print(f"training a veil estimate for {checked.path.name} ({checked.metadata.get('arch', '?')}) on "
              f"{describe_device()}, the network deraining in {resolved.describe()}", markup=False)
    with progress("loss") as bars:
        images = bars.add_task("deraining", total=settings.images(len(data.train)) if steps else 0, loss="")
        task = bars.add_task("training", total=steps, loss="")

        def on_step(step: int, total: int, loss: float) -> None:
            bars.update(task, completed=step, loss=f"loss {loss:.4f}")

        report = train_veil(base, data, out_path, settings, precision=resolved,
                            on_image=lambda: bars.advance(images), on_step=on_step, start=begin)
    scores = (f"; validation {report.val_psnr:.2f} dB / {report.val_ssim:.4f} with it, {report.base_psnr:.2f} dB / "
              f"{report.base_ssim:.4f} without, veil lifted on {report.lifted} of {len(data.val)} pairs"
              if data.val else "")
    done = (f"trained the veil estimate in {report.seconds / 60:.1f} min" if steps else
            f"carried the veil estimate of {begin.path.name} over")
    out.print(f"{done}{scores}; model: {out_path}")


@command(name="average", after_stop="nothing was written; run it again")
def average_command(
    models: Annotated[
        list[str],
        typer.Argument(metavar="MODEL", help="Two or more .keras files of one network (bundled names work too), "
                       "fine-tuned from one start.", show_default=False),
    ],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The model file to write (.keras).", show_default=False)],
) -> None:
    """Average the weights of networks fine-tuned from one start (a model soup).

    Two legs trained from the same weights often average into a network that keeps
    something of each. Score the mean on your validation pairs (`folder` + `eval`) before
    using it; a veil estimate is added to it afterwards with `train-veil`.
    """
    if out_path.suffix != ".keras":
        raise InputError(f"{out_path}: --out must end in .keras")
    if len(models) < 2:
        raise InputError(f"average needs two or more models. Received: {len(models)}")
    checked = [inspect_model(model) for model in models]
    with quiet_native_stderr():
        from vidderain.train.average import average_models

        loaded = [load_model(file.path) for file in checked]
        try:
            network, metadata = average_models(loaded)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        save_model(network, out_path, metadata)
    out.print(f"averaged {len(loaded)} models of {metadata.get('arch', '?')}: {out_path}", markup=False)
