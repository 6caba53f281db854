"""The `vidderain` command line: parses, wires library calls together and reports.

Every error a user can cause ends in one line on stderr and a non-zero exit code;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the terminal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from vidderain import __version__
from vidderain.engine import TileSettings
from vidderain.errors import DiskFullError, InputError, SettingError, VidderainError, first_line
from vidderain.precision import resolve_precision
from vidderain.interrupts import STOP_EXIT_CODES, exit_code, signal_name, stop_signals_raise

# A stop signal exits with 128 + its number (`vidderain.interrupts.exit_code`): 130 for Ctrl-C, 143 for SIGTERM.
EXIT_FAILED_FILES, EXIT_USAGE = 1, 2

app = typer.Typer(
    name="vidderain",
    help="Remove rain from videos and image folders with a trained network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}
PRECISION_HELP = ("auto, float32 or bfloat16. auto runs the network in bfloat16 where the hardware has it natively "
                  "(a GPU of compute capability 8.0 or more; a CPU listing amx_bf16 or avx512_bf16), float32 elsewhere.")


def _is_out_of_memory(exc: Exception) -> bool:
    # TensorFlow raises ResourceExhaustedError ("OOM when allocating ..."), JAX an
    # XlaRuntimeError with RESOURCE_EXHAUSTED / "out of memory"; numpy a MemoryError.
    text = str(exc)
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError"
            or re.search(r"\bOOM\b|RESOURCE_EXHAUSTED|out of memory", text, re.IGNORECASE) is not None)


def command(fn: Callable | None = None, *, name: str | None = None) -> Callable:
    """Register `fn` as a command whose errors end in one line on stderr and an exit code."""
    if fn is None:
        return functools.partial(command, name=name)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            # SIGTERM and SIGHUP unwind like Ctrl-C, through every `finally` that cleans up.
            with stop_signals_raise():
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt as exc:
            err.print(f"interrupted ({signal_name(exc)}); finished outputs are kept and a re-run continues")
            raise typer.Exit(exit_code(exc)) from None
        except Exception as exc:
            if _state["debug"]:
                err.print_exception()
            if isinstance(exc, VidderainError):
                message = exc.worded(_flag(exc.parameter)) if isinstance(exc, SettingError) else str(exc)
                err.print(f"error: {message}", markup=False)
                raise typer.Exit(EXIT_FAILED_FILES if isinstance(exc, DiskFullError) else EXIT_USAGE) from None
            if _is_out_of_memory(exc):
                err.print("error: out of memory; try a smaller --tile or --batch", markup=False)
            else:
                err.print(f"error: {type(exc).__name__}: {first_line(exc)} (--debug shows details)", markup=False)
            raise typer.Exit(EXIT_FAILED_FILES) from None

    return app.command(name)(run)


_FLAGS = {"address": "--ray", "width": "--size", "height": "--size"}  # library parameters named otherwise here


def _flag(parameter: str) -> str:
    return _FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what native libraries write to stderr (TensorFlow's start-up logs) unless --debug."""
    if _state["debug"]:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _version(value: bool) -> None:
    if value:
        out.print(f"vidderain {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
) -> None:
    """Remove rain from videos and image folders with a trained network."""
    _state["debug"] = debug


# Shared options ----------------------------------------------------------------------

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="A bundled model name (see `vidderain models`) or a path to a .keras file.")
]
TileOption = Annotated[
    int,
    typer.Option(
        "--tile",
        min=0,
        help="Longest tile side in pixels, a multiple of the model's stride; frames that fit run whole, "
        "larger ones are cut into the fewest equal tiles. 0 runs every frame whole.",
    ),
]
OverlapOption = Annotated[
    Optional[int],
    typer.Option("--overlap", min=0, help="Pixels shared by neighbouring tiles, blended smoothly. [default: the model's]"),
]
BatchOption = Annotated[int, typer.Option("--batch", min=1, help="Tiles per network call (tiles of several frames share a batch).")]
EnsembleOption = Annotated[
    bool,
    typer.Option("--ensemble", help="Also derain each frame mirrored left to right and average the two results: "
                 "cleaner, at twice the network time (measured in models/README.md)."),
]
CodecOption = Annotated[
    Optional[str],
    typer.Option("--codec", help="Video encoder: libx264, libx265, libvpx-vp9, libsvtav1, prores_ks ... [default: libx264; libvpx-vp9 for .webm]"),
]
CrfOption = Annotated[Optional[int], typer.Option("--crf", min=0, max=63, help="Video quality, lower is better; 0 is lossless. [default: 18]")]
PresetOption = Annotated[Optional[str], typer.Option("--preset", help="Video encoder speed/size preset. [default: medium]")]
PixFmtOption = Annotated[Optional[str], typer.Option("--pix-fmt", help="Stored video pixel format. [default: yuv420p]")]
PrecisionOption = Annotated[str, typer.Option("--precision", help=PRECISION_HELP)]
CompareOption = Annotated[
    Optional[str], typer.Option("--compare", help="'side' puts input and result side by side; 'split' shows the input left of a split line (moving, in videos).")
]


