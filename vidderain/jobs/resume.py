"""Resuming a stopped video: the hidden working folder beside its output, and what it records.

A video is written in segments of whole closed GOPs (about `SEGMENT_SECONDS` each)
into a hidden working folder beside the output (`vidderain.io.files.working_folder`),
with a manifest: what the result depends on (the source's identity, the model's
SHA-256, every setting that changes pixels), the segments finished, and the frame
the next one begins with. A run that finds a manifest for the same source, model
and settings continues after the last finished segment; a different one starts
again from the first frame and says why. The folder is locked by the run that
uses it, so two runs never write one output's segments. When the video is finished
and joined, the folder is removed; a stopped run keeps the finished segments (the
one thing a stop leaves behind), or nothing when none was finished.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, is_dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from vidderain.errors import InputError
from vidderain.io.files import atomic_output, is_out_of_space, make_output_folder, working_folder, write_error
from vidderain.io.video import FrameMark, Segment

try:
    import fcntl
except ImportError:  # not POSIX: no lock, one run per output is the user's to ensure
    fcntl = None

SEGMENT_SECONDS = 10.0  # the default length of a segment: at most this much work is lost to a stop
MANIFEST = "manifest.json"
_LOCK = "lock"
_FORMAT = 1  # the manifest's layout; another layout is not read, and the video starts again


@dataclass(frozen=True)
class NetworkIdentity:
    """What a video's pixels depend on beyond the job's own settings: the model file and how it runs.

    Attributes:
        sha256: str. The SHA-256 of the model file (`vidderain.models.file_sha256`).
        precision: str. What the network runs in: "float32" or "bfloat16".
    """

    sha256: str
    precision: str


@dataclass(frozen=True)
class JobIdentity:
    """What a video job's result depends on; a working folder is resumed only for an equal one.

    Attributes:
        source: dict. The source's identity: for a file its size, modification time and a
            probe of its streams; for a folder of frames a digest of its listing.
        model: dict. The model's SHA-256 and the precision it runs in.
        settings: dict. Every setting that changes pixels: tiles, ensemble, encoder, trim,
            comparison, frame rate.
    """

    source: dict[str, Any]
    model: dict[str, Any]
    settings: dict[str, Any]

    def __post_init__(self) -> None:
        # As a manifest gives them back: fractions as text, tuples as lists, records as dicts.
        for section in ("source", "model", "settings"):
            object.__setattr__(self, section, json.loads(json.dumps(getattr(self, section), default=_plain)))

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "model": self.model, "settings": self.settings}

    def difference(self, recorded: dict[str, Any]) -> str | None:
        """Why `recorded` (a manifest's identity) is not this one, in a few words; None if it is."""
        for section, words in (("source", "the source changed"), ("model", "the model changed"),
                               ("settings", "the settings changed")):
            mine, theirs = getattr(self, section), recorded.get(section)
            if not isinstance(theirs, dict):
                return "its manifest is not one this version reads"
            if mine != theirs:
                changed = [key for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]
                if section == "source":  # sizes and times say little; which of them changed says enough
                    return f"{words} ({', '.join(changed)})"
                values = [f"{key} {_short(theirs.get(key))} -> {_short(mine.get(key))}" for key in changed]
                return f"{words} ({', '.join(values)})"
        return None


@dataclass(frozen=True)
class SegmentRecord:
    """A finished segment, as the manifest lists it.

    Attributes:
        file: str. Its name in the working folder.
        first: int. The index of its first frame in the clip.
        count: int. Frames it holds.
        start: Fraction. The time of its first frame.
        end: Fraction or None. The time of the frame after its last; None if the clip ends with it.
    """

    file: str
    first: int
    count: int
    start: Fraction
    end: Fraction | None


@dataclass(frozen=True)
class Progress:
    """How far a video's segments have got.

    Attributes:
        segments: list of SegmentRecord. Finished, in order.
        origin: Fraction or None. The time of the clip's first frame, as the reader gave it.
        next: FrameMark or None. The first frame not yet in a segment; None when every frame is.
        begin: FrameMark or None. Where the next read begins: `next`, or the frames of context
            a temporal model reads before it.
    """

    segments: list[SegmentRecord] = field(default_factory=list)
    origin: Fraction | None = None
    next: FrameMark | None = None
    begin: FrameMark | None = None

    @property
    def finished(self) -> bool:
        """Whether every frame of the clip is in a segment."""
        return bool(self.segments) and self.next is None

    @property
    def frames_done(self) -> int:
        return sum(segment.count for segment in self.segments)


class WorkingFolder:
    """The hidden folder where an output's segments wait, locked by the one run that uses it.

    Use it in a `with` block (entering takes the lock); leaving it keeps the folder only if it
    holds a finished segment and the run did not finish (`finish` removes it).

    Args:
        destination: Path. The output video.
        identity: JobIdentity. What the output depends on.
        resume: bool. Continue from the segments of an equal identity; False discards them.
    """

    def __init__(self, destination: Path, identity: JobIdentity, resume: bool = True) -> None:
        self.destination = destination
        self.path = working_folder(destination)
        self.identity = identity
        self.progress = Progress()
        self.discarded: str | None = None  # why segments found there were not resumed
        self._lock_fd: int | None = None
        self._lock_inode: int | None = None
        self._finished = False
        self._resume = resume

    def __enter__(self) -> WorkingFolder:
        make_output_folder(self.destination.parent)
        try:
            self.path.mkdir(exist_ok=True)
        except OSError as exc:
            raise write_error(self.destination, f"its working folder {self.path.name}: {exc.strerror or exc}",
                              is_out_of_space(exc)) from None
        try:
            self._lock()
            self._load()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            # A run whose lock was taken away (tidied after a kill) leaves the folder to whoever holds it now.
            if (self._finished or not self.progress.segments) and self._still_locked():
                shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self._release()

    def segment_path(self, first: int) -> Path:
        """Where the segment beginning with frame `first` is written."""
        return self.path / f"{first:08d}{self.destination.suffix}"

    def segments(self) -> list[Segment]:
        """The finished segments, ready to be joined."""
        return [Segment(self.path / s.file, s.start, s.end) for s in self.progress.segments]

    def record(self, segment: SegmentRecord, origin: Fraction, next_frame: FrameMark | None,
               begin: FrameMark | None) -> None:
        """Add a finished segment (already in place) to the manifest, written atomically.

        Raises:
            InputError: the folder was tidied after this run was killed (`tidy_after_a_lost_run`):
                the run stops, leaving the folder to the next one.
        """
        if not self._still_locked():
            raise InputError(f"{self.destination}: stopped; its working folder was tidied after its run was killed")
        self.progress = Progress([*self.progress.segments, segment], origin, next_frame, begin)
        document = {
            "format": _FORMAT,
            "identity": self.identity.as_json(),
            "origin": _fraction_text(origin),
            "segments": [{"file": s.file, "first": s.first, "count": s.count, "start": _fraction_text(s.start),
                          "end": _fraction_text(s.end)} for s in self.progress.segments],
            "next": _mark_json(next_frame),
            "begin": _mark_json(begin),
        }
        try:
            with atomic_output(self.path / MANIFEST) as tmp:
                tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise write_error(self.destination, exc.strerror or str(exc), is_out_of_space(exc)) from None

    def finish(self) -> None:
        """The output is in place: the folder goes when the `with` block ends."""
        self._finished = True

    def _lock(self) -> None:
        if fcntl is None:
            return
        fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputError(f"{self.destination}: another run is writing it (its working folder "
                             f"{self.path.name} is locked)") from None
        self._lock_fd = fd
        self._lock_inode = os.fstat(fd).st_ino

    def _still_locked(self) -> bool:
        """Whether the lock this run holds is still the folder's (a tidy-up after a kill removes it)."""
        if self._lock_fd is None:
            return True
        try:
            return os.stat(self.path / _LOCK).st_ino == self._lock_inode
        except OSError:
            return False

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _load(self) -> None:
        """Read the manifest; keep its segments if they fit this job, else empty the folder and say why."""
        recorded = _read_manifest(self.path / MANIFEST)
        if recorded is not None and self._resume:
            reason = self._fits(recorded)
            if reason is None:
                self.progress = recorded[1]
                self._remove_strays()
                return
            self.discarded = reason
        for stray in self._contents():
            _remove(stray)

    def _fits(self, recorded: tuple[dict, Progress]) -> str | None:
        document, progress = recorded
        reason = self.identity.difference(document.get("identity") or {})
        if reason is None and not all((self.path / s.file).is_file() for s in progress.segments):
            reason = "a segment file is missing"
        return reason

    def _contents(self) -> Iterator[Path]:
        return (p for p in self.path.iterdir() if p.name != _LOCK)

    def _remove_strays(self) -> None:
        """Remove what a killed run left: a half-written segment, a segment it never recorded."""
        keep = {MANIFEST, *(s.file for s in self.progress.segments)}
        for path in self._contents():
            if path.name not in keep:
                _remove(path)


def tidy_after_a_lost_run(destination: Path) -> None:
    """Tidy the working folder of a video whose run was killed outright (SIGKILL, a lost machine).

    Such a run cannot clean up after itself: its half-written segment is removed, and the
    whole folder if no segment was finished; finished segments stay for a re-run to
    continue. The lock goes too, so a run that was killed but is not gone yet (a kill
    takes effect a moment later) stops at its next segment instead of writing on. Only
    whoever knows that the run is gone, or has just killed it, calls this (a Ray driver).
    """
    folder = working_folder(destination)
    if not folder.is_dir():
        return
    (folder / _LOCK).unlink(missing_ok=True)
    recorded = _read_manifest(folder / MANIFEST)
    if recorded is None or not recorded[1].segments:
        shutil.rmtree(folder, ignore_errors=True)
        return
    keep = {MANIFEST, *(s.file for s in recorded[1].segments)}
    for path in folder.iterdir():
        if path.name not in keep:
            _remove(path)


def _read_manifest(path: Path) -> tuple[dict, Progress] | None:
    """The manifest's document and the progress it records; None if there is none this version reads."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != _FORMAT:
            return None
        segments = [SegmentRecord(s["file"], int(s["first"]), int(s["count"]), Fraction(s["start"]),
                                  _fraction(s["end"])) for s in document["segments"]]
        progress = Progress(segments, _fraction(document["origin"]), _mark(document["next"]), _mark(document["begin"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return document, progress


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fraction_text(value: Fraction | None) -> str | None:
    return None if value is None else str(Fraction(value))


def _fraction(text: str | None) -> Fraction | None:
    return None if text is None else Fraction(text)


def _mark_json(mark: FrameMark | None) -> dict | None:
    if mark is None:
        return None
    return {"index": mark.index, "time": _fraction_text(mark.time), "origin": _fraction_text(mark.origin)}


def _mark(document: dict | None) -> FrameMark | None:
    if document is None:
        return None
    return FrameMark(int(document["index"]), Fraction(document["time"]), _fraction(document["origin"]))


def _plain(value: Any) -> Any:
    """What `json` cannot write, as it is recorded: fractions and paths as text, records as dicts."""
    if isinstance(value, (Fraction, Path)):
        return str(value)
    if is_dataclass(value):
        return vars(value)
    raise TypeError(f"Expected a value a manifest can hold. Received: {value!r}")


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] + "..." if len(text) > 16 else text
