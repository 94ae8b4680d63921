"""`python -m afactors`."""

import sys

from afactors.cli import main

if __name__ == "__main__":
    sys.exit(main())
