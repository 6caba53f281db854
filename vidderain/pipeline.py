"""Stages joined by bounded queues, so reading, computing and writing overlap.

A producer thread fills a queue of at most `depth` items; the consumer iterates.
Memory stays bounded however long the stream is, an exception in the producer
reaches the consumer, and closing the consumer stops the producer promptly.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 4, name: str = "prefetch") -> Iterator[T]:
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
