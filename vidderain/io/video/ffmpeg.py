"""Running the ffmpeg binary that imageio-ffmpeg ships: commands, processes and their logs.

ffmpeg is always run with an argument list, never through a shell, and reads and
writes files through `file:` URLs, so no name is taken for an option or a protocol.
A running ffmpeg's stderr is drained by a thread so its pipe never fills; every
process is stopped and reaped in a `finally`. The first error line ffmpeg logs that
names a cause is what a user is told.
"""

from __future__ import annotations

import functools
import re
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import imageio_ffmpeg

from vidderain.errors import InputError

NS_PER_SECOND = 1_000_000_000
_STOP_TIMEOUT_S = 5.0


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Return the path of the ffmpeg binary bundled with imageio-ffmpeg."""
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise InputError(f"no ffmpeg binary found ({exc})") from None


@functools.lru_cache(maxsize=1)
def pixel_format_depths() -> dict[str, int]:
    """Every pixel format this ffmpeg knows, with the most bits it stores per sample (`ffmpeg -pix_fmts`)."""
    text = run_ffmpeg([ffmpeg_exe(), "-hide_banner", "-pix_fmts"]).stdout
    depths = {}
    for line in text.split("-----", 1)[-1].splitlines():
        # FLAGS NAME NB_COMPONENTS BITS_PER_PIXEL BIT_DEPTHS, e.g. "IO... yuv420p10le 3 15 10-10-10".
        fields = line.split()
        if len(fields) >= 2 and len(fields[0]) == 5:
            bits = [int(b) for b in fields[-1].split("-") if b.isdigit()] if len(fields) >= 5 else []
            depths[fields[1]] = max(bits, default=8)
    return depths


def pixel_depth(pix_fmt: str) -> int:
    """Bits per sample that `pix_fmt` stores (10 for yuv420p10le); 8 for a format this ffmpeg does not list."""
    return pixel_format_depths().get(pix_fmt, 8)


def seconds_arg(seconds: float) -> str:
    """Seconds as ffmpeg's `-ss`/`-t` take them, to the microsecond."""
    return f"{seconds:.6f}"


def ffmpeg_command(level: str) -> list[str]:
    """The start of every long-running ffmpeg command: no banner, no stdin, logs at `level` with severity tags."""
    # `level+` prefixes each log line with its severity, which is how errors are picked out.
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", f"level+{level}"]


def file_url(path: Path) -> str:
    """`path` as an ffmpeg URL that is always read as a local file.

    Without the `file:` protocol, names like "pipe:1.mp4", "http:x.mkv" or "-x.mp4"
    would be taken as a protocol or an option.
    """
    return "file:" + str(Path(path).absolute())


def run_ffmpeg(args: list[str]) -> subprocess.CompletedProcess:
    """Run ffmpeg to completion and capture its output as text."""
    try:
        return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise InputError(f"cannot run ffmpeg ({exc.strerror or exc})") from None


_LEVEL_RE = re.compile(r"^(\[[^\]]*@ 0x[0-9a-f]+\] )?\[(trace|debug|verbose|info|warning|error|fatal|panic)\] ?")
_ERROR_LEVELS = frozenset({"error", "fatal", "panic"})


def _split_level(line: str) -> tuple[str | None, str]:
    """Split one `level+` log line into its severity and the line without the tag."""
    match = _LEVEL_RE.match(line)
    if match is None:
        return None, line
    return match[2], (match[1] or "") + line[match.end() :]


def parse_log(text: str) -> tuple[list[str], list[str]]:
    """ffmpeg's stderr as lines without severity tags, and the error lines among them."""
    lines, errors = [], []
    for raw in text.splitlines():
        level, line = _split_level(raw)
        lines.append(line)
        if level in _ERROR_LEVELS:
            errors.append(line)
    return lines, errors


_NOISE = (
    "Conversion failed",
    "Exiting with exit code",
    "Terminating thread with return code",
    "Task finished with error code",
    "Error opening output files",
    "Error opening input files",
    "Nothing was written into output file",
    "Error sending frames to consumers",
    "Could not open encoder before EOF",
)


