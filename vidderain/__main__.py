"""`python -m vidderain`: the same as the `vidderain` command (the benchmark starts its subprocesses this way)."""

from vidderain.cli import main

if __name__ == "__main__":
    main()
