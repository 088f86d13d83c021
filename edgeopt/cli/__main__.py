"""`python -m edgeopt.cli`."""

from edgeopt.cli import main

main()