def _encoder(codec: Optional[str], crf: Optional[int], preset: Optional[str], pix_fmt: Optional[str]):
    """The encoder settings asked for; `encoder_for` fills in the rest for each output."""
    from vidderain.io.video import EncoderChoice

    return EncoderChoice(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt)


def _settings(tile: int, overlap: Optional[int], batch: int, ensemble: bool, model) -> TileSettings:
    """The engine settings asked for, checked against the model (`models.ModelFile` or `LoadedModel`)."""
    from vidderain.engine import check_settings

    settings = TileSettings(tile=tile, overlap=model.overlap if overlap is None else overlap, batch=batch,
                            ensemble=ensemble)
    try:
        check_settings(settings, model.stride)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return settings


def _describe(settings: TileSettings) -> str:
    return (f"tile {settings.tile or 'whole frame'}, overlap {settings.overlap}, batch {settings.batch}"
            + (", mirrored ensemble" if settings.ensemble else ""))


def _engine(model_name: str, tile: int, overlap: Optional[int], batch: int, ensemble: bool, precision: str):
    from vidderain.models import resolve_model
    from vidderain.precision import check_precision

    resolve_model(model_name)  # a wrong name fails before TensorFlow takes seconds to start
    check_precision(precision)
    with _quiet_native_stderr():
        from vidderain.devices import describe_device
        from vidderain.engine import Engine
        from vidderain.models import load_model
        from vidderain.precision import at_precision

        loaded = load_model(model_name)
        device = describe_device()
        chosen = resolve_precision(precision)
        network = at_precision(loaded.model, chosen)
    settings = _settings(tile, overlap, batch, ensemble, loaded)
    err.print(f"model {loaded.path.name} ({loaded.metadata.get('arch', '?')}) on {device} in {chosen.describe()}, "
              f"{_describe(settings)}", markup=False)
    return Engine(network, loaded.stride, settings)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
    )


# Commands ----------------------------------------------------------------------------


