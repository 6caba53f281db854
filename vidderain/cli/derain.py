"""`vidderain folder` and `vidderain video`: derain files, locally or over a Ray cluster.

Both follow one rule for outputs that exist: a finished output is skipped with a
one-line note, and `--overwrite` redoes it. A video cut short resumes after its last
finished segment; `--overwrite` starts it again.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from vidderain.cli.application import EXIT_FAILED_FILES, command, err, out, progress
from vidderain.cli.options import (
    BatchOption,
    CodecOption,
    CompareOption,
    CrfOption,
    EnsembleOption,
    ModelOption,
    OverlapOption,
    PixFmtOption,
    PrecisionOption,
    PresetOption,
    SegmentOption,
    TileOption,
    check_model,
    describe,
    describe_window,
    encoder_choice,
    load_engine,
)
from vidderain.engine import TileSettings
from vidderain.errors import InputError
from vidderain.io.files import is_finished
from vidderain.io.video import is_video_path
from vidderain.jobs import folder as folder_job
from vidderain.jobs import video as video_job
from vidderain.jobs.cluster import ClusterInfo, derain_on_ray, import_ray
from vidderain.jobs.folder import FileResult, check_folder_job, derain_files, plan_folder
from vidderain.jobs.resume import SEGMENT_SECONDS
from vidderain.jobs.video import VideoOptions, check_video_job, derain_video
from vidderain.models import DEFAULT_MODEL, VIDEO_MODEL
from vidderain.temporal import WindowSpec

OverwriteOption = Annotated[bool, typer.Option("--overwrite", help="Redo outputs that are already there.")]


def _already_done(what: str, where: str = "") -> str:
    """The note for finished outputs that a run skips: `WHAT already done[ WHERE] (use --overwrite to redo)`."""
    return f"{what} already done{where} (use --overwrite to redo)"


@command(after_stop=folder_job.AFTER_A_STOP)
def folder(
    in_dir: Annotated[
        Path,
        typer.Argument(metavar="IN_DIR", help="Folder of rainy images (PNG, JPEG, BMP, TIFF, WebP) and videos.",
                       show_default=False, readable=False),  # checked by vidderain, which says so in one line
    ],
    out_dir: Annotated[
        Path, typer.Argument(metavar="OUT_DIR", help="Folder for the results: same names and formats.", show_default=False)
    ],
    model: ModelOption = DEFAULT_MODEL,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also process sub-folders, mirroring them.")] = False,
    overwrite: OverwriteOption = False,
    tile: TileOption = TileSettings.tile,
    overlap: OverlapOption = None,
    batch: BatchOption = TileSettings.batch,
    ensemble: EnsembleOption = TileSettings.ensemble,
    codec: CodecOption = None,
    crf: CrfOption = None,
    preset: PresetOption = None,
    pix_fmt: PixFmtOption = None,
    compare: CompareOption = None,
    segment: SegmentOption = SEGMENT_SECONDS,
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
    A temporal model (--model temporal) reads each folder's images as the frames of one
    clip, in name order (frame2 before frame10), and derains each with its neighbours.
    Finished results are skipped (one line says how many); --overwrite redoes them. A
    video cut short resumes after its last finished segment. A
    file that fails is reported and skipped; the exit code is 1 if any failed. With
    --ray, Ray workers derain whole files, each written atomically to OUT_DIR, which
    every machine must see at the same path.
    """
    video_options = VideoOptions(encoder=encoder_choice(codec, crf, preset, pix_fmt), compare=compare, segment=segment,
                                 resume=not overwrite)
    video_options.check()  # before the folder is read, whether or not it holds videos
    if workers is not None and ray_address is None:
        raise InputError("--workers needs --ray (local runs use one process)")
    if ray_address is not None:
        import_ray()  # missing Ray is a one-line hint before any work

    plan = plan_folder(in_dir, out_dir, recursive=recursive, overwrite=overwrite)
    for line in plan.unreadable:
        err.print(f"[red]failed[/] {escape(line)}")
    if plan.skipped:
        err.print(_already_done(str(len(plan.skipped)), f" in {out_dir}"), markup=False)
    if not plan.todo:
        if plan.unreadable:
            raise typer.Exit(EXIT_FAILED_FILES)
        if not plan.skipped:
            raise InputError(f"{in_dir}: no images found" + ("" if recursive else " (use --recursive for sub-folders)"))
        return
    check_folder_job(plan, video_options)  # encoder settings for its videos, before the model takes seconds to load
    engine, window, network = None, None, None
    if ray_address is None:
        engine, window, network = load_engine(model, tile, overlap, batch, ensemble, precision)
        if line := _frames_of_clips(window, plan.todo):
            err.print(line, markup=False)
    started = time.monotonic()
    with progress("rate") as bars:
        overall = bars.add_task("files", total=len(plan.todo), rate="")
        clips: dict[Path, tuple[int, float, int]] = {}

        def on_result(result: FileResult) -> None:
            if not result.ok:
                bars.console.print(f"[red]failed[/] {escape(result.error)}")
            for note in result.notes:
                bars.console.print(f"note: {note}", markup=False)
            if result.source in clips:
                bars.remove_task(clips.pop(result.source)[0])
            bars.update(overall, advance=1)
            done = bars.tasks[overall].completed
            bars.update(overall, rate=f"{done / (time.monotonic() - started):.2f} files/s")

        def on_frame(source: Path, done: int, total: Optional[int]) -> None:
            if source not in clips:  # a resumed video's first call is the frames done before
                task = bars.add_task(f"  {escape(source.name)}", total=total, rate="")
                clips[source] = (task, time.monotonic(), done)
            task, clip_started, resumed_at = clips[source]
            rate = (done - resumed_at) / max(time.monotonic() - clip_started, 1e-9)
            bars.update(task, completed=done, total=total, rate=f"{rate:.2f} frames/s")

        def on_note(source: Path, line: str) -> None:
            bars.console.print(f"{source}: {line}", markup=False)

        finished = [source for source, _ in plan.skipped]  # a temporal model reads them as neighbours
        if engine is not None:
            results = derain_files(engine, plan.todo, video_options, on_result=on_result, on_frame=on_frame,
                                   window=window, network=network, on_note=on_note, neighbours=finished)
        else:
            results = _derain_on_ray(ray_address, workers, model, tile, overlap, batch, ensemble, precision,
                                     plan.todo, finished, video_options, on_result, bars.console)
    failures = len([r for r in results if not r.ok]) + len(plan.unreadable)
    done = len([r for r in results if r.ok])
    summary = f"{done} derained, {failures} failed, {len(plan.skipped)} skipped, in {time.monotonic() - started:.1f} s"
    (err if failures else out).print(summary)
    if failures:
        raise typer.Exit(EXIT_FAILED_FILES)


