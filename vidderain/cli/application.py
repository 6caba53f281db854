"""The Typer app every command registers with: errors as one line, exit codes, and how help reads.

Every error a user can cause ends in one line on stderr and a non-zero exit code;
`--debug` shows the traceback instead. A setting the library refuses is named by the
command's flag (`--tile`), not by the library's parameter (`tile`). A stop (Ctrl-C,
SIGTERM, SIGHUP) says what the command leaves behind and what a re-run does.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import typing
from collections.abc import Callable, Iterator
from typing import Annotated

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the terminal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperCommand, TyperGroup

from vidderain import __version__
from vidderain.errors import DiskFullError, ParameterError, VidderainError, first_line
from vidderain.interrupts import STOP_EXIT_CODES, exit_code, signal_name, stop_signals_raise

# A stop signal exits with 128 + its number (`vidderain.interrupts.exit_code`): 130 for Ctrl-C, 143 for SIGTERM.
EXIT_FAILED_FILES, EXIT_USAGE = 1, 2

# Library parameters that the command line sets under another name.
_PARAMETER_OPTIONS = {"address": "ray_address", "width": "size", "height": "size"}

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}


class _HelpShowsNames:
    """Help that names things as the text does: a flag shows no value placeholder, and the
    usage line shows the arguments' names (`IN OUT`), not Typer's `{in_path} {out_path}`."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            # Typer labels flags `<bool>`, which invites `--overwrite true`; a flag takes no value.
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        return [piece[1:-1] if re.fullmatch(r"\{[^{}]+\}", piece) else piece for piece in pieces]


class _Command(_HelpShowsNames, TyperCommand):
    pass


class _Group(_HelpShowsNames, TyperGroup):
    pass


app = typer.Typer(
    name="vidderain",
    help="Remove rain from videos and image folders with a trained network.",
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        out.print(f"vidderain {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
) -> None:
    """Remove rain from videos and image folders with a trained network."""
    _state["debug"] = debug


def command(name: str | None = None, *, after_stop: str = "") -> Callable[[Callable], Callable]:
    """Register a command whose errors end in one line on stderr and an exit code.

    Args:
        name: str or None. The command's name; None takes the function's. Defaults to None.
        after_stop: str. What a stopped run leaves and what a re-run does, told after
            "interrupted (Ctrl-C); ". Defaults to "" (nothing to tell).
    """

    def register(fn: Callable) -> Callable:
        flags = _flags(fn)

        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                # SIGTERM and SIGHUP unwind like Ctrl-C, through every `finally` that cleans up.
                with stop_signals_raise():
                    return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort, typer.TyperException):
                raise
            except KeyboardInterrupt as exc:
                raise _stopped(exc, after_stop) from None
            except Exception as exc:
                stop = _interrupt_behind(exc)
                if stop is not None:
                    raise _stopped(stop, after_stop) from None
                if _state["debug"]:
                    err.print_exception()
                if isinstance(exc, VidderainError):
                    err.print(f"error: {_message(exc, flags)}", markup=False)
                    raise typer.Exit(EXIT_FAILED_FILES if isinstance(exc, DiskFullError) else EXIT_USAGE) from None
                if _is_out_of_memory(exc):
                    err.print("error: out of memory; try a smaller --tile or --batch", markup=False)
                else:
                    err.print(f"error: {type(exc).__name__}: {first_line(exc)} (--debug shows details)", markup=False)
                raise typer.Exit(EXIT_FAILED_FILES) from None

        return app.command(name, cls=_Command)(run)

    return register


def _stopped(stop: KeyboardInterrupt, after_stop: str) -> typer.Exit:
    """Say that a signal stopped the command, and what it leaves; the exit to raise."""
    err.print(f"interrupted ({signal_name(stop)})" + (f"; {after_stop}" if after_stop else ""), markup=False)
    return typer.Exit(exit_code(stop))


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C, SIGTERM or SIGHUP that caused an exception (`raise ... from` it), if any; else None.

    A signal that arrives while C code calls back into Python (numpy asking an array for
    `__array__`) surfaces as a SystemError caused by the KeyboardInterrupt the handler
    raised: still a stop, not a failure. An error merely raised while handling a stop
    (its `__context__`) is not followed: that is a failure of its own.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__
    return None


def _flags(fn: Callable) -> dict[str, str]:
    """Each option of a command function by its parameter name: {"pix_fmt": "--pix-fmt", "ray_address": "--ray"}."""
    flags = {}
    for parameter, hint in typing.get_type_hints(fn, include_extras=True).items():
        for info in getattr(hint, "__metadata__", ()):
            if isinstance(info, typer.models.OptionInfo):
                declared = [d for d in (info.default, *(info.param_decls or ())) if isinstance(d, str)]
                flags[parameter] = next((d for d in declared if d.startswith("--")),
                                        "--" + parameter.replace("_", "-"))
    return flags


def _message(exc: VidderainError, flags: dict[str, str]) -> str:
    """The error's line, with a refused setting named by the command's flag for it."""
    if not isinstance(exc, ParameterError):
        return str(exc)
    option = _PARAMETER_OPTIONS.get(exc.parameter, exc.parameter)
    return exc.worded(flags.get(option, flags.get(exc.parameter, exc.parameter)))


def _is_out_of_memory(exc: Exception) -> bool:
    # TensorFlow raises ResourceExhaustedError ("OOM when allocating ..."), JAX an
    # XlaRuntimeError with RESOURCE_EXHAUSTED / "out of memory"; numpy a MemoryError.
    text = str(exc)
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError"
            or re.search(r"\bOOM\b|RESOURCE_EXHAUSTED|out of memory", text, re.IGNORECASE) is not None)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what native libraries write to stderr (TensorFlow's start-up logs) unless --debug."""
    if _state["debug"]:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def progress(*fields: str) -> Progress:
    """A progress bar on stderr: description, bar, done/total, the task's `fields`, elapsed time and ETA."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(f"{{task.fields[{name}]}}") for name in fields),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
    )


def main() -> None:
    """Run the `vidderain` command."""
    try:
        app()
    except SystemExit as exc:
        if exc.code in STOP_EXIT_CODES:
            # Stopped by a signal, after every `finally` has removed temporary files and
            # ended ffmpeg: exit now. The ML backend's own teardown at interpreter exit
            # holds nothing of ours and took 2-3.5 s on the development machine, which
            # a stop that must be prompt (a service manager waits, then kills) cannot spend.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code)
        raise
