"""`python -m afactors`: serve a target over every installed channel."""

import sys

from afactors import __version__


def main(argv: list[str] | None = None) -> int:
    print(f"afactors {__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
