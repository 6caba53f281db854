"""Derain the files of a folder job over a Ray cluster, whole files per worker.

Each worker is a Ray actor that loads the model once (the driver ships the model file
through Ray's object store, so workers need no copy of it) and derains whole files
with the same function as a local run (`vidderain.jobs.folder.derain_files`): videos
stay whole, keeping their audio and timing, and every output is written atomically.
With a temporal model a folder's images are the frames of a clip: they go out in runs
of FRAMES_PER_TASK, each with the frames on either side that its windows read, so the
results are those of a local run. The driver hands the next task to whichever worker
is free and reports each result as it arrives. Input and output paths must be the same
on every machine (a shared filesystem). Ray is imported only here, and only when asked
for; the driver imports no Keras either (`vidderain.models` loads it when a worker loads
the model).
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vidderain.engine import Engine, TileSettings
from vidderain.errors import NAME, DiskFullError, ParameterError, first_line
from vidderain.interrupts import STOP_SIGNALS
from vidderain.io.files import leftover_partials
from vidderain.io.video import is_video_path
from vidderain.jobs.folder import FileResult, derain_files, frame_sequences
from vidderain.jobs.resume import NetworkIdentity, tidy_after_a_lost_run
from vidderain.jobs.video import VideoOptions
from vidderain.models import load_model, read_metadata
from vidderain.precision import FLOAT32, Precision, at_precision, resolve_precision
from vidderain.temporal import WindowSpec

LOCAL = "local"
RAY_HINT = "pip install 'vidderain[ray]'"
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # a local cluster only carries the model and results' metadata
KILLED_WORKERS_WAIT = 10.0  # seconds an interrupted run waits for its killed workers to be gone before tidying
FRAMES_PER_TASK = 32  # a temporal model's frames in a folder go to the workers in runs of this many


@dataclass(frozen=True)
class ClusterInfo:
    """The Ray cluster a job runs on.

    Attributes:
        address: str. The address given (`local` for a cluster started for this job).
        nodes: int. Machines alive in the cluster.
        cpus: float. CPUs the cluster offers.
        gpus: float. GPUs the cluster offers.
        workers: int. Actors started, each with one GPU when the cluster has GPUs, else one CPU.
        precision: Precision. What every worker runs the network in.
    """

    address: str
    nodes: int
    cpus: float
    gpus: float
    workers: int
    precision: Precision = FLOAT32

    def describe(self) -> str:
        """One line for the user."""
        where = "a local Ray cluster" if self.address == LOCAL else f"the Ray cluster at {self.address}"
        each = "1 GPU" if self.gpus else "1 CPU"
        return f"{where} ({self.nodes} node{'s' * (self.nodes != 1)}, {self.cpus:g} CPUs, {self.gpus:g} GPUs): " \
               f"{self.workers} worker{'s' * (self.workers != 1)}, {each} each"


def import_ray():
    """Import Ray, or raise ParameterError (for `address`) with the install command when it is missing."""
    try:
        import ray
    except ImportError:
        raise ParameterError("address", sentence=f"{NAME} needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


class FileWorker:
    """Derains whole files in a Ray worker process, with the model loaded once.

    Args:
        model_name: str. The model's name or file name, for messages.
        model_bytes: bytes. The `.keras` file's content.
        settings: TileSettings. Tiling and batching, as a local run would use them.
    """

    def __init__(self, model_name: str, model_bytes: bytes, settings: TileSettings, precision: Precision = FLOAT32):
        with tempfile.TemporaryDirectory(prefix="vidderain-model-") as folder:
            path = Path(folder) / Path(model_name).with_suffix(".keras").name
            path.write_bytes(model_bytes)
            loaded = load_model(path)
        self.engine = Engine(at_precision(loaded.model, precision), loaded.stride, settings, veil=loaded.veil)
        self.window = WindowSpec.from_metadata(loaded.metadata)  # a temporal model's window of frames
        # The same identity a local run records, so a video one stopped, another resumes.
        self.network = NetworkIdentity(hashlib.sha256(model_bytes).hexdigest(), precision.name)

    def derain(self, todo: list[tuple[Path, Path]], neighbours: list[Path],
               video_options: VideoOptions) -> list[FileResult]:
        """Derain one task: a video, an image, or a run of a clip's frames with the frames its
        windows read beside it (`neighbours`); each result written atomically. Never raises for a bad file.

        A video cut short (a stopped run, or a worker that died) resumes after its last finished segment.
        """
        return derain_files(self.engine, todo, video_options, window=self.window, network=self.network,
                            neighbours=neighbours)


@dataclass(frozen=True)
class Task:
    """What one worker call derains: `files`, indices into the job's todo, reading `neighbours` beside them."""

    files: list[int]
    neighbours: list[Path] = field(default_factory=list)


