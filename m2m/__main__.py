"""``python -m m2m``: the ``m2m`` command (pyproject's console script calls the same ``main``)."""

import sys

from m2m.cli import main

if __name__ == "__main__":
    sys.exit(main())
