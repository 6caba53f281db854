"""Writing a video's frames as segments, each recorded in the working folder once it is whole.

A segment is a file of consecutive frames, encoded on its own, so it is made of
whole closed GOPs; the next one begins with the first frame at least `seconds`
after the current one's first. The boundaries follow from the frames' times alone,
so a resumed run cuts the clip where an uninterrupted run would, and the joined
result is the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

from vidderain.io.video import FrameMark, VideoWriter
from vidderain.jobs.resume import SegmentRecord, WorkingFolder


class SegmentedWriter:
    """Writes frames, in order, into segments of about `seconds` in a working folder.

    `start` opens the first segment (in the caller's thread, so that an encoder that
    cannot start fails before any frame is derained); `write` runs in the encoder
    thread; `kill`, from any thread, ends the segment being written at once (a stop);
    `finish` writes the last segment. A segment that is not whole when the writer
    stops is removed; the whole ones stay recorded.

    Args:
        folder: WorkingFolder. Where the segments go and are recorded.
        open_segment: callable. `open_segment(path)` gives a VideoWriter for the video
            stream alone (times counted from the segment's first frame).
        seconds: float. A segment's length: a new one begins with the first frame at least
            this long after the current one's first.
        context: int. Frames a resumed read starts before the next segment's first, for
            a temporal model to see its neighbours. Defaults to 0.
    """

    def __init__(self, folder: WorkingFolder, open_segment: Callable[[Path], VideoWriter], seconds: float,
                 context: int = 0) -> None:
        if not seconds > 0:
            raise ValueError(f"seconds must be positive. Received: seconds={seconds}")
        self._folder = folder
        self._open = open_segment
        self._length = Fraction(seconds)
        self._context = context
        self._origin = folder.progress.origin
        self._writer: VideoWriter | None = None
        self._first: FrameMark | None = None
        self._count = 0
        self._recent: deque[FrameMark] = deque(maxlen=context)
        self.notes: list[str] = []

    def __enter__(self) -> SegmentedWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            # Not finished: the segment being written is not whole; its writer removes it.
            writer.__exit__(exc_type or RuntimeError, exc or RuntimeError("the video was not finished"), tb)

    def start(self, index: int) -> None:
        """Open the segment that frame `index`, the first to be written, begins."""
        self._writer = self._open(self._folder.segment_path(index))
        self.notes = list(self._writer.notes)
        self._first, self._count = None, 0

    def write(self, frame: np.ndarray, index: int, time: Fraction) -> None:
        """Write frame `index`, whose time in the clip is `time`; frames come in order."""
        if self._origin is None:
            self._origin = time  # a fresh run's first frame
        mark = FrameMark(index, time, self._origin)
        if self._first is not None and time >= self._first.time + self._length:
            self._close(mark)
            self._writer = self._open(self._folder.segment_path(index))
            self._count = 0
        if self._count == 0:
            self._first = mark
        self._writer.write(frame, time - self._first.time)
        self._count += 1
        self._recent.append(mark)

    def finish(self) -> None:
        """Write the last segment and record that the clip is complete."""
        if self._writer is not None:
            self._close(None)

    def kill(self) -> None:
        """End the segment being written now, from any thread (its writer then fails and removes it)."""
        writer = self._writer
        if writer is not None:
            writer.kill()

    def _close(self, next_frame: FrameMark | None) -> None:
        writer = self._writer
        try:
            writer.close()  # still `_writer` meanwhile, so a stop from another thread can `kill` it
        finally:
            self._writer = None
        first = self._first
        record = SegmentRecord(writer.path.name, first.index, self._count, first.time,
                               next_frame.time if next_frame else None)
        self._folder.record(record, self._origin, next_frame, self._begin(next_frame))

    def _begin(self, next_frame: FrameMark | None) -> FrameMark | None:
        """Where a read for `next_frame` begins: that frame, or the `context` frames before it."""
        if next_frame is None or not self._context:
            return next_frame
        wanted = next_frame.index - self._context
        if wanted <= 0:
            return FrameMark(0, self._origin, self._origin)
        if len(self._recent) == self._context:
            return self._recent[0]
        return FrameMark(0, self._origin, self._origin)  # its time is not known here: read from the start
