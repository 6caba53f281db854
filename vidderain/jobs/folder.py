"""Derain a folder of images (and find its videos): plan the work, stream it through the engine.

Reading runs in a background thread, the network in the caller's thread and
encoding in another background thread, with bounded queues between them. A file
that cannot be read or written is reported and skipped; the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidderain.jobs.compare import compose
from vidderain.engine import Engine
from vidderain.errors import DiskFullError, InputError
from vidderain.io.files import (
    check_output_folder,
    check_output_location,
    check_readable_folder,
    is_finished,
    is_partial,
    is_working_folder,
    make_output_folder,
)
from vidderain.io.images import is_image_path, read_image, write_image
from vidderain.io.video import is_video_path
from vidderain.jobs.resume import NetworkIdentity
from vidderain.jobs.video import RERUN_OF_A_STOPPED_VIDEO, VideoOptions, derain_video
from vidderain.jobs.windows import SINGLE_FRAME, check_window
from vidderain.pipeline import BackgroundWorker, prefetch
from vidderain.pixels import Layout, merge_rgb, split_rgb
from vidderain.temporal import WindowSpec


# What a stopped folder job leaves and what a re-run does, for the user.
AFTER_A_STOP = ("finished files are kept and a re-run skips them; for a video cut short, a re-run "
                f"{RERUN_OF_A_STOPPED_VIDEO}")


@dataclass(frozen=True)
class FolderPlan:
    """The files of a folder job.

    Attributes:
        todo: (source, destination) pairs to process, in a stable order.
        skipped: finished destinations, kept as they are (`overwrite` redoes them).
        unreadable: one line for each sub-folder that could not be listed (no permission),
            so its files are not silently left out. Defaults to none.
    """

    todo: list[tuple[Path, Path]]
    skipped: list[Path]
    unreadable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FileResult:
    """The outcome for one file: `error` is None on success, else one line saying why.

    `notes` are lines worth telling about a success (a truncated video whose decodable
    frames were derained, a stream left out).
    """

    source: Path
    destination: Path
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


def _walk(folder: Path, recursive: bool, exclude: Path, unreadable: list[str]) -> Iterator[Path]:
    # Symlinked sub-folders are followed, but each real folder is entered once, so a
    # link back up the tree (a loop) ends instead of recursing forever.
    seen: set[tuple[int, int]] = set()

    def first_visit(path: Path) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False  # a dangling link: nothing to enter
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return False
        seen.add(key)
        return True

    def onerror(exc: OSError) -> None:
        unreadable.append(f"{exc.filename}: cannot be listed ({exc.strerror or exc})")

    first_visit(folder)
    for root, dirs, files in os.walk(folder, onerror=onerror, followlinks=recursive):
        root_path = Path(root)
        if recursive:
            # A video's working folder holds segments of an output, never inputs.
            dirs[:] = sorted(d for d in dirs if not is_working_folder(d) and first_visit(root_path / d)
                             and not _inside(root_path / d, exclude))
        else:
            dirs[:] = []
        for name in sorted(files):
            yield root_path / name


def plan_folder(in_dir: Path, out_dir: Path, recursive: bool = False, overwrite: bool = False) -> FolderPlan:
    """List the images and videos of `in_dir` and where their results go under `out_dir`.

    Args:
        in_dir: Path. The folder to read; never written to.
        out_dir: Path. Results keep their path relative to `in_dir`, name and format.
            It may lie inside `in_dir`; it is then never read as input.
        recursive: bool. Also process sub-folders. Defaults to False.
        overwrite: bool. Redo files whose result already exists. Defaults to False.

    Raises:
        InputError: `in_dir` is not a readable folder, or `out_dir` would overwrite the
            input, is a file, or cannot be written to.
    """
    check_readable_folder(in_dir)
    check_output_location(in_dir, out_dir)
    check_output_folder(out_dir)
    exclude = out_dir.resolve()
    todo, skipped, unreadable = [], [], []
    for source in _walk(in_dir, recursive, exclude, unreadable):
        if not (is_image_path(source) or is_video_path(source)) or is_partial(source) or source.name.startswith("."):
            continue
        if _inside(source, exclude):  # a link to an earlier result is not an input
            continue
        destination = out_dir / source.relative_to(in_dir)
        if is_finished(destination) and not overwrite:
            skipped.append(destination)
        else:
            todo.append((source, destination))
    return FolderPlan(todo=todo, skipped=skipped, unreadable=unreadable)


def check_folder_job(plan: FolderPlan, options: VideoOptions) -> None:
    """Refuse encoder settings that cannot write the videos of `plan`, before a model is loaded.

    `options.check()`, which needs no plan, comes first.

    Raises:
        ParameterError: encoder settings that cannot write one of the videos (named) in its container.
    """
    checked: set[str] = set()
    for _, destination in plan.todo:
        suffix = destination.suffix.lower()
        if is_video_path(destination) and suffix not in checked:
            options.check_encoder(destination)
            checked.add(suffix)


@dataclass(frozen=True)
class _Decoded:
    index: int
    original: np.ndarray | None
    rgb: np.ndarray | None
    alpha: np.ndarray | None
    layout: Layout | None
    error: str | None


def derain_images(
    engine: Engine,
    todo: list[tuple[Path, Path]],
    on_result: Callable[[FileResult], None] | None = None,
    read_ahead: int = 4,
    compare: str | None = None,
) -> list[FileResult]:
    """Derain each source image into its destination, in order, skipping files that fail.

    Args:
        engine: Engine. Runs the network.
        todo: list of (source, destination) pairs; destination folders are created.
        on_result: callable or None. Called in the caller's thread with each FileResult as it completes.
        read_ahead: int. Images decoded ahead of the network. Defaults to 4.
        compare: str or None. "side" or "split" writes input and result in one picture
            (`vidderain.jobs.compare`). Defaults to None.

    Returns:
        One FileResult per pair, in the order of `todo`.

    Raises:
        DiskFullError: the destination filled up; the results finished before are kept.
    """
    results: dict[int, FileResult] = {}
    decoded: dict[int, _Decoded] = {}

    def report(index: int, error: str | None) -> None:
        source, destination = todo[index]
        result = FileResult(source, destination, error)
        results[index] = result
        if on_result:
            on_result(result)

    def decode_all() -> Iterator[_Decoded]:
        for index, (source, _) in enumerate(todo):
            try:
                original = read_image(source)
                rgb, alpha, layout = split_rgb(original)
                yield _Decoded(index, original if compare else None, rgb, alpha, layout, None)
            except (InputError, ValueError) as exc:
                yield _Decoded(index, None, None, None, None, str(exc))

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        for item in prefetch(decode_all(), depth=read_ahead, name="read-images"):
            if item.error is not None:
                report(item.index, item.error)
                continue
            decoded[item.index] = item
            yield item.index, item.rgb

    def encode(index: int, rgb: np.ndarray) -> None:
        item = decoded.pop(index)
        destination = todo[index][1]
        make_output_folder(destination.parent)
        write_image(destination, compose(item.original, merge_rgb(rgb, item.alpha, item.layout), compare))

    # A full disk ends the whole job (DiskFullError reaches the caller); other write errors fail one file.
    with BackgroundWorker(depth=read_ahead, name="write-images", fatal=(DiskFullError,)) as writer:
        for index, rgb in engine.run(frames()):
            writer.submit(index, encode, index, rgb)
            for done_index, error in writer.completed():
                report(done_index, error)
        for done_index, error in writer.finish():
            report(done_index, error)
    return [results[i] for i in sorted(results)]


def derain_files(
    engine: Engine,
    todo: list[tuple[Path, Path]],
    video_options: VideoOptions | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    on_frame: Callable[[Path, int, int | None], None] | None = None,
    window: WindowSpec = SINGLE_FRAME,
    network: NetworkIdentity | None = None,
    on_note: Callable[[Path, str], None] | None = None,
) -> list[FileResult]:
    """Derain the images of `todo` (streamed together), then its videos one by one.

    A temporal model (a window of several frames) derains videos only: each image is a
    failed file, one line saying why (`image_refused`), and the videos go on.

    Args:
        engine: Engine. Runs the network.
        todo: list of (source, destination) pairs, images and videos mixed.
        video_options: VideoOptions or None. How videos are written. Defaults to VideoOptions().
        on_result: callable or None. Called with each FileResult as it completes.
        on_frame: callable or None. Called as `(video source, frames done, frames total or None)`,
            first before the video's first frame (with the frames a stopped run finished).
        window: WindowSpec. The frames the model reads for each output frame (`derain_video`).
            Defaults to one frame.
        network: NetworkIdentity or None. The model file and precision the engine runs, so a
            video cut short is resumed (`derain_video`). Defaults to None (never resumed).
        on_note: callable or None. Called as `(video source, line)` with the lines a video
            tells as it starts; None adds them to its result's notes.

    Returns:
        The FileResults, images first, then videos.

    Raises:
        DiskFullError: the destination filled up; the results finished before are kept.
    """
    check_window(engine, window)
    video_options = video_options or VideoOptions()
    images = [item for item in todo if not is_video_path(item[0])]
    videos = [item for item in todo if is_video_path(item[0])]
    if window.frames == 1:
        results = derain_images(engine, images, on_result=on_result, compare=video_options.compare)
    else:
        results = [FileResult(source, destination, image_refused(source, window)) for source, destination in images]
        if on_result:
            for result in results:
                on_result(result)
    for source, destination in videos:
        progress = (lambda done, total, source=source: on_frame(source, done, total)) if on_frame else None
        tell = (lambda line, source=source: on_note(source, line)) if on_note else None
        try:
            notes = derain_video(engine, source, destination, video_options, on_progress=progress, window=window,
                                 network=network, on_note=tell)
            result = FileResult(source, destination, notes=tuple(f"{source}: {note}" for note in notes))
        except InputError as exc:
            result = FileResult(source, destination, str(exc))
        results.append(result)
        if on_result:
            on_result(result)
    return results


def image_refused(source: Path, window: WindowSpec) -> str:
    """Why a temporal model does not derain the image `source`, in one line."""
    return (f"{source}: an image, and this model needs a video: it derains each frame with its "
            f"{window.frames - 1} neighbours (a single-frame model derains images)")


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, links resolved, is `folder` or lies within it (a link loop is in neither)."""
    return Path(os.path.realpath(path)).is_relative_to(folder)
