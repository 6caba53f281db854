"""`python -m vidderain`: the same as the `vidderain` command."""

from vidderain.cli import main

main()
