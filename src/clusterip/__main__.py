"""`python -m clusterip` runs the command line."""

from clusterip.cli import main

main()
