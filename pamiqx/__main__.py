"""``python -m pamiqx`` runs the command line."""

from pamiqx.cli import main

main()
