"""Derain the files of a folder job over a Ray cluster, whole files per worker.

Each worker is a Ray actor that loads the model once (the driver ships the model file
through Ray's object store, so workers need no copy of it) and derains whole files
with the same per-file function as a local run (`vidderain.jobs.folder.derain_files`):
videos stay whole, keeping their audio and timing, and every output is written
atomically. The driver hands the next file to whichever worker is free and reports
each result as it arrives. Input and output paths must be the same on every machine
(a shared filesystem). Ray is imported only here, and only when asked for; the
driver imports no Keras either (`vidderain.models` loads it when a worker loads the model).
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidderain.engine import Engine, TileSettings
from vidderain.errors import NAME, DiskFullError, ParameterError, first_line
from vidderain.interrupts import STOP_SIGNALS
from vidderain.io.files import leftover_partials
from vidderain.jobs.folder import FileResult, derain_files
from vidderain.jobs.resume import NetworkIdentity, tidy_after_a_lost_run
from vidderain.jobs.video import VideoOptions
from vidderain.models import load_model
from vidderain.precision import FLOAT32, Precision, at_precision, resolve_precision
from vidderain.temporal import WindowSpec

LOCAL = "local"
RAY_HINT = "pip install 'vidderain[ray]'"
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # a local cluster only carries the model and results' metadata
KILLED_WORKERS_WAIT = 10.0  # seconds an interrupted run waits for its killed workers to be gone before tidying


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

    def derain(self, source: Path, destination: Path, video_options: VideoOptions) -> FileResult:
        """Derain one image or video into `destination` (written atomically); never raises for a bad file.

        A video cut short (a stopped run, or a worker that died) resumes after its last finished segment.
        """
        return derain_files(self.engine, [(source, destination)], video_options, window=self.window,
                            network=self.network, frames=False)[0]


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
) -> list[FileResult]:
    """Derain every (source, destination) of `todo` on Ray workers, whole files each.

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
        return _dispatch(ray, actors, todo, video_options, on_result)
    finally:
        ray.shutdown()  # stops a local cluster; from a remote one, only disconnects


def _dispatch(ray, actors: list, todo: list[tuple[Path, Path]], video_options: VideoOptions,
              on_result: Callable[[FileResult], None] | None) -> list[FileResult]:
    # Largest files first, so a long video does not start last and keep one worker busy alone.
    order = sorted(range(len(todo)), key=lambda i: -_size(todo[i][0]))
    waiting = deque(order)
    idle = list(actors)
    running: dict = {}  # future -> (actor, index)
    results: dict[int, FileResult] = {}

    def report(index: int, result: FileResult) -> None:
        results[index] = result
        if on_result:
            on_result(result)

    try:
        while waiting or running:
            while idle and waiting:
                actor, index = idle.pop(), waiting.popleft()
                source, destination = todo[index]
                running[actor.derain.remote(source, destination, video_options)] = (actor, index)
            if not running:  # every worker died; nothing can take the rest
                for index in waiting:
                    source, destination = todo[index]
                    report(index, FileResult(source, destination, f"{source}: no Ray worker is left to derain it"))
                break
            [future], _ = ray.wait(list(running), num_returns=1)
            actor, index = running.pop(future)
            source, destination = todo[index]
            try:
                result = ray.get(future)
                idle.append(actor)
            except ray.exceptions.RayActorError as exc:
                # The worker is gone (killed, out of memory, its machine lost) and cannot
                # clean up after itself; nobody else writes this destination. A video's
                # finished segments stay, for a re-run to continue.
                _tidy(destination)
                result = FileResult(source, destination,
                                    f"{source}: its Ray worker died ({first_line(exc)}); run again to finish it")
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, DiskFullError):  # every later file would fail the same way
                    raise exc.cause from None
                idle.append(actor)
                result = FileResult(source, destination, f"{source}: {first_line(exc.cause or exc)}")
            report(index, result)
    finally:
        # Interrupted: stop the workers still writing, wait until they are gone (a kill takes
        # effect a moment later, and a worker alive meanwhile may start its next segment),
        # then remove what they left behind.
        for actor, _ in running.values():
            ray.kill(actor)
        if running:
            ray.wait(list(running), num_returns=len(running), timeout=KILLED_WORKERS_WAIT)
        for _, index in running.values():
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