@command
def folder(
    in_dir: Annotated[
        Path,
        typer.Argument(help="Folder of rainy images (PNG, JPEG, BMP, TIFF, WebP) and videos.", show_default=False,
                       readable=False),  # checked by vidderain, which says so in one line
    ],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the results: same names and formats.", show_default=False)],
    model: ModelOption = "default",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also process sub-folders, mirroring them.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo images whose result already exists.")] = False,
    tile: TileOption = TileSettings.tile,
    overlap: OverlapOption = None,
    batch: BatchOption = TileSettings.batch,
    ensemble: EnsembleOption = TileSettings.ensemble,
    codec: CodecOption = None,
    crf: CrfOption = None,
    preset: PresetOption = None,
    pix_fmt: PixFmtOption = None,
    compare: CompareOption = None,
    ray_address: Annotated[
        Optional[str],
        typer.Option("--ray", metavar="ADDRESS", help="Spread whole files over a Ray cluster: its address "
                     "(auto, ray://host:10001), or 'local' to start one here. Needs `pip install 'vidderain[ray]'`."),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", min=1, help="Ray workers, each loading the model once. "
                     "[default: one per GPU of the cluster, else one per machine]"),
    ] = None,
    precision: PrecisionOption = "auto",
) -> None:
    """Derain every image and video in IN_DIR into OUT_DIR.

    Grayscale stays grayscale, alpha is kept untouched, 16-bit PNG/TIFF stay 16-bit and
    JPEGs come out upright; videos keep every frame, their timing, audio and rotation.
    Finished results are skipped on a re-run. A file that fails is reported and skipped;
    the exit code is 1 if any failed. With --ray, Ray workers derain whole files, each
    written atomically to OUT_DIR, which every machine must see at the same path.
    """
    from vidderain.jobs.folder import FileResult, derain_files, plan_folder
    from vidderain.jobs.video import VideoOptions

    video_options = VideoOptions(encoder=_encoder(codec, crf, preset, pix_fmt), compare=compare)
    video_options.check()
    if workers is not None and ray_address is None:
        raise InputError("--workers needs --ray (local runs use one process)")
    if ray_address is not None:
        from vidderain.jobs.cluster import import_ray

        import_ray()  # missing Ray is a one-line hint before any work

    plan = plan_folder(in_dir, out_dir, recursive=recursive, overwrite=overwrite)
    for line in plan.unreadable:
        err.print(f"[red]failed[/] {escape(line)}")
    if plan.skipped:
        err.print(f"{len(plan.skipped)} already done in {out_dir} (use --overwrite to redo)", markup=False)
    if not plan.todo:
        if plan.unreadable:
            raise typer.Exit(EXIT_FAILED_FILES)
        if not plan.skipped:
            raise InputError(f"{in_dir}: no images found" + ("" if recursive else " (use --recursive for sub-folders)"))
        return
    engine = _engine(model, tile, overlap, batch, ensemble, precision) if ray_address is None else None
    started = time.monotonic()
    with _progress() as progress:
        overall = progress.add_task("files", total=len(plan.todo), rate="")
        clips: dict[Path, tuple[int, float]] = {}

        def on_result(result: FileResult) -> None:
            if not result.ok:
                progress.console.print(f"[red]failed[/] {escape(result.error)}")
            for note in result.notes:
                progress.console.print(f"note: {note}", markup=False)
            if result.source in clips:
                progress.remove_task(clips.pop(result.source)[0])
            progress.update(overall, advance=1)
            done = progress.tasks[overall].completed
            progress.update(overall, rate=f"{done / (time.monotonic() - started):.2f} files/s")

        def on_frame(source: Path, done: int, total: Optional[int]) -> None:
            if source not in clips:
                clips[source] = (progress.add_task(f"  {escape(source.name)}", total=total, rate=""), time.monotonic())
            task, clip_started = clips[source]
            rate = done / max(time.monotonic() - clip_started, 1e-9)
            progress.update(task, completed=done, total=total, rate=f"{rate:.2f} frames/s")

        if ray_address is None:
            results = derain_files(engine, plan.todo, video_options, on_result=on_result, on_frame=on_frame)
        else:
            results = _derain_on_ray(ray_address, workers, model, tile, overlap, batch, ensemble, precision, plan.todo,
                                     video_options, on_result, progress.console)
    failures = len([r for r in results if not r.ok]) + len(plan.unreadable)
    done = len([r for r in results if r.ok])
    summary = f"{done} derained, {failures} failed, {len(plan.skipped)} skipped, in {time.monotonic() - started:.1f} s"
    (err if failures else out).print(summary)
    if failures:
        raise typer.Exit(EXIT_FAILED_FILES)


def _derain_on_ray(address, workers, model_name, tile, overlap, batch, ensemble, precision, todo, video_options,
                   on_result, console):
    """Run a folder job's files on Ray workers; the driver loads no model and no TensorFlow."""
    from vidderain.jobs.cluster import derain_on_ray
    from vidderain.models import inspect_model
    from vidderain.precision import check_precision

    checked = inspect_model(model_name)  # a bad model is one error here, not one per worker
    settings = _settings(tile, overlap, batch, ensemble, checked)
    check_precision(precision)

    def on_start(info) -> None:
        console.print(f"model {checked.path.name} ({checked.metadata.get('arch', '?')}) on {info.describe()} in "
                      f"{info.precision.describe()}, {_describe(settings)}", markup=False)

    return derain_on_ray(checked.path, settings, todo, video_options, address=address, workers=workers,
                         on_result=on_result, on_start=on_start, precision=precision)


def _fraction(text: Optional[str]) -> Optional[Fraction]:
    if text is None:
        return None
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--fps must be a number or a ratio such as 30000/1001. Received: {text!r}") from None


