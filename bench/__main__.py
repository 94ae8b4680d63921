"""`python -m bench [--quick|--full] [--json PATH] [NAME ...]`: run every benchmark, print one table.

Imports each known benchmark module that exists (`bench.<name>` for store, pgstore, fencing, identity, actors, http,
peers, streaming, recovery, startup, telegram, timers, agent_framework, tracing), runs it, writes
`bench/results/<name>.json`, then prints one merged table; `--json PATH` also writes the merged
`{"machine", "metrics", ...}` document. Quick mode (the default) took about 5 minutes on 2 cores before streaming,
recovery, startup and pgstore were added (about 5 more on a quiet machine).
A benchmark that raises is reported and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench.common import RESULTS_DIR, Metrics, format_table, write_json
from bench.harness import progress

KNOWN = (
    "store",
    "pgstore",
    "fencing",
    "identity",
    "actors",
    "http",
    "peers",
    "streaming",
    "recovery",
    "startup",
    "telegram",
    "timers",
    "agent_framework",
    "tracing",
    "forward",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen (default: every present) benchmark and print the merged table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True, help="short runs (default)")
    mode.add_argument("--full", dest="quick", action="store_false", help="long runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the merged result to PATH")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"run only these: {', '.join(KNOWN)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(KNOWN))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(KNOWN)}")
    merged = Metrics()
    failed: list[str] = []
    for name in args.names or KNOWN:
        if importlib.util.find_spec(f"bench.{name}") is None:
            progress(f"== {name}: bench/{name}.py not present, skipped")
            continue
        progress(f"== {name} ({'quick' if args.quick else 'full'})")
        started = time.monotonic()
        try:
            metrics = importlib.import_module(f"bench.{name}").run(args.quick)
        except Exception:
            traceback.print_exc()
            progress(f"== {name}: FAILED")
            failed.append(name)
            continue
        write_json(RESULTS_DIR / f"{name}.json", metrics)
        merged.merge(metrics)
        progress(f"== {name}: {time.monotonic() - started:.0f} s, wrote {RESULTS_DIR / name}.json")
    print(format_table(merged))
    if args.json:
        write_json(args.json, merged)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