def plan_tasks(todo: Sequence[tuple[Path, Path]], window: WindowSpec,
               finished: Sequence[Path] = ()) -> list[Task]:
    """Cut a folder job into worker tasks: one per video, and one per image for a single-frame model.

    A temporal model's images are the frames of clips (`vidderain.jobs.folder.frame_sequences`):
    each folder's go out in runs of FRAMES_PER_TASK frames in clip order, each run with the
    `window.radius` frames before and after it as neighbours (read, not written), and the
    finished frames among them too, so that every window is the one a local run stacks.

    Args:
        todo: (source, destination) pairs, images and videos mixed.
        window: WindowSpec. The model's window of frames.
        finished: sources of images derained before (read as neighbours). Defaults to none.
    """
    videos = [Task([index]) for index, (source, _) in enumerate(todo) if is_video_path(source)]
    images = [index for index, (source, _) in enumerate(todo) if not is_video_path(source)]
    if window.frames == 1:
        return [Task([index]) for index in images] + videos
    tasks = []
    radius = window.radius
    frames = [todo[index] for index in images]
    for sequence in frame_sequences(frames, [s for s in finished if not is_video_path(s)], radius):
        for start in range(0, len(sequence), FRAMES_PER_TASK):
            run = sequence[start : start + FRAMES_PER_TASK]
            work = [images[index] for _, index in run if index is not None]
            if not work:
                continue
            around = sequence[max(0, start - radius) : start] + sequence[start + len(run) : start + len(run) + radius]
            neighbours = [source for source, index in run if index is None] + [source for source, _ in around]
            tasks.append(Task(work, neighbours))
    return tasks + videos


def start_cluster(address: str, workers: int | None = None):
    """Connect to the Ray cluster at `address`, or start a local one for `local`.

    Args:
        address: str. `local`, or an address `ray.init` accepts (`auto`, `ray://host:10001`, `host:6379`).
        workers: int or None. Workers wanted; a local cluster gets at least that many CPUs.

    Returns:
        The `ray` module, connected.
    """
    ray = import_ray()
    # ray.init installs its own SIGTERM handler (exit at once); ours removes temporary
    # files and stops the workers first (`vidderain.interrupts`), so it is put back.
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        _init(ray, address, workers)
    finally:
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
    return ray


def _init(ray, address: str, workers: int | None) -> None:
    if address == LOCAL:
        cpus = max(os.cpu_count() or 1, workers or 1)
        ray.init(num_cpus=cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    else:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ParameterError("address", address,
                                 f"the address of a Ray cluster that answers ({first_line(exc)})") from None


def derain_on_ray(
    model_path: Path,
    settings: TileSettings,
    todo: list[tuple[Path, Path]],
    video_options: VideoOptions | None = None,
    address: str = LOCAL,
    workers: int | None = None,
    on_result: Callable[[FileResult], None] | None = None,
    on_start: Callable[[ClusterInfo], None] | None = None,
    precision: str = "auto",
    finished: Sequence[Path] = (),
) -> list[FileResult]:
    """Derain every (source, destination) of `todo` on Ray workers, whole files each (`plan_tasks`).

    Args:
        model_path: Path. The `.keras` model file, read here and shipped to the workers.
        settings: TileSettings. Tiling and batching (checked against the model beforehand).
        todo: list of (source, destination) pairs, images and videos mixed; paths must be
            valid on every machine of the cluster.
        video_options: VideoOptions or None. How videos are written. Defaults to VideoOptions().
        address: str. `local` starts a Ray cluster on this machine for the job (and stops
            it after); anything else is passed to `ray.init(address=...)`. Defaults to `local`.
        workers: int or None. Actors to start. Defaults to one per GPU of the cluster, or
            with no GPUs one per machine.
        on_result: callable or None. Called in this thread with each FileResult as it arrives.
        on_start: callable or None. Called with the ClusterInfo once the workers are asked for.
        precision: str. "float32", "bfloat16", or "auto": resolved once, on a worker's machine
            (a GPU one when the cluster has GPUs), and used by every worker, so a file's result
            does not depend on which machine ran it. Defaults to "auto".
        finished: sources of the images whose results were finished before, which a temporal
            model reads as the neighbours of the frames around them. Defaults to none.

    Returns:
        One FileResult per pair, in the order of `todo`. A file whose worker died is a
        failure; its temporary file is removed, so a re-run redoes it.

    Raises:
        ParameterError: Ray is not installed, the cluster cannot be reached (`address`), or
            `workers` is below 1 or more than the cluster has room for.
    """
    if workers is not None and workers < 1:
        raise ParameterError("workers", workers, "at least 1")
    video_options = video_options or VideoOptions()
    tasks = plan_tasks(todo, WindowSpec.from_metadata(read_metadata(model_path)), finished)
    ray = start_cluster(address, workers)
    try:
        resources = ray.cluster_resources()
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 0))
        count = workers or max(int(gpus) or nodes, 1)
        slots, unit = (int(gpus), "GPU") if gpus else (int(cpus), "CPU")
        if count > slots:  # the extra workers would wait for room forever, and their files with them
            raise ParameterError("workers", count, f"at most {slots}, the workers the cluster has room for "
                                 f"(each takes 1 {unit})")
        # SPREAD: one worker per machine before a second on any, as the default count assumes.
        options = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        options["scheduling_strategy"] = "SPREAD"
        chosen = ray.get(ray.remote(resolve_precision).options(**options).remote(precision))
        info = ClusterInfo(address=address, nodes=nodes, cpus=cpus, gpus=gpus, workers=count, precision=chosen)
        if on_start:
            on_start(info)
        model = ray.put(Path(model_path).read_bytes())
        actor_class = ray.remote(FileWorker)
        actors = [actor_class.options(**options).remote(Path(model_path).name, model, settings, chosen)
                  for _ in range(count)]
        return _dispatch(ray, actors, todo, tasks, video_options, on_result)
    finally:
        ray.shutdown()  # stops a local cluster; from a remote one, only disconnects


