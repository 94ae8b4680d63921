"""`python -m bench.chaos [--quick|--full] [--only NAME ...] [--json PATH]`: run the reliability scenarios one
after the other and print every figure (see `bench/chaos/__init__.py`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

from bench.chaos import botapi, damage, disk, fds, killloop, memory
from bench.harness import progress

SCENARIOS: dict[str, Callable[[bool], dict[str, float]]] = {
    "kill": killloop.run,
    "fds": fds.run,
    "memory": memory.run,
    "disk": disk.run,
    "damage": damage.run,
    "botapi": botapi.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the long shapes (default: quick)")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="run only these scenarios")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    figures: dict[str, float] = {}
    failed: list[str] = []
    for name in args.only or list(SCENARIOS):
        started = time.monotonic()
        progress(f"== {name}")
        try:
            figures |= SCENARIOS[name](not args.full)
        except Exception as exc:  # one broken scenario must not hide the others' figures
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
            progress(f"{name} failed: {exc}")
        figures[f"chaos.{name}.wall_s"] = round(time.monotonic() - started, 1)
    width = max(map(len, figures), default=10)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:g}")
    for line in failed:
        print(f"FAILED {line}")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(figures, file, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
