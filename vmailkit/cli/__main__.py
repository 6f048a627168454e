"""``python -m vmailkit.cli``: the command line (as the ``vmailkit`` script)."""
from . import main

main()
