"""The delivery outbox: pushes committed replies through their channel's `deliver`, surviving crashes.

A turn whose envelope carries a `reply_to` commits an outbox row in the same transaction as the turn. This
worker delivers rows in key order per conversation (concurrently across conversations), deletes a row once its
channel's `deliver` returns, retries failures with jittered exponential backoff (or the channel's
`retry_after`) for as long as its `DeliveryPolicy` allows (by time, so an outage of several minutes is ridden
out), and moves a row to the dead letters after that, after a permanent failure, or after a second send whose
answer was lost. `Outbox.redrive` puts dead-lettered deliveries back in the outbox.

On a cluster node (`leases`), a conversation's rows are written and delivered by its owner only, but rows of a
destination group (pushes to one channel identity, from any node's turns and broadcasts) may be written by every
node: such a group is delivered by the holder of its lease only (taken for the drain, given back after it), so no
row goes out twice and a recipient's rows go out in order. A node that finds another live node delivering the
group looks again every `CLAIM_RETRY` seconds while rows are left, as that drain may end before it sees them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import attrs
import trio

from afactors._backoff import Backoff
from afactors.actors import ActorUnavailable, NotOwner, ledger
from afactors.admin import ConversationReplay
from afactors.channel import Deliver, Delivery, DeliveryFailed, ResponseHook
from afactors.host._hooks import called
from afactors.model import ConversationKey, Envelope, Identity, Message, Reply, ReplyTarget, converter
from afactors.store import DeadLetter, Expect, OutboxRecord, Store, StoreError

log = logging.getLogger("afactors.delivery")

STORE_RETRY = 5.0
"""Seconds a conversation's deliveries wait after their bookkeeping could not be stored (a full disk)."""

CLAIM_RETRY = 1.0
"""Seconds between a cluster node's looks at a destination group another live node delivers."""


class GroupLeases(Protocol):
    """A cluster node's leases (`afactors.cluster.Leases`), as delivery holds the lease of an outbox group."""

    async def claim_path(self, path: str) -> bool:
        """Hold `path`'s lease (True: taken now, False: held already); `NotOwner` while a live node holds it."""
        ...

    def release(self, path: str) -> None:
        """Give the lease back."""
        ...


@attrs.frozen
class DeliveryPolicy:
    """How long and how often the outbox retries a push.

    `retry_for`: seconds from a row's first failure after which it is dead-lettered (default 15 minutes);
    `max_attempts`: an optional cap on attempts as well; `backoff`: (first, longest) delay between attempts;
    `max_ambiguous_retries`: how many times a send whose answer was lost (it may have arrived) is sent again.
    """

    retry_for: float = 900.0
    max_attempts: int | None = None
    backoff: tuple[float, float] = (0.5, 60.0)
    max_ambiguous_retries: int = 1


@attrs.frozen
class DeliveryStats:
    """A snapshot of an outbox's counts since it started."""

    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    redriven: int = 0


