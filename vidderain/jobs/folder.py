"""Derain a folder of images (and find its videos): plan the work, stream it through the engine.

Reading runs in a background thread, the network in the caller's thread and
encoding in another background thread, with bounded queues between them. A file
that cannot be read or written is reported and skipped; the others go on. A temporal
model reads each folder's images as the frames of a clip (`derain_frames`), the optical
flow of its windows computed in the reading thread.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
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
    natural_key,
)
from vidderain.io.images import is_image_path, read_image, write_image
from vidderain.io.video import is_video_path
from vidderain.jobs.resume import NetworkIdentity
from vidderain.jobs.video import RERUN_OF_A_STOPPED_VIDEO, VideoOptions, derain_video
from vidderain.jobs.windows import SINGLE_FRAME, check_window, read_ahead as windows_ahead, stack_windows
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
        skipped: (source, destination) pairs whose destination is finished, kept as it is
            (`overwrite` redoes them); a temporal model still reads such an image as the
            neighbour of the frames around it.
        unreadable: one line for each sub-folder that could not be listed (no permission),
            so its files are not silently left out. Defaults to none.
    """

    todo: list[tuple[Path, Path]]
    skipped: list[tuple[Path, Path]]
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
            skipped.append((source, destination))
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


def _decode(index: int, source: Path, compare: str | None) -> _Decoded:
    """Read one image for the network; a file that cannot be read becomes its one-line error."""
    try:
        original = read_image(source)
        rgb, alpha, layout = split_rgb(original)
        return _Decoded(index, original if compare else None, rgb, alpha, layout, None)
    except (InputError, ValueError) as exc:
        return _Decoded(index, None, None, None, None, str(exc))


class _ImageWrites:
    """The results of an image job: what each image needs to be written, the writes, the reports.

    The network's input is made elsewhere; this takes each decoded image (`keep`, in the
    caller's thread), writes each result in a background thread and reports every file once.
    """

    def __init__(self, todo: list[tuple[Path, Path]], on_result: Callable[[FileResult], None] | None,
                 compare: str | None):
        self.todo, self.on_result, self.compare = todo, on_result, compare
        self.results: dict[int, FileResult] = {}
        self.decoded: dict[int, _Decoded] = {}

    def report(self, index: int, error: str | None) -> None:
        source, destination = self.todo[index]
        result = FileResult(source, destination, error)
        self.results[index] = result
        if self.on_result:
            self.on_result(result)

    def keep(self, item: _Decoded) -> bool:
        """Hold what writing `item`'s result needs and return True; report a failed read and return False."""
        if item.error is not None:
            self.decoded.pop(item.index, None)  # a frame found to be alone after it was read
            self.report(item.index, item.error)
            return False
        self.decoded[item.index] = item
        return True

    def _encode(self, index: int, rgb: np.ndarray) -> None:
        item = self.decoded.pop(index)
        destination = self.todo[index][1]
        make_output_folder(destination.parent)
        write_image(destination, compose(item.original, merge_rgb(rgb, item.alpha, item.layout), self.compare))

    def write_all(self, derained: Iterator[tuple[int, np.ndarray]], depth: int) -> list[FileResult]:
        """Write each (index, result) the engine yields; the FileResults in the order of `todo`.

        Raises:
            DiskFullError: the destination filled up; the results finished before are kept.
        """
        # A full disk ends the whole job (DiskFullError reaches the caller); other write errors fail one file.
        with BackgroundWorker(depth=depth, name="write-images", fatal=(DiskFullError,)) as writer:
            for index, rgb in derained:
                writer.submit(index, self._encode, index, rgb)
                for done_index, error in writer.completed():
                    self.report(done_index, error)
            for done_index, error in writer.finish():
                self.report(done_index, error)
        return [self.results[i] for i in sorted(self.results)]


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
    writes = _ImageWrites(todo, on_result, compare)

    def decode_all() -> Iterator[_Decoded]:
        for index, (source, _) in enumerate(todo):
            yield _decode(index, source, compare)

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        for item in prefetch(decode_all(), depth=read_ahead, name="read-images"):
            if writes.keep(item):
                yield item.index, item.rgb

    return writes.write_all(engine.run(frames()), depth=read_ahead)


def frame_sequences(todo: Sequence[tuple[Path, Path]], neighbours: Sequence[Path] = (),
                    radius: int = 0) -> list[list[tuple[Path, int | None]]]:
    """Each folder's images as the frames of a clip, in natural name order (frame2 before frame10).

    Args:
        todo: (source, destination) pairs of images to derain.
        neighbours: images not to derain (finished before, or another worker's) that are
            frames of the same clips: each is read as a neighbour of the frames within
            `radius` of it in its folder. Defaults to none.
        radius: int. Neighbours a window reads on each side. Defaults to 0.

    Returns:
        One list per folder that has work, of (source, index into `todo`, or None for a
        frame read as a neighbour only).
    """
    folders: dict[Path, list[tuple[Path, int | None]]] = {}
    for index, (source, _) in enumerate(todo):
        folders.setdefault(source.parent, []).append((source, index))
    for source in neighbours:
        if source.parent in folders:  # a folder with nothing left to do needs no neighbours
            folders[source.parent].append((source, None))
    sequences = []
    for frames in folders.values():
        frames.sort(key=lambda frame: natural_key(frame[0]))
        work = [position for position, (_, index) in enumerate(frames) if index is not None]
        # Neighbours farther than `radius` from every frame to do are not read at all.
        near = {p for position in work for p in range(position - radius, position + radius + 1)}
        sequences.append([frame for position, frame in enumerate(frames) if position in near])
    return sequences


