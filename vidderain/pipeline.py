"""Stages joined by bounded queues, so reading, computing and writing overlap.

A producer thread fills a queue of at most `depth` items; the consumer iterates.
Memory stays bounded however long the stream is, an exception in the producer
reaches the consumer, and closing the consumer stops the producer promptly.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 4, name: str = "prefetch") -> Generator[T, None, None]:
    """Iterate over `items` produced by a background thread, at most `depth` ahead.

    Args:
        items: iterable. Produced in the background thread (its I/O overlaps the caller's work).
        depth: int. Items buffered at most. Defaults to 4.
        name: str. Thread name, for debugging. Defaults to "prefetch".

    Yields:
        The items of `items`, in order. An exception raised while producing is re-raised here.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1. Received: depth={depth}")
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # forwarded to the consumer, which decides
            put(_Failure(exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class BackgroundWorker:
    """Runs submitted jobs one at a time in a background thread, at most `depth` waiting.

    Each job's outcome is collected as (tag, error line or None), so one failing job
    (an unwritable folder, a format that cannot hold the image) is reported and the
    others go on. A job that raises one of the `fatal` types (a full disk) instead
    ends the work: the jobs still queued are dropped and the exception is raised in
    the caller's thread by the next `submit`, `completed` or `finish`.

    Args:
        depth: int. Jobs queued at most before `submit` blocks. Defaults to 4.
        name: str. Thread name. Defaults to "worker".
        fatal: tuple of exception types that end the work rather than one job. Defaults to ().
    """

    def __init__(self, depth: int = 4, name: str = "worker", fatal: tuple[type[BaseException], ...] = ()):
        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._done: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._fatal_types = fatal
        self._fatal: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _END:
                return
            tag, fn, args = job
            if self._cancel.is_set():
                continue
            try:
                fn(*args)
                self._done.put((tag, None))
            except self._fatal_types as exc:
                self._fatal = exc
                self._cancel.set()  # every later job would fail the same way
            except Exception as exc:  # reported per job; the worker goes on
                self._done.put((tag, str(exc) or type(exc).__name__))
            except BaseException as exc:  # a stop raised in a job: it ends the work, as a fatal error does
                self._fatal = exc
                self._cancel.set()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def submit(self, tag, fn, *args) -> None:
        """Queue `fn(*args)`; its outcome is reported under `tag`. Blocks while the queue is full."""
        self._raise_fatal()
        self._jobs.put((tag, fn, args))

    def completed(self) -> list[tuple]:
        """Outcomes of the jobs finished so far and not yet returned."""
        self._raise_fatal()
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def finish(self) -> list[tuple]:
        """Wait for every queued job, then return the outcomes not yet returned."""
        self._jobs.put(_END)
        self._thread.join()
        return self.completed()

    def __enter__(self) -> "BackgroundWorker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._thread.is_alive():
            if exc_type is not None:
                self._cancel.set()  # interrupted: drop queued jobs, stop promptly
            self._jobs.put(_END)
            self._thread.join()
