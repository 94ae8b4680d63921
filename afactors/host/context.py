"""`ChannelContext`: the part of the host a channel may use. Channels never touch the store or the agent."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from afactors.actors import TurnHandle, new_turn_id
from afactors.host.channel import Channel
from afactors.model import ConversationKey, Envelope, Reply, Update
from afactors.store import Generic, Put, ResponseRecord

if TYPE_CHECKING:
    from afactors.host.host import Host


async def _called(hook: Callable[..., Any], *args: Any) -> Any:
    """Call a hook that may be a plain or an async function."""
    result = hook(*args)
    return await result if inspect.isawaitable(result) else result


class TurnLog:
    """The updates of one running turn, replayable from the start by any number of watchers."""

    def __init__(self) -> None:
        self.updates: list[Update] = []
        self.done = False
        self._changed = trio.Event()

    def append(self, update: Update) -> None:
        self.updates.append(update)
        self._wake()

    def close(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def follow(self) -> AsyncIterator[Update]:
        """Every update from the first, then live ones until the turn ends."""
        sent = 0
        while True:
            while sent < len(self.updates):
                yield self.updates[sent]
                sent += 1
            if self.done:
                return
            await self._changed.wait()


class ChannelContext:
    """Submits envelopes (through the channel's hooks), reads and manages turns, keeps aliases."""

    def __init__(self, host: Host, channel: Channel) -> None:
        self._host = host
        self.channel = channel
        self.name = channel.name

    @property
    def shutting_down(self) -> trio.Event:
        """Set when the host stops taking new work; long streams should finish."""
        return self._host.shutting_down

    def tenant(self, authorization: str | None) -> str:
        """The tenant of a request's `Authorization` header; raises `Unauthorized`."""
        return self._host.api_keys.tenant(authorization)

    async def _hooked(self, envelope: Envelope) -> Envelope:
        hook = self.channel.run_hook
        return envelope if hook is None else await _called(hook, envelope)

    async def submit(self, envelope: Envelope, *, stream: bool = False) -> TurnHandle:
        """Run the channel's `run_hook`, then hand the envelope to its conversation actor."""
        return await self._host.system.submit(await self._hooked(envelope), stream=stream)

    async def reply(self, envelope: Envelope, handle: TurnHandle) -> Reply:
        """The turn's finished reply, rewritten by the channel's `response_hook`."""
        reply = await handle.reply()
        hook = self.channel.response_hook
        return reply if hook is None else await _called(hook, envelope, reply)

    async def start_background(self, envelope: Envelope) -> ResponseRecord:
        """Accept a turn durably and return its queued record; it runs (and survives restarts) without a caller."""
        envelope = await self._hooked(envelope)
        turn_id = envelope.turn_id or new_turn_id()
        envelope = attrs.evolve(envelope, turn_id=turn_id, idempotency_key=envelope.idempotency_key or turn_id)
        record = ResponseRecord(
            id=turn_id,
            tenant=envelope.key.tenant,
            conversation=envelope.key.path,
            status="queued",
            input=envelope.input,
            parent=envelope.parent,
            background=True,
            stored=True,
            created_at=time.time(),
            data=dict(envelope.options),
        )
        handle = await self._host.system.submit(envelope, stream=True, extra_ops=[Put("responses", turn_id, record)])
        self._host.track(turn_id, handle)
        return record

    async def abandon(self, handle: TurnHandle) -> bool:
        """Cancel a turn this channel submitted and no longer wants (its client went away): a queued turn never
        runs, a running one is cut and nothing of it is committed. False if it already ended."""
        return await self._host.system.cancel(handle.turn_id)

    async def wait(self, turn_id: str, tenant: str, *, poll: float = 0.05) -> ResponseRecord | None:
        """Wait until a stored turn of `tenant` has ended; its final record, or None once it is not visible.

        A background turn started on this host is awaited through its update log; one accepted before a
        restart (re-run from the inbox, with no log here) is re-read from the store every `poll` seconds.
        """
        while True:
            record = self.record(turn_id, tenant)
            if record is None or record.status not in ("queued", "in_progress"):
                return record
            log = self._host.turn_logs.get(turn_id)
            if log is None:
                await trio.sleep(poll)
            else:
                async for _ in log.follow():
                    pass

    def watch(self, turn_id: str) -> AsyncIterator[Update] | None:
        """Replay-then-follow the updates of a running background turn; None when it is not running here."""
        log = self._host.turn_logs.get(turn_id)
        return None if log is None else log.follow()

    def record(self, turn_id: str, tenant: str) -> ResponseRecord | None:
        """The stored record of a turn, if it exists, was stored, and belongs to `tenant`."""
        record = self._host.store.get("responses", turn_id)
        if record is None or record.tenant != tenant or not record.stored:
            return None
        return record

    def records(self, tenant: str, prefix: str, conversation: str | None = None) -> list[ResponseRecord]:
        """The stored records of `tenant` whose turn ids start with `prefix` (a channel's own id prefix), in id
        order, optionally only those of one conversation (its `ConversationKey.path`). Reads every record under
        the prefix: meant for a channel's listing endpoints, not for hot paths."""
        found = (record for _, record in self._host.store.scan("responses", prefix))
        return [r for r in found if r.tenant == tenant and r.stored and conversation in (None, r.conversation)]

    async def cancel(self, turn_id: str, tenant: str) -> ResponseRecord | None:
        """Cancel a queued or running turn of `tenant`; returns its record as it now stands."""
        if self.record(turn_id, tenant) is None:
            return None
        await self._host.system.cancel(turn_id)
        return self.record(turn_id, tenant)

    async def delete(self, turn_id: str, tenant: str) -> bool:
        """Hide a stored turn from retrieval; its conversation history is kept."""
        record = self.record(turn_id, tenant)
        if record is None:
            return False
        hidden = attrs.evolve(record, stored=False, data={**record.data, "deleted": True})
        await self._host.store.commit([Put("responses", turn_id, hidden)])
        return True

    def state(self, key: ConversationKey) -> dict[str, Any]:
        """The conversation's state as its last committed turn left it (`TurnContext.state`); {} before any turn.

        A fresh copy read from the store: changing it changes nothing. `key` must carry the caller's tenant.
        """
        snapshot = self._host.store.get("snapshots", key.path)
        return {} if snapshot is None else snapshot.state

    def alias(self, key: str) -> dict[str, Any] | None:
        """A channel-scoped durable value (e.g. which conversation a chat is in now)."""
        record = self._host.store.get("aliases", f"{self.name}/{key}")
        return None if record is None else record.data

    async def set_alias(self, key: str, value: dict[str, Any]) -> None:
        await self._host.store.commit([Put("aliases", f"{self.name}/{key}", Generic(value))])