def _dispatch(ray, actors: list, todo: list[tuple[Path, Path]], tasks: list[Task], video_options: VideoOptions,
              on_result: Callable[[FileResult], None] | None) -> list[FileResult]:
    # Largest tasks first, so a long video does not start last and keep one worker busy alone.
    waiting = deque(sorted(tasks, key=lambda task: -sum(_size(todo[i][0]) for i in task.files)))
    idle = list(actors)
    running: dict = {}  # future -> (actor, task)
    results: dict[int, FileResult] = {}

    def report(index: int, result: FileResult) -> None:
        results[index] = result
        if on_result:
            on_result(result)

    def fail(task: Task, why: str) -> None:
        for index in task.files:
            source, destination = todo[index]
            report(index, FileResult(source, destination, f"{source}: {why}"))

    try:
        while waiting or running:
            while idle and waiting:
                actor, task = idle.pop(), waiting.popleft()
                files = [todo[index] for index in task.files]
                running[actor.derain.remote(files, task.neighbours, video_options)] = (actor, task)
            if not running:  # every worker died; nothing can take the rest
                for task in waiting:
                    fail(task, "no Ray worker is left to derain it")
                break
            [future], _ = ray.wait(list(running), num_returns=1)
            actor, task = running.pop(future)
            try:
                for index, result in zip(task.files, ray.get(future)):
                    report(index, result)
                idle.append(actor)
            except ray.exceptions.RayActorError as exc:
                # The worker is gone (killed, out of memory, its machine lost) and cannot
                # clean up after itself; nobody else writes these destinations. A video's
                # finished segments stay, for a re-run to continue; so do the task's finished images.
                for index in task.files:
                    _tidy(todo[index][1])
                fail(task, f"its Ray worker died ({first_line(exc)}); run again to finish it")
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, DiskFullError):  # every later file would fail the same way
                    raise exc.cause from None
                idle.append(actor)
                fail(task, first_line(exc.cause or exc))
    finally:
        # Interrupted: stop the workers still writing, wait until they are gone (a kill takes
        # effect a moment later, and a worker alive meanwhile may start its next segment),
        # then remove what they left behind.
        for actor, _ in running.values():
            ray.kill(actor)
        if running:
            ray.wait(list(running), num_returns=len(running), timeout=KILLED_WORKERS_WAIT)
        for _, task in running.values():
            for index in task.files:
                _tidy(todo[index][1])
    return [results[i] for i in sorted(results)]


def _tidy(destination: Path) -> None:
    """Remove what a killed worker left of `destination`: its temporary file, a half-written segment.

    A worker still alive after `KILLED_WORKERS_WAIT` then finds its temporary file gone,
    or its video's working folder tidied, and stops.
    """
    for partial in leftover_partials(destination):
        partial.unlink(missing_ok=True)
    tidy_after_a_lost_run(destination)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