def derain_frames(
    engine: Engine,
    todo: list[tuple[Path, Path]],
    window: WindowSpec,
    neighbours: Sequence[Path] = (),
    on_result: Callable[[FileResult], None] | None = None,
    compare: str | None = None,
) -> list[FileResult]:
    """Derain images as the frames of clips, each from its window of neighbours (a temporal model).

    Each folder's images are one clip, in natural name order (`frame_sequences`); an image
    of another size than the one before it starts a new clip, and the ends of a clip
    repeat its first or last frame (`vidderain.jobs.windows.stack_windows`). A clip of one
    frame is a failed file (`lone_frame`): from a window of one image repeated, a temporal
    network sees no rain move and returns the image nearly unchanged. Images in
    `neighbours` (finished before, or another worker's) are read as neighbours only, so a
    re-run, or a clip split between workers, writes what one uninterrupted run would have.
    An image that cannot be read is a failed file; its clip goes on without it.

    Args:
        engine: Engine. Runs the temporal network.
        todo: list of (source, destination) image pairs; destination folders are created.
        window: WindowSpec. The frames the model reads for each output frame.
        neighbours: images of the same folders not to derain, read as neighbours. Defaults to none.
        on_result: callable or None. Called in the caller's thread with each FileResult as it completes.
        compare: str or None. "side" or "split" writes input and result in one picture. Defaults to None.

    Returns:
        One FileResult per pair of `todo`, in its order.

    Raises:
        DiskFullError: the destination filled up; the results finished before are kept.
    """
    writes = _ImageWrites(todo, on_result, compare)

    def wanted(index: int | None) -> bool:
        return index is not None  # a frame read as a neighbour only gets no window

    def events() -> Iterator[_Decoded | tuple[int, np.ndarray]]:
        # Runs in a background thread: reading, the optical flow and the stacking overlap the network.
        # A frame's _Decoded goes out before its window, which waits for the frames after it.
        told: deque[_Decoded] = deque()

        def frames(sequence: list[tuple[Path, int | None]]) -> Iterator[tuple[int | None, np.ndarray]]:
            for source, index in sequence:
                item = _decode(-1 if index is None else index, source, compare)
                if index is not None:
                    told.append(replace(item, rgb=None))
                if item.error is None:
                    yield index, item.rgb

        for sequence in frame_sequences(todo, neighbours, window.radius):
            for _, clip in itertools.groupby(frames(sequence), key=lambda frame: frame[1].shape[:2]):
                start = list(itertools.islice(clip, 2))
                if len(start) == 1:
                    index = start[0][0]
                    if index is not None:
                        told.append(_Decoded(index, None, None, None, None, lone_frame(todo[index][0])))
                    continue
                for index, stacked in stack_windows(itertools.chain(start, clip), window, wanted=wanted):
                    while told:
                        yield told.popleft()
                    yield index, stacked
            while told:  # frames that failed after the last window
                yield told.popleft()

    def inputs() -> Iterator[tuple[int, np.ndarray]]:
        for event in prefetch(events(), depth=windows_ahead(window), name="read-frames"):
            if isinstance(event, _Decoded):
                writes.keep(event)
            else:
                yield event

    return writes.write_all(engine.run(inputs()), depth=windows_ahead(window))


def derain_files(
    engine: Engine,
    todo: list[tuple[Path, Path]],
    video_options: VideoOptions | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    on_frame: Callable[[Path, int, int | None], None] | None = None,
    window: WindowSpec = SINGLE_FRAME,
    network: NetworkIdentity | None = None,
    on_note: Callable[[Path, str], None] | None = None,
    neighbours: Sequence[Path] = (),
) -> list[FileResult]:
    """Derain the images of `todo` (streamed together), then its videos one by one.

    A temporal model (a window of several frames) reads each folder's images as the frames
    of a clip (`derain_frames`).

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
        neighbours: images not to derain (the sources of `FolderPlan.skipped`, or another
            worker's frames), which a temporal model reads as the neighbours of the frames
            around them. Defaults to none.

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
        neighbours = [source for source in neighbours if not is_video_path(source)]
        results = derain_frames(engine, images, window, neighbours, on_result=on_result, compare=video_options.compare)
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


def lone_frame(source: Path) -> str:
    """Why a temporal model does not derain `source`, a clip of one frame, in one line."""
    return (f"{source}: the only frame of its size in its folder, and this model derains each frame from the frames "
            f"around it (photos: --model default)")


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, links resolved, is `folder` or lies within it (a link loop is in neither)."""
    return Path(os.path.realpath(path)).is_relative_to(folder)
