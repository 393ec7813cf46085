"""`python -m hai_compiler ...` runs the `hai` command line (for environments without the console script)."""

from hai_compiler.cli import main

main()
