"""The `vidderain` command line: parses, wires library calls together and reports.

The app and its error handling are in `application`, the options several commands
share in `options`; each command group has a module: `derain` (folder, video),
`info` (eval, models), `train` and `bench`. Importing this package registers them
all, in the order `vidderain --help` lists them.
"""

# Each module registers its commands as it is imported; `vidderain --help` lists them in this order.
from vidderain.cli import derain, info, train, bench  # noqa: F401, I001
from vidderain.cli.application import app, main

__all__ = ["app", "main"]
