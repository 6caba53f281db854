"""Exceptions a user can cause and fix, and the wording of the errors about paths.

The CLI prints an error's message as one line. Library code speaks the library's
language: a setting is named by its parameter (`patch`, `val_split`), and the CLI,
which knows its flags, says `--patch` and `--val-split` instead (`ParameterError.worded`).
"""

from __future__ import annotations

import os


class VidderainError(Exception):
    """A problem with the user's input, files or model, described in one line."""


class InputError(VidderainError):
    """An input path or file that cannot be used as given."""


class ModelError(VidderainError):
    """A model that is missing, unsafe, corrupt or does not fit the input."""


class DiskFullError(VidderainError):
    """The destination ran out of space (or hit a file-size limit): the whole run stops.

    Every later write would fail the same way, so the run ends with this one error
    instead of a failure per file; finished outputs are kept and a re-run skips them.
    """


NAME = "{name}"  # where a ParameterError's sentence names the setting
_NO_VALUE = object()


class ParameterError(InputError, ValueError):
    """A setting whose value cannot work, named by the parameter that set it.

    `str(error)` names the parameter ("patch must be a multiple of 8 for default.
    Received: patch=30"); `worded(name)` gives the same message under another name,
    such as the command line's flag ("--patch ... Received: --patch=30"). A ValueError
    too, as a bad argument is.

    Args:
        parameter: str. The parameter's name in the library's API, e.g. "tile", "val_split".
        value: object. The value received; left out when the setting was missing.
        expected: str. What would work, in words: the message reads "PARAMETER must be EXPECTED".
        sentence: str or None. A message of another shape instead, with `{name}` (NAME)
            where the setting's name goes: "a folder of frames needs {name}". Defaults to None.
        path: str, PathLike or None. The file or folder the setting was needed for,
            put in front of the message. Defaults to None.
    """

    def __init__(self, parameter: str, value: object = _NO_VALUE, expected: str = "", *,
                 sentence: str | None = None, path: str | os.PathLike | None = None):
        if not expected and sentence is None:
            raise TypeError("ParameterError needs what was expected or a sentence")
        self.parameter = parameter
        self.value = value
        self.expected = expected
        self.sentence = sentence
        self.path = path
        super().__init__(self.worded(parameter))

    def worded(self, name: str) -> str:
        """The message with `name` where the setting is named."""
        text = self.sentence.replace(NAME, name) if self.sentence is not None else f"{name} must be {self.expected}"
        if self.value is not _NO_VALUE:
            text += f". Received: {name}={self.value!r}"
        return text if self.path is None else f"{self.path}: {text}"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# The wording of path errors, one helper each. Each returns the message; the caller
# raises the error type that fits (InputError, ModelError).


def no_such(path: str | os.PathLike, kind: str = "file") -> str:
    """`PATH: no such file` (or folder, model file ...)."""
    return f"{path}: no such {kind}"


def not_a_folder(path: str | os.PathLike, wanted: str = "a folder") -> str:
    """`PATH: is a file, not a folder` (or the kind of folder `wanted`)."""
    return f"{path}: is a file, not {wanted}"


def not_a_file(path: str | os.PathLike, wanted: str = "a file") -> str:
    """`PATH: is a folder, not a file` (or the kind of file `wanted`)."""
    return f"{path}: is a folder, not {wanted}"


def permission_denied(path: str | os.PathLike, consequence: str = "") -> str:
    """`PATH: permission denied`, with what it prevents (`; the folder cannot be read`)."""
    return f"{path}: permission denied" + (f"; {consequence}" if consequence else "")


def choose_another_output(path: str | os.PathLike, reason: str) -> str:
    """`PATH: REASON; choose another output path`, for an output that would harm an input."""
    return f"{path}: {reason}; choose another output path"

