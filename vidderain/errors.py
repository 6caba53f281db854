"""Exceptions a user can cause and fix; the CLI prints their message as one line."""


class VidderainError(Exception):
    """A problem with the user's input, files or model, described in one line."""


class InputError(VidderainError):
    """An input path or file that cannot be used as given."""


class ModelError(VidderainError):
    """A model that is missing, unsafe, corrupt or does not fit the input."""


class ParameterError(VidderainError, ValueError):
    """A setting with a value that cannot work; the CLI names the flag that set it.

    Attributes:
        parameter: str. The setting's name in the library (`patch`, `rain_mix`).
        value: the value received.
        expected: str. What would work, in words.
    """

    def __init__(self, parameter: str, value, expected: str):
        self.parameter, self.value, self.expected = parameter, value, expected
        super().__init__(f"{parameter} must be {expected}. Received: {parameter}={value!r}")


class DiskFullError(VidderainError):
    """The destination ran out of space (or hit a file-size limit): the whole run stops.

    Every later write would fail the same way, so the run ends with this one error
    instead of a failure per file; finished outputs are kept and a re-run continues.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
