"""`python -m vidderain`: the same as the `vidderain` command (the benchmark starts its subprocesses this way)."""

from vidderain.cli import main

main()
