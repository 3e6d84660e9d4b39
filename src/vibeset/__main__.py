"""``python -m vibeset`` runs the CLI."""

from .cli import main

main()
