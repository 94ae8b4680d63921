"""Server-sent events for MCP streams: frames, the priming event and resumable event ids. No I/O.

An event id is `<stream>-<seq>`: the stream number (unique within the session) and the event's position in
that stream, so `Last-Event-ID` alone says which stream to resume and from where (M-07).
"""

from __future__ import annotations

import re

KEEPALIVE = b": keepalive\n\n"
_EVENT_ID = re.compile(r"^([0-9]{1,9})-([0-9]{1,9})$")


def event_id(stream: int, seq: int) -> str:
    return f"{stream}-{seq}"


def parse_event_id(value: str | None) -> tuple[int, int] | None:
    """The (stream, seq) of a `Last-Event-ID`; None when it is not one of ours."""
    match = _EVENT_ID.match(value or "")
    return None if match is None else (int(match[1]), int(match[2]))


def frame(data: bytes, id: str | None = None) -> bytes:
    """One `message` event carrying one JSON-RPC message (JSON has no raw newlines, so one data line)."""
    head = b"event: message\n" + (f"id: {id}\n".encode() if id is not None else b"")
    return head + b"data: " + data + b"\n\n"


def priming(id: str, retry_ms: int) -> bytes:
    """The first event of a resumable stream: an id with empty data, and how soon to reconnect (2025-11-25)."""
    return f"id: {id}\nretry: {retry_ms}\ndata: \n\n".encode()