def error_summary(errors: Sequence[str], tail: Sequence[str] = ()) -> str:
    """The first error line ffmpeg printed that names a cause, without its context address.

    ffmpeg follows the cause ("width not divisible by 2", "No space left on device")
    with generic lines ("Conversion failed!"); those are skipped.
    """
    meaningful = [line for line in errors if not any(noise in line for noise in _NOISE)]
    fallback = [line for line in tail if line.strip()][-1:]
    chosen = (meaningful or list(errors) or fallback or ["no error message"])[0].strip()
    # "[libx264 @ 0x5f..] width not divisible by 2" -> "libx264: width ...";
    # contexts like "[in#0 @ 0x..]" or "[vost#0:0/libx264 @ 0x..]" say nothing to a user.
    match = re.match(r"\[([^\]@]*?) @ 0x[0-9a-f]+\] (.*)", chosen)
    if match:
        context, message = match[1], match[2]
        return f"{context}: {message}" if re.fullmatch(r"[A-Za-z0-9_-]+", context) else message
    return chosen


class FfmpegProcess:
    """One running ffmpeg: its pipes, a thread draining its stderr, and how to stop it."""

    def __init__(
        self,
        args: list[str],
        *,
        stdin: bool = False,
        stdout: bool = False,
        on_line: Callable[[str | None], None] | None = None,
    ) -> None:
        self._on_line = on_line
        self._errors: list[str] = []
        self._tail: deque[str] = deque(maxlen=30)
        self.log_done = False
        try:
            # A new session keeps Ctrl-C away from ffmpeg: Python gets it and stops ffmpeg
            # in its `finally` blocks, instead of ffmpeg finishing a half-written file.
            self._popen = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise InputError(f"cannot run ffmpeg ({exc.strerror or exc})") from None
        self.stdin = self._popen.stdin
        self.stdout = self._popen.stdout
        self._drain = threading.Thread(target=self._read_log, name="ffmpeg-stderr", daemon=True)
        self._drain.start()

    def _read_log(self) -> None:
        try:
            for raw in self._popen.stderr:
                level, line = _split_level(raw.decode("utf-8", "replace").rstrip("\r\n"))
                if level in _ERROR_LEVELS and len(self._errors) < 20:
                    self._errors.append(line)
                self._tail.append(line)
                if self._on_line is not None:
                    self._on_line(line)
        except (OSError, ValueError):
            pass  # stderr closed by stop(); nothing more to read
        finally:
            self.log_done = True
            if self._on_line is not None:
                self._on_line(None)  # the log has ended: wake anyone waiting on it

    @property
    def logged_errors(self) -> bool:
        """Whether ffmpeg has logged an error so far."""
        return bool(self._errors)

    @property
    def returncode(self) -> int | None:
        """ffmpeg's exit status once it has exited (negative: the signal that ended it), else None."""
        return self._popen.poll()

    def error_summary(self) -> str:
        """One line: the cause ffmpeg gave for failing."""
        self._drain.join(timeout=1.0)
        return error_summary(self._errors, list(self._tail))

    def close_stdin(self) -> None:
        if self.stdin is not None and not self.stdin.closed:
            try:
                self.stdin.close()
            except OSError:
                pass  # ffmpeg already gone; its exit status tells why

    def wait(self) -> int:
        """Wait for ffmpeg to exit (it finishes encoding first) and return its exit status."""
        code = self._popen.wait()
        self._drain.join(timeout=5.0)
        return code

    def wait_briefly(self) -> None:
        try:
            self._popen.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
        self._drain.join(timeout=1.0)

    def stop(self) -> None:
        """End ffmpeg now and reap it, so no zombie is left.

        Whatever a running ffmpeg would still produce is discarded here (a reader
        closed early, a writer whose temporary file is about to be removed), so it is
        killed rather than asked to stop: asked, an encoder first flushes the frames
        its look-ahead holds, which took seconds with slow presets.
        """
        popen = self._popen
        try:
            # Killed first: a pipe that another thread is writing or reading is closed only
            # once that call returns, which the dead process makes it do at once.
            if popen.poll() is None:
                popen.kill()
            for pipe in (popen.stdin, popen.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass  # a broken pipe on close changes nothing now
            popen.wait()
        finally:
            self._drain.join(timeout=1.0)
            if not self._drain.is_alive():
                popen.stderr.close()
