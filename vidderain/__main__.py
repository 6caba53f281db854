"""`python -m vidderain` runs the `vidderain` command (the benchmark starts its subprocesses this way)."""

from vidderain.cli import main

main()
