"""What the robustness tests check after every run, and how they start the real command.

Imported by test_robustness.py, test_interruptions.py and test_model_safety.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import vidderain
from vidderain.io.files import PART_MARK

REPO = Path(vidderain.__file__).resolve().parent.parent

# The command as a terminal starts it, whatever this test process inherited: Ctrl-C,
# SIGTERM and SIGHUP are not ignored (a test runner started in the background, or under
# `nohup`, would otherwise pass SIG_IGN on, and vidderain leaves ignored signals ignored).
_LAUNCH = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "runpy.run_module('vidderain', run_name='__main__', alter_sys=True)"
)
CLI = [sys.executable, "-c", _LAUNCH]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a `vidderain` subprocess: this checkout's code, a wide terminal, no TF chatter."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "200", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def run_cli(*args, prefix: list[str] | None = None, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """Run `vidderain ARGS` in a fresh process to the end; text output."""
    return subprocess.run([*(prefix or []), *CLI, *map(str, args)], capture_output=True, text=True, check=False,
                          env=child_env(), timeout=timeout, **popen)


def start_cli(log: Path, *args) -> subprocess.Popen:
    """Start `vidderain ARGS` in its own process group (a signal to the group reaches it as Ctrl-C
    from a terminal would), with stdout and stderr going to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen([*CLI, *map(str, args)], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=child_env(), start_new_session=True)


def digest_tree(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `folder` (a symlink -> its target), hidden files included."""
    digests = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            relative = str(path.relative_to(folder))
            if path.is_symlink():
                digests[relative] = "link:" + os.readlink(path)
            else:
                digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def partial_files(*folders: Path) -> list[Path]:
    """Temporary outputs (`*.vidderain-part*`) anywhere under `folders`."""
    found = []
    for folder in folders:
        if folder.exists():
            found += [Path(root) / name for root, _, files in os.walk(folder) for name in files if PART_MARK in name]
    return found


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (an ffmpeg left writing would show here)."""
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 300) -> bool:
    """Poll `condition` every 10 ms until it holds (True) or `process` ends or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(0.01)
    return False
