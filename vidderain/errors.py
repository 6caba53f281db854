"""Exceptions a user can cause and fix; the CLI prints their message as one line."""


class VidderainError(Exception):
    """A problem with the user's input, files or model, described in one line."""


class InputError(VidderainError):
    """An input path or file that cannot be used as given."""


class ModelError(VidderainError):
    """A model that is missing, unsafe, corrupt or does not fit the input."""