class Outbox:
    """Runs deliveries for the channels in `delivers` (channel name -> deliver function); each reply (and echo)
    goes through its destination channel's response hook in `hooks` first."""

    def __init__(
        self,
        store: Store,
        delivers: Mapping[str, Deliver],
        *,
        policy: DeliveryPolicy | None = None,
        concurrency: int = 10_000,
        hooks: Mapping[str, ResponseHook] | None = None,
    ) -> None:
        self._counts = dict.fromkeys(attrs.fields_dict(DeliveryStats), 0)
        self.policy = policy or DeliveryPolicy()
        self._store = store
        self._delivers = dict(delivers)
        self._hooks = dict(hooks or {})
        self._backoff = Backoff(*self.policy.backoff)
        self._limiter = trio.CapacityLimiter(concurrency)
        self._active: set[str] = set()
        self._nursery: trio.Nursery | None = None
        self.recover = True
        """Whether `run` delivers every row earlier runs left (a cluster node: no, its sweeper hands them over)."""
        self.leases: GroupLeases | None = None
        """A cluster node's leases: destination groups are delivered under their lease (the module docstring)."""
        self.drained: Callable[[str], None] = lambda group: None
        """Called when a conversation's rows are all delivered (a cluster node gives its lease back if idle)."""
        self.replay: ConversationReplay | None = None
        """A cluster node's replay of a conversation's dead letters where it is owned: `redrive` goes through it."""

    def statistics(self) -> DeliveryStats:
        """A frozen snapshot of the counts so far."""
        return DeliveryStats(**self._counts)

    @property
    def stats(self) -> DeliveryStats:
        """`statistics()`."""
        return self.statistics()

    def notify(self, outbox_key: str) -> None:
        """A row was committed under `outbox_key`: make sure its group is being delivered."""
        group = ledger.outbox_group(outbox_key)
        if self._nursery is not None and group not in self._active:
            self._active.add(group)
            self._nursery.start_soon(self._drain, group)

    def delivering(self, group: str) -> bool:
        """Whether the rows of outbox group `group` (a conversation's path) are being delivered now."""
        return group in self._active

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver what earlier runs left in the outbox, then whatever `notify` announces, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for key, _ in self._store.scan("outbox") if self.recover else ():
                self.notify(key)
            task_status.started()
            await trio.sleep_forever()

    async def _drain(self, group: str) -> None:
        leased = self.leases is not None and ledger.is_destination_group(group)
        try:
            if leased and not await self._hold(group):
                return
            while (first := self._next(group)) is not None:
                key, row = first
                if (wait := row.due_at - time.time()) > 0:
                    await trio.sleep(wait)
                try:
                    await self._deliver_one(key, row)
                except StoreError as exc:  # a full disk: keep the row, try again once writes may work
                    log.error("delivery bookkeeping of %s could not be stored (%s); retrying in %.0f s", key, exc,
                              STORE_RETRY)  # fmt: skip
                    await trio.sleep(STORE_RETRY)
        finally:
            self._active.discard(group)
            if leased and self.leases is not None:
                self.leases.release(group)
            elif not leased:
                self.drained(group)

    def _next(self, group: str) -> tuple[str, OutboxRecord] | None:
        """The group's first row, if any."""
        rows = self._store.scan("outbox", group + "/", limit=1)
        if not rows or ledger.outbox_group(rows[0][0]) != group:  # another group under this prefix ("c" vs "c/x")
            return None
        key, row = rows[0]
        return key, row

    async def _hold(self, group: str) -> bool:
        """Hold a destination group's lease to deliver it; False when its rows are gone meanwhile (another node
        delivered them)."""
        assert self.leases is not None
        while True:
            try:
                await self.leases.claim_path(group)
                return True
            except NotOwner:
                if self._next(group) is None:
                    return False
                await trio.sleep(CLAIM_RETRY)

    async def _deliver_one(self, key: str, row: OutboxRecord) -> None:
        attempt = row.attempts + 1
        deliver = self._delivers.get(row.channel)
        try:
            if deliver is None:
                raise DeliveryFailed(f"no channel named {row.channel!r} delivers replies", permanent=True)
            delivery = await self._hooked(key, row, attempt)
            async with self._limiter:
                await deliver(delivery)
        except DeliveryFailed as exc:
            await self._failed(key, row, attempt, str(exc), exc.retry_after, exc.permanent, exc.ambiguous)
        except Exception as exc:  # a channel bug must not stop deliveries of other rows
            log.exception("delivery of %s through %s failed", key, row.channel)
            await self._failed(key, row, attempt, f"{type(exc).__name__}: {exc}", None, False, False)
        else:
            with trio.CancelScope(shield=True):  # delivered: a shutdown now must not make it send again
                await self._store.commit(ledger.delivered(key, row, time.time()))
            self._counts["delivered"] += 1

    async def _hooked(self, key: str, row: OutboxRecord, attempt: int) -> Delivery:
        """The `Delivery` of a row, its reply and echo rewritten by the destination channel's response hook."""
        payload = row.payload
        reply = converter.structure(payload["reply"], Reply)
        echo = converter.structure(payload.get("echo", []), tuple[Message, ...])
        user = payload.get("user")
        hook = self._hooks.get(row.channel)
        if hook is not None:
            envelope = Envelope(
                key=ConversationKey(str(payload.get("tenant", "")), str(payload.get("conversation", ""))),
                input=echo, turn_id=payload["turn_id"], reply_to=ReplyTarget(row.channel, dict(row.address)),
                identity=None if user is None else Identity(row.channel, str(user)),
            )  # fmt: skip
            reply = await called(hook, envelope, reply)
            if echo:
                echoed = await called(hook, attrs.evolve(envelope, options={"echo": True}), Reply(messages=echo))
                echo = echoed.messages
        return Delivery(
            turn_id=payload["turn_id"], address=row.address, reply=reply, attempt=attempt, idempotency_key=key,
            originating=bool(payload.get("originating", True)), echo=echo, user_id=None if user is None else str(user),
        )  # fmt: skip

    async def _failed(
        self, key: str, row: OutboxRecord, attempt: int, error: str, retry_after: float | None, permanent: bool,
        ambiguous: bool,
    ) -> None:  # fmt: skip
        with trio.CancelScope(shield=True):  # the attempt happened: record it even while shutting down
            now = time.time()
            row = ledger.attempt_failed(row, attempt, now, ambiguous=ambiguous)
            give_up = self._give_up(row, now, permanent)
            if give_up is not None:
                await self._dead_letter(key, row, error if permanent else f"{error} ({give_up})", now)
                return
            delay = retry_after if retry_after is not None else self._backoff.delay(attempt)
            await self._store.commit(ledger.redeliver(key, row, now + delay))
            self._counts["retried"] += 1

    def _give_up(self, row: OutboxRecord, now: float, permanent: bool) -> str | None:
        """Why a failed row is dead-lettered now, or None to retry it."""
        policy = self.policy
        if permanent:
            return "permanent failure"
        if row.ambiguous > policy.max_ambiguous_retries:
            return f"{row.ambiguous} sends whose answer was lost: it may have arrived; not sent again"
        if now - row.first_failed_at >= policy.retry_for:
            return f"still failing {now - row.first_failed_at:.0f} s after the first failure"
        if policy.max_attempts is not None and row.attempts >= policy.max_attempts:
            return f"{row.attempts} attempts"
        return None

    async def _dead_letter(self, key: str, row: OutboxRecord, error: str, now: float) -> None:
        log.warning("dead-lettering delivery %s after %d attempt(s): %s", key, row.attempts, error)
        await self._store.commit(ledger.undeliverable(key, row, error, now))
        self._counts["dead_lettered"] += 1

    def dead_letters(self, channel: str | None = None) -> list[tuple[str, DeadLetter]]:
        """The dead-lettered deliveries (all, or one channel's), oldest conversation key first."""
        found = self._store.scan("dead_letters", ledger.UNDELIVERED_PREFIX)
        return [(key, dead) for key, dead in found if dead.delivery and channel in (None, dead.delivery.channel)]

    async def redrive(self, channel: str | None = None, keys: Sequence[str] | None = None) -> int:
        """Put dead-lettered deliveries back in the outbox with a fresh retry budget; how many were moved.

        All of them, one channel's, or those whose dead-letter `keys` are given (from `dead_letters`). Each goes
        back under its original outbox key, so it is delivered in order with its conversation's later replies.
        On condition that each dead letter is as read (two redrives racing move it once). On a cluster node
        (`replay`) one commit per conversation, by its owner: this node under the conversation's lease (taken for
        the write if free, and given back), or the live node that owns it, which the dead letters are handed to
        (with a cluster secret; without one they stay, logged: redrive them there).
        """
        chosen = [(k, d) for k, d in self.dead_letters(channel) if keys is None or k in keys]
        batches: dict[ConversationKey | None, list[tuple[str, DeadLetter]]] = {}
        for key, dead in chosen:
            conversation = None if self.replay is None else ledger.conversation_of(key, dead)
            batches.setdefault(conversation, []).append((key, dead))
        now, moved = time.time(), 0
        for conversation, letters in batches.items():
            if conversation is not None and self.replay is not None:
                moved += await self._replayed(self.replay, conversation, [key for key, _ in letters])
                continue
            ops = [op for key, dead in letters for op in ledger.redriven(key, dead, now)]
            if await self._store.commit(ops, expect=[Expect("dead_letters", key, dead) for key, dead in letters]):
                moved += len(letters)
                for key, _ in letters:
                    self.notify(ledger.redriven_key(key))
        self._counts["redriven"] += moved
        return moved

    async def _replayed(self, replay: ConversationReplay, conversation: ConversationKey, keys: list[str]) -> int:
        """How many of a conversation's dead letters `replay` moved where it is owned (0, logged, when it could not:
        another node owns it and there is no cluster secret, or no owner took them in time)."""
        try:
            return await replay(conversation, keys)
        except ActorUnavailable as error:  # NotOwner among them
            why = "" if isinstance(error, NotOwner) else " (the owner could not be reached)"
            log.warning("redrive: %d dead letter(s) of %s stay%s: %s", len(keys), conversation, why, error)
            return 0
