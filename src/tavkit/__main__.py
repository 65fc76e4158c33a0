"""``python -m tavkit`` runs the same CLI as the ``tavkit`` console script."""

from tavkit.cli import main

if __name__ == "__main__":
    main()
