"""``python -m shrinkface`` runs the command line."""

from shrinkface.runtime.cli import main

main()