@command
def video(
    in_path: Annotated[
        Path,
        typer.Argument(help="A video file, or a folder of numbered frames (with --fps).", show_default=False,
                       readable=False),  # checked by vidderain, which says so in one line
    ],
    out_path: Annotated[
        Path, typer.Argument(help="The video to write; its extension picks the container.", show_default=False)
    ],
    model: ModelOption = "default",
    tile: TileOption = TileSettings.tile,
    overlap: OverlapOption = None,
    batch: BatchOption = TileSettings.batch,
    ensemble: EnsembleOption = TileSettings.ensemble,
    codec: CodecOption = None,
    crf: CrfOption = None,
    preset: PresetOption = None,
    pix_fmt: PixFmtOption = None,
    compare: CompareOption = None,
    start: Annotated[Optional[float], typer.Option("--start", min=0, help="Seconds to skip at the start.")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", min=0, help="Seconds to process.")] = None,
    fps: Annotated[Optional[str], typer.Option("--fps", help="Frame rate of a folder of frames, e.g. 25 or 30000/1001.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
    precision: PrecisionOption = "auto",
) -> None:
    """Derain a video, keeping every frame, its timing, rotation, audio and subtitles.

    The output is written to a temporary name beside OUT and renamed when complete,
    so an interrupted run leaves no half-written OUT.
    """
    from vidderain.jobs.video import VideoOptions, check_video_job, derain_video

    encoder = _encoder(codec, crf, preset, pix_fmt)
    options = VideoOptions(encoder=encoder, start=start, duration=duration, compare=compare, fps=_fraction(fps))
    check_video_job(in_path, out_path, options)  # before the model takes seconds to load
    if out_path.exists() and not overwrite:
        raise InputError(f"{out_path}: exists; use --overwrite to replace it")
    engine = _engine(model, tile, overlap, batch, ensemble, precision)
    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task(escape(in_path.name), total=None, rate="")

        def on_progress(done: int, total: Optional[int]) -> None:
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=done, total=total, rate=f"{rate:.2f} frames/s")

        notes = derain_video(engine, in_path, out_path, options, on_progress=on_progress)
    for note in notes:
        err.print(f"note: {note}", markup=False)
    frames = progress.tasks[task].completed
    seconds = time.monotonic() - started
    out.print(f"{int(frames)} frames derained in {seconds:.1f} s ({frames / max(seconds, 1e-9):.2f} frames/s): {out_path}",
              markup=False)


@command(name="eval")
def evaluate(
    pred_dir: Annotated[Path, typer.Argument(help="Folder of derained images.", show_default=False)],
    clean_dir: Annotated[Path, typer.Argument(help="Folder of clean ground-truth images, paired by name.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of a table.")] = False,
) -> None:
    """Score derained images against clean ones: mean PSNR and SSIM on MATLAB luma.

    This is the deraining literature's protocol (Y of rgb2ycbcr, data range 1, SSIM with an
    11x11 Gaussian window), so the numbers compare with published tables.
    """
    from vidderain.jobs.evaluate import evaluate_folders

    report = evaluate_folders(pred_dir, clean_dir)
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(f"{report['count']} pairs: PSNR {report['psnr']:.3f} dB, SSIM {report['ssim']:.4f} (MATLAB luma)")


@command
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the bundled models with what their files record about them."""
    from vidderain.models import bundled_models, read_metadata

    found = {name: read_metadata(path) for name, path in bundled_models().items()}
    if as_json:
        out.print_json(json.dumps(found))
        return
    if not found:
        out.print("No bundled models are installed; train one with `vidderain train` and pass it with --model.")
        return
    table = Table(title="bundled models")
    for column in ("name", "architecture", "parameters", "MACs/pixel", "stride", "val PSNR", "val SSIM", "steps"):
        table.add_column(column, no_wrap=True)
    for name, meta in found.items():
        table.add_row(
            name,
            meta.get("arch", "?"),
            f"{meta['parameters']:,}" if "parameters" in meta else "?",
            f"{meta['macs_per_pixel'] / 1000:.0f} k" if "macs_per_pixel" in meta else "?",
            str(meta.get("stride", "?")),
            f"{meta['val_psnr']:.2f} dB" if meta.get("val_psnr") else "-",
            f"{meta['val_ssim']:.4f}" if meta.get("val_ssim") else "-",
            str(meta.get("step", "?")),
        )
    out.print(table)
    for name, meta in found.items():
        out.print(f"{name}: trained on {meta.get('data', '?')}", markup=False)


@command
def train(
    data_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder with a rainy and a clean folder (rain/norain, rainy/clean, input/target or "
            "rainy_image/ground_truth); with --synthesize, a folder of clean images.",
            show_default=False,
        ),
    ],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The model file to write (.keras).", show_default=False)],
    arch: Annotated[str, typer.Option("--arch", help="Network to train: default or paper.")] = "default",
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
        str, typer.Option("--augment", help="flip (left-right mirrors) or flip+rot90 (also quarter turns, "
                          "which lay near-vertical rain across: measured worse on Rain100L).")
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
    precision: PrecisionOption = "auto",
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
    with _quiet_native_stderr():
        from vidderain.data import describe_data, load_training_data
        from vidderain.devices import describe_device
        from vidderain.distribution import pick_distribution
        from vidderain.synth import RAIN_PRESETS
        from vidderain.train import Trainer, TrainSettings

        # First: a multi-worker strategy must exist before TensorFlow's runtime starts.
        distribution = pick_distribution()
        device = describe_device()

    settings = TrainSettings(arch=arch, steps=steps or TrainSettings.steps, batch=batch, patch=patch, lr=lr, warmup=warmup, loss=loss,
                             val_every=val_every, seed=seed, augment=augment, rain_mix=rain_mix, rain=rain,
                             extra_clean=str(extra_clean) if extra_clean is not None else None)
    if resume:
        saved = Trainer.saved_settings(out_path)
        if saved is None:
            raise InputError(f"{out_path}: no checkpoint to resume from (looked in {out_path.stem}.run/)")
        settings = dataclasses.replace(saved, steps=steps or saved.steps)
    settings.check()
    distribution.check_batch(settings.batch)
    with _quiet_native_stderr():
        resolved = resolve_precision(precision)
    err.print(f"loading {data_dir} ...")
    data = load_training_data(data_dir, val_dir=val_dir, val_split=val_split, seed=settings.seed, synthesize=synthesize,
                              rain_mix=settings.rain_mix, extra_clean=settings.extra_clean,
                              rain=RAIN_PRESETS[settings.rain])
    err.print(describe_data(data), markup=False)
    err.print(f"training {settings.arch} on {device} in {resolved.describe()}, {distribution.describe()}", markup=False)
    with _progress_training() as progress:
        task = progress.add_task("training", total=settings.steps, loss="", rate="", val="")

        def on_progress(p) -> None:
            val = f"val {p.val_psnr:.2f} dB" if p.val_psnr is not None else ""
            progress.update(task, completed=p.step, loss=f"loss {p.loss:.4f}", rate=f"{p.steps_per_second:.2f} it/s", val=val)

        trainer = Trainer(settings, data.train, data.val, out_path, describe_data(data),
                          val_names=data.val_names, synthesize=data.synthesize, on_progress=on_progress,
                          distribution=distribution, extra_clean=data.extra, clean_only=data.clean_only,
                          precision=resolved)
        try:
            summary = trainer.fit(resume=resume)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (`vidderain.interrupts`)
            err.print(f"interrupted ({signal_name(exc)}); {trainer.resume_hint()}", markup=False)
            raise typer.Exit(exit_code(exc)) from None
    best = f", best validation {summary['best_psnr']:.2f} dB / {summary['best_ssim']:.4f} at step {summary['best_step']}" \
        if summary.get("best_psnr") is not None else ""
    written = f"model: {out_path}" if distribution.is_chief else "the chief writes the model"
    out.print(f"trained {summary['step']} steps in {summary['wall_seconds'] / 60:.1f} min{best}; {written}")


def _progress_training() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[val]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
    )


def _frame_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise InputError(f"--size must be WIDTHxHEIGHT, e.g. 1920x1080. Received: {text!r}")
    return int(width), int(height)


@command
def bench(
    model: ModelOption = "default",
    size: Annotated[str, typer.Option("--size", help="Frame size of the generated clip, WIDTHxHEIGHT.")] = "640x360",
    frames: Annotated[int, typer.Option("--frames", min=2, help="Frames in the clip; the memory figure also runs 4x as many.")] = 24,
    tile: TileOption = TileSettings.tile,
    overlap: OverlapOption = None,
    batch: BatchOption = TileSettings.batch,
    precision: PrecisionOption = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of a table.")] = False,
) -> None:
    """Measure speed and memory on a rainy clip drawn for the purpose, against targets.

    In one run and on the same frames: (1) the engine alone, (2) the `video` job end to
    end, as a ratio to (1), (3) the obvious per-frame loop with the same model (float32,
    as loaded), (4) one frame tiled against whole, (5) the network's FLOP/s against a
    dense matrix multiply's, (6) peak memory of `vidderain video` on the clip and on one
    4x as long, (7) the network at the chosen precision against float32.
    """
    from vidderain.models import resolve_model
    from vidderain.precision import check_precision

    width, height = _frame_size(size)
    resolve_model(model)  # a wrong name fails before TensorFlow takes seconds to start
    check_precision(precision)
    with _quiet_native_stderr():
        from vidderain.jobs.bench import TARGETS, BenchSettings, run_bench
        from vidderain.devices import describe_device
        from vidderain.models import load_model

        loaded = load_model(model)
        device = describe_device()
        chosen = resolve_precision(precision)
    settings = BenchSettings(width=width, height=height, frames=frames,
                             tiles=_settings(tile, overlap, batch, False, loaded), precision=chosen)
    try:
        settings.check()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    err.print(f"benchmarking {loaded.path.name} on {device} in {chosen.describe()}", markup=False)
    result = run_bench(loaded, settings, on_stage=lambda text: err.print(f"  {text}", markup=False))
    passed = result.passed()
    if as_json:
        out.print_json(json.dumps({**dataclasses.asdict(result), "targets": TARGETS, "passed": passed}))
        return

    def row(figure: str, measured: str, name: str | None = None, ratio: str = "") -> str:
        if name is None:
            return f"{figure:<34} {measured}"
        bound, target = TARGETS[name]
        goal = f"{'<=' if bound == 'max' else '>='} {target:g}"
        return f"{figure:<34} {measured:<36} {ratio:>8}  {goal:<8} {'pass' if passed[name] else 'FAIL'}"

    r = result
    plan = f"{r.tiles_per_frame} tile{'s' if r.tiles_per_frame > 1 else ''} of {r.tile_width}x{r.tile_height}"
    lines = [
        (f"{r.frames} frames of {r.width}x{r.height}; tile {r.tile or 'whole frame'} ({plan}), overlap {r.overlap}, "
         f"batch {r.batch}; {r.device}; {r.precision}"),
        row("figure", f"{'measured':<36} {'ratio':>8}  {'target':<8} result"),
        row("1 engine compute", f"{r.compute_megapixels_per_second:.3f} MP/s, {r.frames / r.compute_seconds:.2f} frames/s"),
        row("2 `video` end to end / compute", f"{r.video_frames_per_second:.2f} frames/s", "video_over_compute",
            f"{r.video_over_compute:.3f}"),
        row("3 speed-up over the obvious loop", f"loop {r.frames / r.loop_seconds:.2f} frames/s", "speedup_over_loop",
            f"{r.speedup_over_loop:.3f}x"),
        row("4 tiling overhead, one frame", f"{r.tiled_frame_seconds:.3f} s tiled, {r.whole_frame_seconds:.3f} s whole",
            "tiling_overhead", f"{r.tiling_overhead:+.1%}"),
        row("5 network / dense matmul", f"{r.network_gflops:.1f} / {r.matmul_gflops:.1f} GFLOP/s", "fraction_of_matmul",
            f"{r.fraction_of_matmul:.0%}"),
        row("6 peak RSS, 4x clip / clip", f"{r.peak_rss_long_mb:.0f} / {r.peak_rss_mb:.0f} MB", "memory_ratio",
            f"{r.memory_ratio:.3f}"),
        row("7 network at its precision / float32",
            f"{r.compute_seconds:.2f} s against {r.float32_compute_seconds:.2f} s: {r.precision_speedup:.2f}x"),
    ]
    for line in lines:
        out.print(line, markup=False)


# Entry point -------------------------------------------------------------------------


def main() -> None:
    """Run the `vidderain` command."""
    try:
        app()
    except SystemExit as exc:
        if exc.code in STOP_EXIT_CODES:
            # Stopped by a signal, after every `finally` has removed temporary files and
            # ended ffmpeg: exit now. The ML backend's own teardown at interpreter exit
            # holds nothing of ours and took 2-3.5 s on the development machine, which
            # a stop that must be prompt (a service manager waits, then kills) cannot spend.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code)
        raise