def _derain_on_ray(address: str, workers: Optional[int], model: str, tile: int, overlap: Optional[int], batch: int,
                   ensemble: bool, precision: str, todo: list[tuple[Path, Path]], finished: list[Path],
                   video_options: VideoOptions, on_result, console: Console) -> list[FileResult]:
    """Run a folder job's files on Ray workers; the driver loads no model and no TensorFlow."""
    # One error here, not one per worker.
    checked, settings = check_model(model, tile, overlap, batch, ensemble, precision)

    window = WindowSpec.from_metadata(checked.metadata)

    def on_start(info: ClusterInfo) -> None:
        console.print(f"model {checked.path.name} ({checked.metadata.get('arch', '?')}) on {info.describe()} in "
                      f"{info.precision.describe()}, {describe(settings)}{describe_window(window)}", markup=False)
        if line := _frames_of_clips(window, todo):
            console.print(line, markup=False)

    return derain_on_ray(checked.path, settings, todo, video_options, address=address, workers=workers,
                         on_result=on_result, on_start=on_start, precision=precision, finished=finished)


def _frames_of_clips(window: WindowSpec, todo: list[tuple[Path, Path]]) -> Optional[str]:
    """The line that says how a temporal model reads a folder's images, or None when it reads none."""
    if window.frames == 1 or all(is_video_path(source) for source, _ in todo):
        return None
    return (f"each folder's images are read as the frames of one clip, in name order: each frame is derained with "
            f"the {window.radius} before and after it (photos: --model default)")


def _fraction(text: Optional[str]) -> Optional[Fraction]:
    if text is None:
        return None
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--fps must be a number or a ratio such as 30000/1001. Received: {text!r}") from None


@command(after_stop=video_job.AFTER_A_STOP)
def video(
    in_path: Annotated[
        Path,
        typer.Argument(metavar="IN", help="A video file, or a folder of numbered frames (with --fps).",
                       show_default=False, readable=False),  # checked by vidderain, which says so in one line
    ],
    out_path: Annotated[
        Path, typer.Argument(metavar="OUT", help="The video to write; its extension picks the container.",
                             show_default=False)
    ],
    model: ModelOption = VIDEO_MODEL,
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
    overwrite: OverwriteOption = False,
    precision: PrecisionOption = "auto",
    segment: SegmentOption = SEGMENT_SECONDS,
) -> None:
    """Derain a video, keeping every frame, its timing, rotation, audio, subtitles and bit depth.

    The bundled `temporal` model derains each frame from it and its neighbours, aligned to
    it; `--model default` derains each frame alone, about 1.5x faster, and removes less rain.

    The video is written in segments to a hidden folder beside OUT, then joined and
    renamed to OUT when complete, so an interrupted run leaves no half-written OUT; it
    keeps the finished segments, and a re-run resumes after the last of them. An OUT
    that is already there is skipped with a note; --overwrite redoes it (and discards
    the segments of a stopped run).
    """
    options = VideoOptions(encoder=encoder_choice(codec, crf, preset, pix_fmt), start=start, duration=duration,
                           compare=compare, fps=_fraction(fps), segment=segment, resume=not overwrite)
    check_video_job(in_path, out_path, options)  # before the model takes seconds to load
    if is_finished(out_path) and not overwrite:
        err.print(_already_done(f"{out_path}:"), markup=False)
        return
    engine, window, network = load_engine(model, tile, overlap, batch, ensemble, precision)
    started = time.monotonic()
    resumed_at = []  # the first progress call's frames: those a stopped run finished
    with progress("rate") as bars:
        task = bars.add_task(escape(in_path.name), total=None, rate="")

        def on_progress(done: int, total: Optional[int]) -> None:
            if not resumed_at:
                resumed_at.append(done)
            rate = (done - resumed_at[0]) / max(time.monotonic() - started, 1e-9)
            bars.update(task, completed=done, total=total, rate=f"{rate:.2f} frames/s")

        def on_note(line: str) -> None:
            bars.console.print(line, markup=False)

        notes = derain_video(engine, in_path, out_path, options, on_progress=on_progress, window=window,
                             network=network, on_note=on_note)
    for note in notes:
        err.print(f"note: {note}", markup=False)
    frames = bars.tasks[task].completed - (resumed_at[0] if resumed_at else 0)
    seconds = time.monotonic() - started
    out.print(f"{int(frames)} frames derained in {seconds:.1f} s ({frames / max(seconds, 1e-9):.2f} frames/s): {out_path}",
              markup=False)
