"""`HostChannelContext`: the host's implementation of the channel contract's `ChannelContext`.

It holds exactly what a channel may reach (the actor system, the alias rows of the store, the API keys, the
background turns) and never the `Host` itself. Channels never touch the store, the system or the target.

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import attrs
import trio
from quart import has_request_context, has_websocket_context, request, websocket

from afactors._tracing import Tracing
from afactors.actors import ActorSystem, NotOwner, TurnHandle, ledger, new_turn_id
from afactors.channel import Channel, CommittedTurn, HookRejected, Meter, RunToken, ServiceTask, TurnView
from afactors.cluster import ForwardedTurn, Forwarder, PushRequest
from afactors.host._auth import ApiKeys
from afactors.host._background import BackgroundTurns
from afactors.host._hooks import called
from afactors.host._lead import lead
from afactors.host._lean import current_request
from afactors.host._monitor import TurnMonitor
from afactors.host._oidc import OidcLinker
from afactors.host._routing import Router, RoutingError
from afactors.host._runs import RunTokens
from afactors.identity import (
    Allowlist,
    Denied,
    IdentityRefused,
    IdentityService,
    LinkCode,
    LinkFailed,
    LinkRequired,
    decide,
)
from afactors.identity.oidc import OidcError
from afactors.model import ConversationKey, Envelope, Identity, Reply, Update
from afactors.store import Delete, Expect, Generic, Put, Store

log = logging.getLogger("afactors.host")

MeterFactory = Callable[[str, str, str, Sequence[str], Sequence[float] | None], Meter]
"""(channel, name, description, labels, buckets or None for a counter) -> the metric (`HostMetrics.meter`)."""


class _NoMeter:
    """What a channel reports to when the host serves no metrics."""

    def record(self, value: float = 1.0, **labels: str) -> None:
        pass


class HostChannelContext:
    """Submits envelopes (through the channel's hooks), reads and manages turns, keeps aliases."""

    def __init__(
        self,
        channel: Channel,
        *,
        system: ActorSystem,
        store: Store,
        api_keys: ApiKeys,
        background: BackgroundTurns,
        identity: IdentityService,
        router: Router,
        shutting_down: trio.Event,
        monitor: TurnMonitor | None = None,
        allowlist: Allowlist | None = None,
        require_link: bool = False,
        runs: RunTokens | None = None,
        oidc: OidcLinker | None = None,
        meters: MeterFactory | None = None,
        tracing: Tracing | None = None,
        forwarder: Forwarder | None = None,
    ) -> None:
        self.channel = channel
        self._forwarder = forwarder
        self._runs, self._oidc = runs, oidc
        self._identity = identity
        self._router = router
        self._allowlist, self._require_link = allowlist, require_link
        self._system = system
        self._store = store
        self._api_keys = api_keys
        self._background = background
        self._shutting_down = shutting_down
        self._monitor = monitor
        self._meters = meters
        self._tracing = tracing or Tracing()

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def shutting_down(self) -> trio.Event:
        """Set when the host stops taking new work; long streams should finish."""
        return self._shutting_down

    def counter(self, name: str, description: str, labels: Sequence[str] = ()) -> Meter:
        """A counter on `/metrics`, `afactors_<channel>_<name>_total`; a no-op without metrics."""
        return _NoMeter() if self._meters is None else self._meters(self.name, name, description, labels, None)

    def histogram(self, name: str, description: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Meter:
        """A histogram on `/metrics`, `afactors_<channel>_<name>`; a no-op without metrics."""
        if self._meters is None:
            return _NoMeter()
        return self._meters(self.name, name, description, labels, tuple(buckets))

    def tenant(self, authorization: str | None) -> str:
        """The tenant of a request's `Authorization` header; raises `Unauthorized`."""
        return self._api_keys.tenant(authorization)

    async def _hooked(self, envelope: Envelope) -> Envelope:
        """The envelope after the channel's `run_hook` and the host's identity check (`_admitted`), carrying the
        request's trace context when traces are on."""
        hook = self.channel.run_hook
        envelope = await self._admitted(envelope if hook is None else await called(hook, envelope))
        return self._traced(envelope) if self._tracing.enabled else envelope

    async def _admitted(self, envelope: Envelope) -> Envelope:
        """Resolve the sender to their isolation key (refusing whom the resolver refuses), note where they were
        last seen, and move a `follow_identity` envelope into the sender's conversation."""
        gated = self._allowlist is not None or self._require_link
        if envelope.identity is None:
            if gated:
                raise HookRejected("This bot only answers users it can identify.", 403, "forbidden")
            if envelope.follow_identity:
                raise HookRejected("A conversation that follows its sender needs a sender.", 400)
            return self._routed(envelope, None)
        identity = attrs.evolve(envelope.identity, channel=self.name)  # a channel speaks only for its own users
        if gated:
            await self._authorize(envelope.key.tenant, identity)
        reply_to = envelope.reply_to
        address = reply_to.address if reply_to is not None and reply_to.channel == self.name else {}
        try:
            resolved = await self._identity.resolve(envelope.key.tenant, identity, address)
        except IdentityRefused as refused:
            raise HookRejected(refused.message, 403, "forbidden") from None
        key = ConversationKey(envelope.key.tenant, resolved.conversation) if envelope.follow_identity else envelope.key
        return self._routed(attrs.evolve(envelope, identity=identity, key=key), resolved.key)

    def _routed(self, envelope: Envelope, isolation_key: str | None) -> Envelope:
        """The envelope with its response target (its own, else the channel's default) resolved into a `Routing`
        (see `Router`); a target that cannot be delivered as asked is refused here (`HookRejected`)."""
        target = envelope.response_target or self._router.default(self.name)
        if target is None:
            return attrs.evolve(envelope, routing=None) if envelope.routing is not None else envelope
        try:
            routing = self._router.for_turn(envelope.key.tenant, target, self.name, envelope.identity, isolation_key)
        except RoutingError as error:
            raise HookRejected(error.message, error.status, error.code) from None
        return attrs.evolve(envelope, response_target=target, routing=routing)

    async def _authorize(self, tenant: str, identity: Identity) -> None:
        """The channel's authorization profile, per message (before any key is issued for a stranger)."""
        found = self._identity.lookup(tenant, identity.channel, identity.user_id)
        linked = found.key if found is not None and (len(found.members) > 1 or found.claims) else None
        claims = found.claims if found is not None else {}
        outcome = await decide(self._allowlist, self._require_link, identity, linked, claims)
        if isinstance(outcome, Denied):
            raise HookRejected(outcome.message, 403, "forbidden")
        if isinstance(outcome, LinkRequired):
            raise HookRejected(outcome.message, 403, "link_required")

    def _traced(self, envelope: Envelope) -> Envelope:
        """The envelope carrying the trace context of the HTTP request (or WebSocket) being handled, if any."""
        if envelope.trace_context is not None:
            return envelope
        lean = current_request.get()
        header: Callable[[str], str | None]
        if lean is not None:
            header = lean.header
        elif has_request_context():
            header = request.headers.get
        elif has_websocket_context():
            header = websocket.headers.get
        else:
            return envelope
        carrier = self._tracing.carrier(header)
        return attrs.evolve(envelope, trace_context=carrier) if carrier else envelope

    async def submit(self, envelope: Envelope, *, stream: bool = False) -> TurnHandle:
        """Run the channel's `run_hook` and the identity check, then hand the envelope to its conversation actor (on
        the node that owns the conversation, in a cluster: the handle of a forwarded turn behaves alike)."""
        envelope = await self._hooked(envelope)
        if self._forwarder is None:
            return await self.run_here(envelope, stream)
        return await self._forwarder.submit(envelope, self.name, stream, self.run_here)

    async def run_here(self, envelope: Envelope, stream: bool = False) -> TurnHandle:
        """Hand an admitted envelope (hooks and identity check done, on this node or the one that forwarded it) to
        this node's actor system."""
        handle = await self._system.submit(envelope, stream=stream)
        self._noted(handle)
        return handle

    def _noted(self, handle: TurnHandle) -> None:
        if self._monitor is not None and not handle.done:
            self._monitor.submitted(handle.turn_id, self.name)

    async def reply(self, envelope: Envelope, handle: TurnHandle) -> Reply:
        """The turn's finished reply, rewritten by the channel's `response_hook`."""
        reply = await handle.reply()
        hook = self.channel.response_hook
        return reply if hook is None else await called(hook, envelope, reply)

    async def start_background(self, envelope: Envelope) -> TurnView:
        """Accept a turn durably and return its queued record; it runs (and survives restarts) without a caller."""
        envelope = await self._hooked(envelope)
        turn_id = envelope.turn_id or new_turn_id()
        envelope = attrs.evolve(envelope, turn_id=turn_id, idempotency_key=envelope.idempotency_key or turn_id)
        if self._forwarder is None:
            return await self.start_here(envelope)
        return await self._forwarder.start_background(envelope, self.name, self.start_here)

    async def start_here(self, envelope: Envelope) -> TurnView:
        """`start_background` of an admitted envelope with its turn id and idempotency key, on this node."""
        assert envelope.turn_id is not None
        turn_id = envelope.turn_id
        handle = await self._system.submit(envelope, stream=True, background=True)
        self._noted(handle)
        if not handle.done:
            self._background.track(turn_id, handle)
        # read before any checkpoint: the turn has not started, so this is the record as accepted
        return self._system.record(handle.turn_id) or ledger.queued_record(envelope, turn_id, time.time())

    async def run_token(self, turn_id: str, tenant: str) -> RunToken:
        """A continuation token for a turn of `tenant`, pollable at `GET /v1/runs/<token>`; LookupError if none."""
        if self._runs is None:
            raise LookupError("this host issues no run tokens")
        return await self._runs.issue(turn_id, tenant)

    async def abandon(self, handle: TurnHandle) -> bool:
        """Cancel a turn this channel submitted and no longer wants (its client went away): a queued turn never
        runs, a running one is cut and nothing of it is committed. False if it already ended."""
        if isinstance(handle, ForwardedTurn) and self._forwarder is not None:
            return await self._forwarder.cancel(handle)
        return await self._system.cancel(handle.turn_id)

    async def wait(self, turn_id: str, tenant: str) -> TurnView | None:
        """Wait until a stored turn of `tenant` has ended; its final record, or None once it is not visible.

        Joins the live turn (its update log when it runs in the background here); a turn neither running nor
        waiting to be recovered is returned as it stands.
        """
        record = self.record(turn_id, tenant)
        while record is not None and not record.ended:
            if self._forwarder is None or self._background.holds(turn_id):
                ended = await self._background.ended(turn_id)
            else:  # a cluster's shared store: the turn may run on the conversation's owner
                ended = await self._forwarder.wait(_conversation(record), turn_id, self._ended_here)
            record = self.record(turn_id, tenant)  # as it stands now (a wait on another node may have been long)
            if not ended:
                return record
        return record

    async def _ended_here(self, turn_id: str) -> bool:
        """`BackgroundTurns.ended` once this node owns the turn's conversation (`_taken`)."""
        await self._taken(turn_id)
        return await self._background.ended(turn_id)

    async def _taken(self, turn_id: str) -> None:
        """This node owns the conversation of `turn_id`, perhaps having just taken it (locating it for a wait, watch
        or cancel): what a dead owner left pending there replays, as the takeover sweeper would (it skips leases
        held here); with nothing to replay and no actor here, the lease is given back. Raises `NotOwner` when
        another node took it meanwhile."""
        record = self._system.record(turn_id)
        if record is not None and not await self._system.take_over(key := _conversation(record)):
            self._system.release_idle(key.path)

    async def _watch_here(self, turn_id: str) -> AsyncIterator[Update]:
        """`BackgroundTurns.watch` once this node owns the turn's conversation (`_taken`); the updates end at once
        when it does not run here (yet): the caller then waits for its end."""
        try:
            await self._taken(turn_id)
        except NotOwner:
            return
        if (live := self._background.watch(turn_id)) is not None:
            async for update in live:
                yield update

    async def _cancel_here(self, turn_id: str) -> bool:
        """`ActorSystem.cancel` once this node owns the turn's conversation: the turn is cancelled first (among the
        rows a dead owner left, when it is one of them), then the rest replay (`_taken`)."""
        cancelled = await self._system.cancel(turn_id)
        with contextlib.suppress(NotOwner):  # taken meanwhile: they replay there
            await self._taken(turn_id)
        return cancelled

    def watch(self, turn_id: str) -> AsyncIterator[Update] | None:
        """Replay-then-follow the updates of a running background turn (in a cluster, also of one running on its
        conversation's owner); None when it is not running."""
        live = self._background.watch(turn_id)
        if live is not None or self._forwarder is None or self._background.holds(turn_id):
            return live
        record = self._system.record(turn_id)
        if record is None or record.ended:
            return None
        return self._forwarder.watch(_conversation(record), turn_id, self._watch_here)

    def record(self, turn_id: str, tenant: str) -> TurnView | None:
        """The stored record of a turn, if it exists, was stored, and belongs to `tenant`."""
        record = self._system.record(turn_id)
        if record is None or record.tenant != tenant or not record.stored:
            return None
        return record

    def records(self, tenant: str, prefix: str, conversation: str | None = None) -> list[TurnView]:
        """The stored records of `tenant` whose turn ids start with `prefix` (a channel's own id prefix), in id
        order, optionally only those of one conversation (its `ConversationKey.path`). Reads every record under
        the prefix: meant for a channel's listing endpoints, not for hot paths."""
        found = (record for _, record in self._store.scan("responses", prefix))
        return [r for r in found if r.tenant == tenant and r.stored and conversation in (None, r.conversation)]

    async def cancel(self, turn_id: str, tenant: str) -> TurnView | None:
        """Cancel a queued or running turn of `tenant`; returns its record as it now stands."""
        record = self.record(turn_id, tenant)
        if record is None:
            return None
        if self._forwarder is None or record.ended or self._system.pending(turn_id) is not None:
            await self._system.cancel(turn_id)
        else:  # a cluster's shared store: the turn may run on the conversation's owner
            await self._forwarder.cancel_where(_conversation(record), turn_id, self._cancel_here)
        return self.record(turn_id, tenant)

    async def delete(self, turn_id: str, tenant: str) -> bool:
        """Hide a stored turn from retrieval; its conversation history is kept."""
        record = self.record(turn_id, tenant)
        if record is None:
            return False
        await self._system.hide(record)
        return True

    def state(self, key: ConversationKey) -> dict[str, Any]:
        """The conversation's state as its last committed turn left it (`TurnContext.state`); {} before any turn.

        A fresh copy read from the store: changing it changes nothing. `key` must carry the caller's tenant.
        """
        return self._system.snapshot(key.path).state

    async def dead_letter(self, key: str, reason: str, data: dict[str, Any]) -> None:
        """Keep an input the channel could not handle (a poison update) with the reason, under `<channel>/<key>`,
        so it is never dropped silently; operators find it among the dead letters."""
        await self._store.commit(ledger.rejected_input(self.name, key, reason, data, time.time()))

    def turns(self, key: ConversationKey) -> list[CommittedTurn]:
        """The committed turns of a conversation, oldest first (read-only; see `ChannelContext.turns`)."""
        seq = self._system.snapshot(key.path).seq
        found = (self._system.turn(key.path, n) for n in range(1, seq + 1))
        return [turn for turn in found if turn is not None]

    def alias(self, key: str) -> dict[str, Any] | None:
        """A channel-scoped durable value (e.g. which conversation a chat is in now)."""
        record: Generic | None = self._store.get("aliases", self._alias_key(key))
        return None if record is None else record.data

    async def set_alias(self, key: str, value: dict[str, Any]) -> None:
        await self._store.commit([Put("aliases", self._alias_key(key), Generic(value))])

    async def change_alias(
        self, key: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Read-modify-write a channel-scoped value, on condition that it is unchanged since read (retried)."""
        stored_key = self._alias_key(key)
        while True:
            record: Generic | None = self._store.get("aliases", stored_key)
            current = None if record is None else record.data
            value = change(None if current is None else copy.deepcopy(current))
            if value == current:
                return value
            op = Delete("aliases", stored_key) if value is None else Put("aliases", stored_key, Generic(value))
            if await self._store.commit([op], expect=[Expect("aliases", stored_key, record)]):
                return value

    async def push(self, key: ConversationKey, address: dict[str, Any], reply: Reply) -> str:
        """Queue `reply` for this channel's `deliver` to `address` without running a turn (a welcome, a refusal,
        a proactive message): one durable outbox row, delivered in order with the replies of conversation `key`.
        Returns the push's id (the `turn_id` its `Delivery` carries).

        In a cluster only the conversation's owner pushes into it (its outbox rows are delivered, in order, by one
        node): this node takes the conversation if it is free, and hands the push to the owner when another live
        node holds it (with a cluster secret; `NotOwner`, an `ActorUnavailable`, without one); the row is fenced by
        the lease like a turn's (`ActorSystem.push`)."""
        push = PushRequest(key, self.name, new_turn_id("push_"), address, reply)
        if self._forwarder is None:
            await self.push_here(push)
        else:  # resent after a lost answer: queued once, by its push id
            await self._forwarder.push(push, lambda again: self.push_here(again, once=True))
        return push.push_id

    async def push_here(self, push: PushRequest, *, once: bool = False) -> bool:
        """Queue a push on this node (`ActorSystem.push`: it must own the conversation or take it); `once`: only if
        its push id was not queued before (False then, and nothing is written)."""
        key = push.key
        stamp = self._system._next_stamp()  # the clock of the conversation's own rows: pushes sort among them
        ops = ledger.pushed(key, stamp, self.name, push.address, push.push_id, push.reply, time.time(), once=once)
        return await self._system.push(
            key, ops, [Expect("dedup", ledger.pushed_key(key, push.push_id), None)] if once else ()
        )

    async def drop_alias(self, key: str) -> None:
        """Delete a channel-scoped durable value (nothing happens when there is none)."""
        await self._store.commit([Delete("aliases", self._alias_key(key))])

    async def lead(self, name: str, service: ServiceTask, *,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
        """Run `service` while this host leads role `<channel>/<name>` (`Store.leadership`), again each time it
        leads anew, until it returns; started once `service` started, or once the role is known to be elsewhere
        (or cannot be claimed: the store is unreachable)."""
        await lead(self._store, self._alias_key(name), service, task_status=task_status)

    def _own(self, identity: Identity) -> Identity:
        return attrs.evolve(identity, channel=self.name)

    async def link_code(self, identity: Identity, tenant: str) -> LinkCode:
        """A one-time code the sender redeems with `/link CODE` on another channel; raises `LinkFailed`."""
        return await self._identity.issue_code(tenant, self._own(identity))

    async def link(self, identity: Identity, tenant: str, code: str) -> list[str]:
        """Merge the sender onto the identity a code was issued to; the channels (`channel/native id`) now linked.
        Raises `LinkFailed` (wrong, expired, spent code; too many attempts)."""
        record = await self._identity.redeem(tenant, self._own(identity), code)
        return sorted(record.members)

    async def unlink(self, identity: Identity, tenant: str) -> bool:
        """Detach the sender from the channels they linked; False when they were not linked."""
        return await self._identity.unlink(tenant, self.name, identity.user_id)

    async def sign_in_url(self, identity: Identity, tenant: str) -> str:
        """Where the sender signs in with the host's OIDC provider to link this channel identity to their verified
        account (valid for the linker's `flow_ttl`). Raises `LinkFailed` (`not_configured`, provider errors)."""
        if self._oidc is None:
            raise LinkFailed("Sign-in is not configured for this bot.", "not_configured")
        try:
            return await self._oidc.begin(tenant, self._own(identity))
        except OidcError as error:
            raise LinkFailed(error.message, error.code) from None

    async def new_conversation(self, identity: Identity, tenant: str) -> None:
        """Start the sender's next conversation (`/new`); the old one is kept. Linked channels move with it."""
        await self._identity.new_conversation(tenant, self._own(identity))

    def _alias_key(self, key: str) -> str:
        return f"{self.name}/{key}"


def _conversation(record: TurnView) -> ConversationKey:
    """The conversation a stored turn belongs to."""
    return ConversationKey(record.tenant, record.conversation.removeprefix(record.tenant + "/"))
