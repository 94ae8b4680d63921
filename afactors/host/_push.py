"""Pushes without a turn (`host.push`, `POST /v1/pushes`): notifications and broadcasts, through the same durable
outbox as turns' replies, and the delivery audit of turns and pushes (`GET /v1/deliveries/<id>`).

A push is resolved like a response target (`Router.for_push`), then committed in one transaction: one outbox row
per destination (each recipient its own ordering group, so 10,000 chats are delivered concurrently, as fast as
the channel's own rate limiter lets them out), the audit of intended destinations, and the push's idempotency
key. Asking again with the same key returns the first push and queues nothing (on condition that the key is new
when the push commits, so also when two nodes of a cluster are asked at once); rows survive kill -9 and are
delivered after the restart; each row is deleted in the commit that records it delivered.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import trio

from afactors.actors import ActorSystem, ledger, new_turn_id
from afactors.host._routing import Router, RoutingError
from afactors.model import Identity, Message, Reply, ResponseTarget, Skipped, converter
from afactors.store import DedupRecord, DeliveryAudit, DeliveryOutcome, Expect, Store

MAX_KEY_CHARS = 256


@attrs.frozen
class PushResult:
    """A queued push: its id (for `GET /v1/deliveries/<id>`), how many destinations got a row, what was skipped,
    and whether an earlier push with the same idempotency key answered (nothing was queued again)."""

    id: str
    destinations: int
    skipped: tuple[Skipped, ...] = ()
    duplicate: bool = False


def as_reply(message: str | Message | Reply) -> Reply:
    """What a push sends: a text is one assistant message."""
    if isinstance(message, Reply):
        return message
    if isinstance(message, str):
        message = Message("assistant", message)
    return Reply(messages=(message,))


class Pusher:
    """Queues pushes for one host and reads delivery audits."""

    def __init__(self, store: Store, system: ActorSystem, router: Router) -> None:
        self._store, self._system, self._router = store, system, router
        self._lock = trio.Lock()  # pushes with one idempotency key are queued once

    async def push(
        self,
        tenant: str,
        target: ResponseTarget,
        message: str | Message | Reply,
        *,
        idempotency_key: str,
        user: Identity | None = None,
    ) -> PushResult:
        """Queue `message` for `target`'s destinations in `tenant`. Raises `RoutingError` (unknown channel or
        identity, a channel that cannot push, nothing to deliver to) and `ValueError` (a bad idempotency key)."""
        if not idempotency_key or len(idempotency_key) > MAX_KEY_CHARS or not idempotency_key.isprintable():
            raise ValueError(f"an idempotency key must be 1-{MAX_KEY_CHARS} printable characters")
        reply = as_reply(message)
        dedup = ledger.push_dedup_key(tenant, idempotency_key)
        async with self._lock:
            if (earlier := self._earlier(tenant, dedup)) is not None:
                return earlier
            routing = self._router.for_push(tenant, target, user)
            push_id = new_turn_id("push_")
            stamp = self._system._next_stamp()  # the clock of outbox rows: pushes sort among replies
            ops = ledger.broadcast(tenant, push_id, routing, reply, stamp, time.time(), idempotency_key)
            if not await self._system.commit(ops, expect=[Expect("dedup", dedup, None)]):  # another node's, first
                earlier = self._earlier(tenant, dedup)
                assert earlier is not None
                return earlier
        return PushResult(push_id, len(routing.destinations), routing.skipped)

    def _earlier(self, tenant: str, dedup: str) -> PushResult | None:
        """The push queued earlier under the idempotency key `dedup`, as a duplicate; None when there is none."""
        earlier: DedupRecord | None = self._store.get("dedup", dedup)
        if earlier is None:
            return None
        audit = self.audit(tenant, earlier.turn_id)
        count, skipped = (len(audit.destinations), audit.skipped) if audit is not None else (0, ())
        return PushResult(earlier.turn_id, count, skipped, duplicate=True)

    def audit(self, tenant: str, delivery_id: str) -> DeliveryAudit | None:
        """The delivery audit of a turn or push of `tenant` (None: unknown, or another tenant's)."""
        audit: DeliveryAudit | None = self._store.get("deliveries", delivery_id)
        return audit if audit is not None and audit.tenant == tenant else None

    def report(self, tenant: str, delivery_id: str) -> dict[str, Any] | None:
        """The audit as JSON: every intended destination with its status (`pending`, `delivered`,
        `dead_lettered`), the skipped ones with the reason, and the counts."""
        audit = self.audit(tenant, delivery_id)
        if audit is None:
            return None
        outcomes: dict[str, DeliveryOutcome] = dict(self._store.scan("outcomes", delivery_id + "/"))
        rows = []
        counts = {"pending": 0, "delivered": 0, "dead_lettered": 0}
        for n, d in enumerate(audit.destinations):
            outcome = outcomes.get(ledger.outcome_key(delivery_id, n))
            status = "pending" if outcome is None else outcome.status
            counts[status] += 1
            row: dict[str, Any] = {"channel": d.channel, "user": d.user_id, "status": status,
                                   "originating": n == audit.originating, "echo": d.echo}  # fmt: skip
            if outcome is not None:
                row.update(at=outcome.at, attempts=outcome.attempts)
                if outcome.error:
                    row["error"] = outcome.error
            rows.append(row)
        return {
            "object": "delivery",
            "id": delivery_id,
            "target": converter.unstructure(audit.target),
            "source": audit.source,
            "created_at": audit.created_at,
            "destinations": rows,
            "skipped": [{"channel": s.channel, "user": s.user_id, "reason": s.reason} for s in audit.skipped],
            "counts": counts,
        }


__all__ = ["PushResult", "Pusher", "RoutingError", "as_reply"]
