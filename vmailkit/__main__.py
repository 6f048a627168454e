"""``python -m vmailkit`` runs the command line."""
from .cli import main

main()
