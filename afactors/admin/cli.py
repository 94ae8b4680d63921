"""`python -m afactors inspect|show|dead-letters|timers|purge|export|import|compact`: operator commands on a stopped
state directory. Tables for people, `--json` for scripts. Exit status: 0 done, 1 failed (message on stderr),
2 bad usage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import trio

from afactors import admin
from afactors.store import DATA_DIR, LmdbStore, Store, StoreError, StoreInUse, backend_name

COMMANDS = ("inspect", "show", "dead-letters", "timers", "purge", "export", "import", "compact")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m afactors", description="Operator commands on a stopped host.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", default=".afactors", help="the state directory (default: .afactors)")
    common.add_argument("--store", metavar="URL", help="a postgresql:// store instead of the state directory")
    common.add_argument("--json", action="store_true", help="JSON output for scripts")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("inspect", parents=[common], help="counts, sizes and conversations")
    show = sub.add_parser("show", parents=[common], help="one conversation: history, records, pending rows")
    show.add_argument("conversation", help="TENANT/CONVERSATION, as `inspect` lists it")
    dead = sub.add_parser("dead-letters", parents=[common], help="list, show, replay or purge dead letters")
    dead.add_argument("action", choices=("list", "show", "replay", "purge"))
    dead.add_argument("keys", nargs="*", help="dead-letter keys (show/replay: one or more; purge: none = all)")
    timers = sub.add_parser("timers", parents=[common], help="list, cancel or purge timers")
    timers.add_argument("action", choices=("list", "cancel", "purge"))
    timers.add_argument("conversation", nargs="?", help="TENANT/CONVERSATION (list, purge: none = every one)")
    timers.add_argument("ids", nargs="*", help="timer ids (cancel: one or more)")
    purge = sub.add_parser("purge", parents=[common], help="durably forget one conversation (every record kind)")
    purge.add_argument("conversation", help="TENANT/CONVERSATION")
    export = sub.add_parser("export", parents=[common], help="every record as schema-versioned JSON lines")
    export.add_argument("output", nargs="?", default="-", help="file to write (default: stdout)")
    imp = sub.add_parser("import", parents=[common], help="write the records of an export into the state")
    imp.add_argument("input", nargs="?", default="-", help="file to read (default: stdin)")
    compact = sub.add_parser("compact", parents=[common], help="copy the state to a new, compacted state dir")
    compact.add_argument("destination", help="a new directory (must not exist)")
    return parser


def _when(stamp: float | None) -> str:
    return "-" if not stamp else datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Columns padded to their widest cell."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _timer_table(rows: list[dict[str, Any]]) -> str:
    return table(
        [(t["conversation"], t["id"], t["status"], _when(t["due_at"] if t["status"] == "pending" else t["fired_at"]),
          t["cron"] or "-", t["turn_id"] or "-") for t in rows],
        ("conversation", "timer", "status", "due/fired (UTC)", "cron", "turn"),
    )  # fmt: skip


def _render(command: str, action: str | None, data: Any) -> str:
    if command == "inspect":
        kinds = table(sorted(data["records"].items()), ("kind", "records"))
        rows = [
            (c["conversation"], c["turns"], c["pending"], c["timers"], _when(c["updated_at"]))
            for c in data["conversations"]
        ]
        convs = table(rows, ("conversation", "turns", "pending", "timers", "last turn (UTC)"))
        timers = data["timers"]
        pending = f"timers: {timers['pending']} pending (next due {_when(timers['next_due'])}), {timers['fired']} fired"
        head = f"state {data['state_dir']} (map {100 * data['map_usage']:.1f} % used)"
        return f"{head}\n\n{kinds}\n\n{pending}\n\n{convs}"
    if command == "show":
        head = f"{data['conversation']}: {data['turns_done']} turns, last {_when(data['updated_at'])}"
        history = table([(t["seq"], t["turn_id"], t["status"], t["input"], t["output"]) for t in data["history"]],
                        ("seq", "turn", "status", "input", "output"))  # fmt: skip
        responses = table([(r["id"], r["status"], r["background"]) for r in data["responses"]],
                          ("response", "status", "background"))  # fmt: skip
        pending = f"inbox {len(data['inbox'])}, outbox {len(data['outbox'])}, dead letters {len(data['dead_letters'])}"
        return f"{head}\n\n{history}\n\n{responses}\n\n{_timer_table(data['timers'])}\n\n{pending}"
    if command == "timers" and action == "list":
        return _timer_table(data)
    if command == "dead-letters" and action in ("list", "show"):
        rows = [
            (d["key"], d["kind"], d["conversation"] or d["channel"], _when(d["failed_at"]), d["error"]) for d in data
        ]
        out = table(rows, ("key", "kind", "conversation/channel", "failed (UTC)", "error"))
        if action == "show":
            out += "\n\n" + "\n".join(orjson.dumps(d["record"], option=orjson.OPT_INDENT_2).decode() for d in data)
        return out
    if command == "purge":
        return table(sorted(data.items()), ("kind", "deleted"))
    if command == "import":
        return table(sorted(data.items()), ("kind", "imported"))
    return "\n".join(f"{k}: {v}" for k, v in data.items())


async def _run(args: argparse.Namespace) -> tuple[Any, int]:
    """The command's result (to render) and exit status."""
    async with Store.open(args.store or args.state_dir) as store:
        if args.command == "inspect":
            return admin.inspect_report(store), 0
        if args.command == "show":
            report = admin.conversation_report(store, args.conversation)
            if report is None:
                raise LookupError(f"no conversation {args.conversation!r} in {store.location} (see `inspect`)")
            return report, 0
        if args.command == "dead-letters":
            return await _dead_letters(store, args.action, args.keys), 0
        if args.command == "timers":
            return await _timers(store, args.action, args.conversation, args.ids), 0
        if args.command == "purge":
            return await admin.purge_conversation(store, args.conversation), 0
        if args.command == "export":
            lines = admin.export_lines(store)
            if args.output == "-":
                written = sum(sys.stdout.buffer.write(line + b"\n") > 0 for line in lines)
            else:
                async with await trio.open_file(args.output, "wb") as out:
                    written = 0
                    for line in lines:
                        await out.write(line + b"\n")
                        written += 1
            return {"exported": written - 1, "file": args.output}, 0
        if args.command == "import":
            if args.input == "-":
                content = sys.stdin.buffer.read()
            else:
                async with await trio.open_file(args.input, "rb") as source:
                    content = await source.read()
            return await admin.import_lines(store, content.splitlines()), 0
        if not isinstance(store, LmdbStore):
            raise ValueError("compact is not available for the PostgreSQL store: it compacts itself (autovacuum)")
        destination = Path(args.destination)
        if destination.exists():
            raise FileExistsError(f"{destination} exists; compact writes a new state directory")
        data_file = store.copy_compacted(destination)
        before = store.disk_bytes()
        return {"copy": str(destination), "bytes_before": before, "bytes_after": data_file.stat().st_size}, 0


