"""`python -m afactors store verify|salvage`: check a stopped store, or copy what it still holds."""

from __future__ import annotations

import argparse
import sys

from afactors.store import StoreError, backend_name, salvage, verify


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m afactors store", description="Check or salvage a stopped store.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="read every record; exit 1 if anything is damaged or lost")
    check.add_argument("--state-dir", "--store", dest="state_dir", default=".afactors")
    copy = commands.add_parser("salvage", help="copy every readable record to a new state directory")
    copy.add_argument("--state-dir", "--store", dest="state_dir", default=".afactors")
    copy.add_argument("--to", required=True, metavar="NEW_DIR", help="the new state directory (must not exist)")
    return parser


def main(argv: list[str]) -> int:
    """Run a store command; prints one line per record kind, or one `error:` line."""
    args = build_parser().parse_args(argv)
    if backend_name(args.state_dir) != "lmdb":
        print(f"error: store {args.command} is not available for the PostgreSQL store: it reads LMDB files (PostgreSQL"
              " checks its own pages: see `pg_amcheck`)", file=sys.stderr)  # fmt: skip
        return 1
    try:
        report = verify(args.state_dir) if args.command == "verify" else salvage(args.state_dir, args.to)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line)
    if args.command == "salvage":
        print(f"salvaged {report.read} records into {args.to}; start it with --state-dir {args.to}")
        return 0
    print("damaged" if report.damaged else "ok")
    return 1 if report.damaged else 0
