"""Derain a folder of images (and find its videos): plan the work, stream it through the engine.

Reading runs in a background thread, the network in the caller's thread and
encoding in another background thread, with bounded queues between them. A file
that cannot be read or written is reported and skipped; the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidderain.compare import compose
from vidderain.engine import Engine
from vidderain.errors import InputError
from vidderain.io.files import is_partial
from vidderain.io.images import is_image_path, read_image, write_image
from vidderain.io.video import is_video_path
from vidderain.pipeline import BackgroundWorker, prefetch
from vidderain.pixels import Layout, merge_rgb, split_rgb


@dataclass(frozen=True)
class FolderPlan:
    """The files of a folder job.

    Attributes:
        todo: (source, destination) pairs to process, in a stable order.
        skipped: destinations that already exist and are kept (a re-run continues).
    """

    todo: list[tuple[Path, Path]]
    skipped: list[Path]


@dataclass(frozen=True)
class FileResult:
    """The outcome for one file: `error` is None on success, else one line saying why."""

    source: Path
    destination: Path
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_output_location(source: Path, destination: Path) -> None:
    """Refuse a destination that would overwrite or be read back as the source.

    Raises:
        InputError: `destination` is `source`, or `source` lies inside `destination`.
    """
    src, dst = source.resolve(), destination.resolve()
    if src == dst:
        raise InputError(f"{destination}: the output is the input; choose another output path")
    if src.is_dir() and dst in src.parents:
        raise InputError(f"{destination}: the output folder contains the input folder; choose another output")


def _walk(folder: Path, recursive: bool, exclude: Path) -> Iterator[Path]:
    # os.walk does not follow symlinked folders, so a link loop cannot recurse forever.
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if (root_path / d).resolve() != exclude) if recursive else []
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
        InputError: `in_dir` is not a folder, or `out_dir` would overwrite the input.
    """
    if not in_dir.exists():
        raise InputError(f"{in_dir}: no such folder")
    if not in_dir.is_dir():
        raise InputError(f"{in_dir}: is a file; `vidderain folder` takes a folder")
    check_output_location(in_dir, out_dir)
    exclude = out_dir.resolve()
    todo, skipped = [], []
    for source in _walk(in_dir, recursive, exclude):
        if not (is_image_path(source) or is_video_path(source)) or is_partial(source) or source.name.startswith("."):
            continue
        destination = out_dir / source.relative_to(in_dir)
        if destination.exists() and not overwrite:
            skipped.append(destination)
        else:
            todo.append((source, destination))
    return FolderPlan(todo=todo, skipped=skipped)


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
            (`vidderain.compare`). Defaults to None.

    Returns:
        One FileResult per pair, in the order of `todo`.
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
        destination.parent.mkdir(parents=True, exist_ok=True)
        write_image(destination, compose(item.original, merge_rgb(rgb, item.alpha, item.layout), compare))

    with BackgroundWorker(depth=read_ahead, name="write-images") as writer:
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
    video_options=None,
    on_result: Callable[[FileResult], None] | None = None,
    on_frame: Callable[[Path, int, int | None], None] | None = None,
) -> list[FileResult]:
    """Derain the images of `todo` (streamed together), then its videos one by one.

    Args:
        engine: Engine. Runs the network.
        todo: list of (source, destination) pairs, images and videos mixed.
        video_options: VideoOptions or None. How videos are written. Defaults to VideoOptions().
        on_result: callable or None. Called with each FileResult as it completes.
        on_frame: callable or None. Called as `(video source, frames done, frames total or None)`.

    Returns:
        The FileResults, images first, then videos.
    """
    from vidderain.videos import VideoOptions, derain_video

    video_options = video_options or VideoOptions()
    images = [item for item in todo if not is_video_path(item[0])]
    videos = [item for item in todo if is_video_path(item[0])]
    results = derain_images(engine, images, on_result=on_result, compare=video_options.compare)
    for source, destination in videos:
        progress = (lambda done, total, source=source: on_frame(source, done, total)) if on_frame else None
        try:
            derain_video(engine, source, destination, video_options, on_progress=progress)
            result = FileResult(source, destination)
        except InputError as exc:
            result = FileResult(source, destination, str(exc))
        results.append(result)
        if on_result:
            on_result(result)
    return results
