"""The store keys of a conversation's rows, all under the conversation's `key.path`: made and parsed only here."""

from __future__ import annotations

import os
import time

_STAMP_DIGITS = 20


def turn_key(path: str, seq: int) -> str:
    """Key of the `TurnRecord` number `seq` (from 1) in kind "turns"."""
    return f"{path}/{seq:012d}"


def inbox_key(path: str, stamp: int) -> str:
    """Key of an inbox row; `stamp` grows with arrival so rows sort in arrival order."""
    return f"{path}/{stamp:0{_STAMP_DIGITS}d}"


def dedup_key(path: str, idempotency_key: str) -> str:
    """Key of the `DedupRecord` of an idempotency key."""
    return f"{path}/{idempotency_key}"


def dead_letter_key(path: str, turn_id: str) -> str:
    """Key of the `DeadLetter` of a poison envelope."""
    return f"{path}/{turn_id}"


def rejected_input_key(channel: str, key: str) -> str:
    """Key of the `DeadLetter` of an input channel `channel` could not handle (its own `key` for it)."""
    return f"{channel}/{key}"


UNDELIVERED_PREFIX = "outbox/"
"""The dead letters of pushes that could not be delivered are kept under this prefix plus their outbox key."""


def records_prefix(path: str) -> str:
    """Key prefix of the target records (kind "checkpoints") of conversation `path`: length-prefixed, so no other
    conversation's prefix starts with it (not even that of `path + "/x"`)."""
    return f"{len(path)}:{path}/"


def record_key(path: str, name: str) -> str:
    """Key of the target record `name` of conversation `path`."""
    return records_prefix(path) + name


def undelivered_key(outbox_key: str) -> str:
    """Key of the `DeadLetter` of a push that could not be delivered (kept apart from poison envelopes)."""
    return f"{UNDELIVERED_PREFIX}{outbox_key}"


def redriven_key(undelivered: str) -> str:
    """The outbox key a dead-lettered push goes back under (the inverse of `undelivered_key`)."""
    return undelivered.removeprefix(UNDELIVERED_PREFIX)


def outbox_key(path: str, stamp: int) -> str:
    """Key of the push answering the envelope accepted at `stamp` (its inbox stamp when it has one).

    One envelope gets at most one push; the key sorts in arrival order and stays the same when an inboxed
    envelope is replayed, so a receiver can deduplicate on it.
    """
    return f"{path}/{stamp:0{_STAMP_DIGITS}d}"


def stamp_of(stored_key: str) -> int | None:
    """The arrival stamp at the end of an inbox or outbox key; None when the key is not one of ours."""
    tail = stored_key.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def destination_group(tenant: str, channel: str, native_id: str) -> str:
    """The ordering group of the pushes to one channel identity that is not a turn's originating channel
    (a response target's destination, a push without a turn): its rows are delivered in order, and apart from
    every other recipient's."""
    return f"{tenant}/>{channel}/{native_id}"


def is_destination_group(group: str) -> bool:
    """Whether outbox group `group` is a `destination_group` (else it is a conversation's)."""
    return group.partition("/")[2].startswith(">")


def push_dedup_key(tenant: str, idempotency_key: str) -> str:
    """Key of the `DedupRecord` of a push's idempotency key (kind "dedup")."""
    return dedup_key(f"{tenant}/>push", idempotency_key)


def outcome_key(delivery_id: str, n: int) -> str:
    """Key of the `DeliveryOutcome` of row `n` of the deliveries of turn or push `delivery_id`."""
    return f"{delivery_id}/{n:06d}"


def outbox_group(key: str) -> str:
    """The ordering group of an outbox row (its conversation): the key without the trailing arrival stamp."""
    return key[: -_STAMP_DIGITS - 1]


def timer_key(path: str, timer_id: str) -> str:
    """Key of a `TimerRecord` in kind "timers" (timer ids have no "/", so keys of two conversations never clash)."""
    return f"{path}/{timer_id}"


def timer_due_key(due_at: float, timer_key: str) -> str:
    """Key of a timer's row in the due-time index "timer_due": microseconds since the epoch first, so the index
    sorts by due time."""
    return f"{max(0, round(due_at * 1_000_000)):018d}/{timer_key}"


def due_of(timer_due_key: str) -> float:
    """The due time (epoch seconds) at the front of a "timer_due" key."""
    return int(timer_due_key[:18]) / 1_000_000


_last_ns = 0
_random = b""  # random bytes drawn from the OS in blocks (one syscall per 1,024 ids), used 4 at a time
_random_at = 0


def new_turn_id(prefix: str = "turn_") -> str:
    """A fresh turn id: `prefix` + 16 hex digits of a strictly growing nanosecond clock + 8 random hex digits.

    Ids made later sort later, so the response records of new turns are appended at the end of LMDB's B-tree
    instead of dirtying a random page each (the writer's transactions got ~45 % cheaper than with random ids).
    """
    global _last_ns, _random, _random_at
    _last_ns = max(_last_ns + 1, time.time_ns())
    if _random_at >= len(_random):
        _random, _random_at = os.urandom(4096), 0
    _random_at += 4
    return f"{prefix}{_last_ns:016x}{_random[_random_at - 4 : _random_at].hex()}"