async def _timers(store: Store, action: str, conversation: str | None, ids: list[str]) -> Any:
    if conversation is not None and not admin.has_conversation(store, conversation):
        raise LookupError(f"no conversation {conversation!r} (see `inspect`)")
    if action != "cancel" and ids:
        raise ValueError(f"timers {action} takes at most one conversation, not timer ids")
    if action == "list":
        return admin.timers(store, conversation)
    if action == "purge":
        return {"purged": await admin.purge_timers(store, path=conversation)}
    if conversation is None or not ids:
        raise ValueError("timers cancel needs a conversation and at least one timer id (see `timers list`)")
    pending = {row["id"] for row in admin.timers(store, conversation) if row["status"] == "pending"}
    missing = [timer_id for timer_id in ids if timer_id not in pending]
    if missing:
        raise LookupError(f"{conversation} has no pending timer {missing[0]!r} (see `timers list`)")
    for timer_id in ids:
        await admin.cancel_timer(store, conversation, timer_id)
    return {"cancelled": len(ids)}


async def _dead_letters(store: Store, action: str, keys: list[str]) -> Any:
    if action == "list":
        return admin.dead_letters(store)
    if action == "purge":
        return {"purged": await admin.purge_dead_letters(store, keys or None)}
    if not keys:
        raise ValueError(f"dead-letters {action} needs at least one key (see `dead-letters list`)")
    missing = [k for k in keys if not store.get("dead_letters", k)]
    if missing:
        raise LookupError(f"no dead letter {missing[0]!r} (see `dead-letters list`)")
    if action == "show":
        return [row for k in keys for row in admin.dead_letters(store, k)]
    for key in keys:
        await admin.replay_dead_letter(store, key)
    return {"replayed": len(keys), "note": "envelopes run when a host next starts on this state directory"}


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    lmdb = args.store is None or backend_name(args.store) == "lmdb"
    if lmdb and not (Path(args.store or args.state_dir) / DATA_DIR).is_dir() and args.command != "import":
        print(f"error: no afactors state in {args.store or args.state_dir} (no {DATA_DIR}/ folder)", file=sys.stderr)
        return 1
    try:
        result, status = trio.run(_run, args)
    except Exception as exc:
        error: BaseException = exc
        while isinstance(error, BaseExceptionGroup):  # the store's nursery wraps what the command raised
            error = error.exceptions[0]
        if isinstance(error, StoreInUse):
            print(f"error: {error} (a running host: use its admin API)", file=sys.stderr)
            return 1
        if isinstance(error, LookupError | ValueError | OSError | StoreError):
            print(f"error: {error}", file=sys.stderr)
            return 1
        raise
    if args.command == "export" and args.output == "-":
        return status
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(_render(args.command, getattr(args, "action", None), result))
    return status
