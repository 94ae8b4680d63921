"""The store keys a conversation actor writes, all under the conversation's `key.path`."""

from __future__ import annotations

import secrets


def turn_key(path: str, seq: int) -> str:
    """Key of the `TurnRecord` number `seq` (from 1) in kind "turns"."""
    return f"{path}/{seq:012d}"


def inbox_key(path: str, stamp: int) -> str:
    """Key of an inbox row; `stamp` grows with arrival so rows sort in arrival order."""
    return f"{path}/{stamp:020d}"


def dedup_key(path: str, idempotency_key: str) -> str:
    """Key of the `DedupRecord` of an idempotency key."""
    return f"{path}/{idempotency_key}"


def dead_letter_key(path: str, turn_id: str) -> str:
    """Key of the `DeadLetter` of a poison envelope."""
    return f"{path}/{turn_id}"


def outbox_key(path: str, stamp: int) -> str:
    """Key of the push answering the envelope accepted at `stamp` (its inbox stamp when it has one).

    One envelope gets at most one push; the key sorts in arrival order and stays the same when an inboxed
    envelope is replayed, so a receiver can deduplicate on it.
    """
    return f"{path}/{stamp:020d}"


def new_turn_id() -> str:
    """A fresh turn id: "turn_" + 24 random hex digits."""
    return "turn_" + secrets.token_hex(12)
