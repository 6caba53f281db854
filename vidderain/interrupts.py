"""Signals that ask a run to stop become exceptions, so every `finally` block cleans up.

Ctrl-C (SIGINT) raises KeyboardInterrupt, as Python does by default. SIGTERM (what
`kill`, service managers and batch schedulers send) and SIGHUP (the terminal closed)
would end the process on the spot, leaving temporary files behind and ffmpeg writing
on; here they raise `Terminated`, a KeyboardInterrupt, so whatever handles Ctrl-C
(temporary files removed, ffmpeg stopped, a training checkpoint saved) handles them too.

Only the first signal raises: a second is ignored while the cleanup the first started
runs, so an impatient second Ctrl-C cannot cut it short and leave a temporary file. A
third ends the process at once (exit 128 + the signal's number), cleanup or not: the
way out if a cleanup hangs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
STOP_EXIT_CODES = frozenset(128 + signum for signum in STOP_SIGNALS)
FORCE_AFTER = 3  # signals: the third ends the process without cleanup


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP asked the process to stop; handled like Ctrl-C.

    Attributes:
        signum: int. The signal received.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The signal that started the stop in progress. Libraries that catch a KeyboardInterrupt
# and raise a plain one of their own (Ray does, from inside `ray.wait`) lose `Terminated`;
# the signal is still known here.
_received: list[int] = []


def _signum(exc: KeyboardInterrupt) -> int:
    if isinstance(exc, Terminated):
        return exc.signum
    return _received[0] if _received else signal.SIGINT


def exit_code(exc: KeyboardInterrupt) -> int:
    """The exit status shells give a process that a signal ended: 128 + its number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + _signum(exc)


def signal_name(exc: KeyboardInterrupt) -> str:
    """"Ctrl-C" for SIGINT, else the signal's name ("SIGTERM")."""
    signum = _signum(exc)
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, a first SIGINT, SIGTERM or SIGHUP raises in the main thread, a second is ignored, a third exits.

    Signals that were ignored when the block began stay ignored (a job started with
    `nohup`, or in the background by a non-interactive shell, was meant not to see
    them). The previous handlers come back when the block ends. Outside the main
    thread, where Python cannot install handlers, the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()

    def handle(signum: int, frame) -> None:
        _received.append(signum)
        if len(_received) == FORCE_AFTER:
            os._exit(128 + signum)
        if len(_received) > 1:
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    previous = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        previous[signum] = current
        signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
