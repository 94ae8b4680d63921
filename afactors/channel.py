"""The channel contract: everything a channel may import from afactors besides `afactors.model`.

A channel (one distribution under `channels/`) parses its protocol into `Envelope`s, hands them to the host
through the `ChannelContext` it is given in `Channel.contribute`, and renders what comes back: `Update`s while a
turn runs, a `Reply` when it ends, or a `TurnView` (the stored record of a turn) later. It never imports
`afactors.store`, `afactors.actors` or `afactors.host`: this module is the whole surface, and the host provides
the `ChannelContext` implementation.

Must not import: `afactors.host` (the host imports this module).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection, Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from afactors._backoff import Backoff
from afactors.actors import ActorUnavailable, ConversationBusy, SystemClosed, TurnHandle, new_turn_id
from afactors.identity import LinkCode, LinkFailed
from afactors.model import ENDED_STATUSES, ConversationKey, Envelope, Identity, Message, Reply, Update
from afactors.store import ResponseRecord as TurnView
from afactors.store import ResponseStatus as TurnStatus
from afactors.store import StoreFull
from afactors.store import TurnRecord as CommittedTurn

ENTRY_POINT_GROUP = "afactors.channels"

DEFAULT_TENANT = "default"
"""The tenant of every request when the host has no API keys configured."""

STORE_OPTION = "store"
"""`Envelope.options[STORE_OPTION] = False` keeps a turn's record out of `ChannelContext.record` (not stored)."""


class Unauthorized(Exception):
    """Missing or wrong credentials; channels render it as their protocol's 401."""


class StartupError(Exception):
    """A channel could not start (credentials refused, endpoint unreachable); the message says why."""


class HookRejected(Exception):
    """Raised by a `run_hook` to refuse an envelope; the channel answers with its protocol's 4xx."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


RunHook = Callable[[Envelope], Awaitable[Envelope] | Envelope]
"""Rewrite (return a new envelope) or refuse (raise `HookRejected`) an envelope before it reaches the actor."""

ResponseHook = Callable[[Envelope, Reply], Awaitable[Reply] | Reply]
"""Rewrite a finished reply for its destination. For a pushed reply (from the outbox) the envelope stands for the
destination: `identity` and `reply_to` name it, `input` holds the user's input, and `options["echo"]` is True
when the reply being rewritten is the echo of that input (`echo_input`)."""


@attrs.frozen
class LeanRequest:
    """A whole HTTP request, its body already read, as a `Route.lean` view gets it.

    `headers`: (lower-case name, value) pairs in arrival order; `header(name)` finds one.
    """

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)


@attrs.frozen
class LeanResponse:
    """An HTTP response from a `Route.lean` view; `headers` are (lower-case name, value) pairs. `stream`: the body's
    chunks sent one by one after `body` (a streamed answer: give no `content-length`), else `body` is all of it."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stream: AsyncIterable[bytes] | None = None


LeanView = Callable[[LeanRequest], Awaitable[LeanResponse | None]]
"""A hot route's view without the web framework. Returning None hands the request (body included) to `view`."""


@attrs.frozen
class Route:
    """An HTTP (or websocket) route: `rule` in Quart syntax, a Quart view function.

    `lean`: the same route's behaviour for a static `rule`, served in front of Quart (cheaper per request) when
    the request is plain: a method in `methods`, a `Content-Length` within the body limit, the whole body
    arriving promptly. Any other request, or one `lean` hands back (None), is served by `view`. Both must
    answer every request alike; `lean` is an optimisation, never a second behaviour.
    """

    rule: str
    view: Callable[..., Awaitable[Any]]
    methods: tuple[str, ...] = ("POST",)
    websocket: bool = False
    lean: LeanView | None = None


@attrs.frozen
class Command:
    """A chat command a channel offers (Telegram's /start, /new ...)."""

    name: str
    description: str


@attrs.frozen
class Delivery:
    """A finished turn's reply (or a push) to send to `address` (a `ReplyTarget`'s address), from the durable
    outbox.

    `idempotency_key`: the outbox row's key, the same on every attempt and after a restart (a receiver that can
    deduplicate uses it). `originating`: False for a response target's other destinations and for pushes
    without a turn (a channel must then not touch what it shows live for `turn_id` in the originating chat).
    `echo`: the user's input, to show before the reply (`echo_input`). `user_id`: the channel identity it is for.
    The reply (and the echo) went through the channel's `response_hook` already.
    """

    turn_id: str
    address: dict[str, Any]
    reply: Reply
    attempt: int = 1
    idempotency_key: str = ""
    originating: bool = True
    echo: tuple[Message, ...] = ()
    user_id: str | None = None


@attrs.frozen
class RunToken:
    """A continuation token for a turn that runs without its caller: pollable with the tenant's API key at
    `GET /v1/runs/<token>` until `expires_at` (epoch seconds), across restarts."""

    token: str
    turn_id: str
    expires_at: float


class DeliveryFailed(Exception):
    """Raised by a channel's `deliver` to say how to go on: retry after `retry_after` seconds, or give up.

    `ambiguous`: the request went out but its answer was lost, so the reply may have arrived; such failures
    are retried at most `DeliveryPolicy.max_ambiguous_retries` times (the receiver may show it twice).
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False, ambiguous: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after, self.permanent, self.ambiguous = retry_after, permanent, ambiguous


Deliver = Callable[[Delivery], Awaitable[None]]
"""Pushes one reply. Returning means delivered (the outbox row is deleted); raising means retry or dead-letter."""

ServiceTask = Callable[..., Awaitable[None]]
"""A background service, started with `nursery.start(task)`: it must call `task_status.started()` when ready."""


@attrs.frozen
class Contribution:
    """Everything a channel adds to a host.

    `deliver`: how to push replies of envelopes that carry a `reply_to` for this channel, and (when its envelopes
    name their sender and `reply_to`) answers routed here by other channels' response targets and pushes without a
    turn. Such a turn's commit writes an outbox row; the host calls `deliver` (in order per address, retrying with
    jittered backoff) and deletes the row once it returns, so a reply survives a crash between commit and send.
    """

    routes: Sequence[Route] = ()
    tasks: Sequence[ServiceTask] = ()
    commands: Sequence[Command] = ()
    on_startup: Sequence[Callable[[], Awaitable[None]]] = ()
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    deliver: Deliver | None = None


class Meter(Protocol):
    """A metric a channel reports on the host's `/metrics` (see `ChannelContext.counter` and `.histogram`)."""

    def record(self, value: float = 1.0, **labels: str) -> None:
        """Add `value` to a counter, or observe it in a histogram; `labels` gives every label the metric has."""
        ...


class ChannelContext(Protocol):
    """The part of the host a channel may use, given to `Channel.contribute`. The host implements it.

    Submitting runs the channel's `run_hook` first, then the host's identity check: an envelope with an
    `identity` is resolved to the sender's isolation key (a refusal raises `HookRejected` with status 403),
    and a `follow_identity` envelope moves into the sender's own conversation; then its `response_target` (or the
    host's default for the channel) is resolved into a `Routing` (a target that cannot be delivered as asked raises
    `HookRejected` with its 4xx; docs/delivery.md). Records are scoped by tenant:
    a turn of another tenant, or one submitted with `options["store"] = False`, reads as absent.
    """

    @property
    def name(self) -> str:
        """The channel's name (the scope of its aliases)."""
        ...

    @property
    def shutting_down(self) -> trio.Event:
        """Set when the host stops taking new work; long streams should finish."""
        ...

    def tenant(self, authorization: str | None) -> str:
        """The tenant of a request's `Authorization` header; raises `Unauthorized`."""
        ...

    async def submit(self, envelope: Envelope, *, stream: bool = False) -> TurnHandle:
        """Run the channel's `run_hook`, then hand the envelope to its conversation's actor.

        Raises `HookRejected`, `ConversationBusy`, `ActorUnavailable` or `SystemClosed`; waits while the
        conversation's mailbox is full (backpressure).
        """
        ...

    async def reply(self, envelope: Envelope, handle: TurnHandle) -> Reply:
        """The turn's finished reply, rewritten by the channel's `response_hook`."""
        ...

    async def start_background(self, envelope: Envelope) -> TurnView:
        """Accept a turn durably and return its queued record; it runs (and survives restarts) without a caller."""
        ...

    async def abandon(self, handle: TurnHandle) -> bool:
        """Cancel a turn this channel submitted and no longer wants (its client went away): a queued turn never
        runs, a running one is cut and nothing of it is committed. False if it already ended."""
        ...

    async def run_token(self, turn_id: str, tenant: str) -> RunToken:
        """A continuation token for a turn of `tenant` this channel submitted (or started in the background): the
        caller polls `GET /v1/runs/<token>` for its status and reply. Raises LookupError for an unknown turn."""
        ...

    async def wait(self, turn_id: str, tenant: str) -> TurnView | None:
        """Wait until a stored turn of `tenant` has ended; its final record, or None once it is not visible."""
        ...

    def watch(self, turn_id: str) -> AsyncIterator[Update] | None:
        """Replay-then-follow the updates of a running background turn (in a cluster, wherever it runs); None when
        it is not running."""
        ...

    def record(self, turn_id: str, tenant: str) -> TurnView | None:
        """The stored record of a turn, if it exists, was stored, and belongs to `tenant`."""
        ...

    def records(self, tenant: str, prefix: str, conversation: str | None = None) -> list[TurnView]:
        """The stored records of `tenant` whose turn ids start with `prefix` (a channel's own id prefix), in id
        order, optionally only those of one conversation (its `ConversationKey.path`). Reads every record under
        the prefix: meant for a channel's listing endpoints, not for hot paths."""
        ...

    async def cancel(self, turn_id: str, tenant: str) -> TurnView | None:
        """Cancel a queued or running turn of `tenant`; returns its record as it now stands."""
        ...

    async def delete(self, turn_id: str, tenant: str) -> bool:
        """Hide a stored turn from retrieval; its conversation history is kept."""
        ...

    def state(self, key: ConversationKey) -> dict[str, Any]:
        """The conversation's state as its last committed turn left it (`TurnContext.state`); {} before any turn.

        A fresh copy read from the store: changing it changes nothing. `key` must carry the caller's tenant.
        """
        ...

    def turns(self, key: ConversationKey) -> list[CommittedTurn]:
        """The committed turns of a conversation, oldest first (read-only; change them with history-edit envelopes
        submitted like turns: "append", "revise", "clear")."""
        ...

    def alias(self, key: str) -> dict[str, Any] | None:
        """A channel-scoped durable value (e.g. which conversation a chat is in now)."""
        ...

    async def set_alias(self, key: str, value: dict[str, Any]) -> None:
        """Store a channel-scoped durable value under `key`."""
        ...

    async def change_alias(
        self, key: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Read-modify-write the value under `key`: `change(current)` gives the new value (None deletes it; an
        equal value writes nothing), stored on condition that nobody changed it meanwhile (on any host sharing the
        store), else `change` runs again on the value as it now is. Returns the value as `change` left it."""
        ...

    async def dead_letter(self, key: str, reason: str, data: dict[str, Any]) -> None:
        """Keep an input the channel could not handle (a poison update) with the reason, under `<channel>/<key>`,
        so it is never dropped silently; operators find it among the dead letters."""
        ...

    async def drop_alias(self, key: str) -> None:
        """Delete a channel-scoped durable value (nothing happens when there is none)."""
        ...

    async def lead(self, name: str, service: ServiceTask, *,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
        """Run `service` only while this host leads role `<channel>/<name>` among the hosts sharing its store (a
        poller that must run once per cluster), for ever: started once `service` started or once another host is
        known to lead. Losing the role cancels `service` at once; it starts again when the role comes back. A
        host alone on its store (LMDB) always leads."""
        ...

    def counter(self, name: str, description: str, labels: Sequence[str] = ()) -> Meter:
        """A counter on `/metrics`, named `afactors_<channel>_<name>_total` (`name`: lower case and underscores).
        Labels must never carry a tenant, conversation or message. A no-op when the host serves no metrics."""
        ...

    def histogram(self, name: str, description: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Meter:
        """A histogram on `/metrics`, named `afactors_<channel>_<name>`, with these bucket bounds (see `counter`)."""
        ...

    async def push(self, key: ConversationKey, address: dict[str, Any], reply: Reply) -> str:
        """Queue `reply` for this channel's `deliver` to `address` without a turn (a welcome, a proactive message):
        a durable outbox row, delivered in order with conversation `key`'s replies. Returns the push's id."""
        ...

    async def link_code(self, identity: Identity, tenant: str) -> LinkCode:
        """A one-time code the sender redeems with `/link CODE` on another channel; raises `LinkFailed`."""
        ...

    async def link(self, identity: Identity, tenant: str, code: str) -> list[str]:
        """Merge the sender onto the identity a code was issued to; the channels (`channel/native id`) now linked.
        Raises `LinkFailed` (wrong, expired, spent code; too many attempts)."""
        ...

    async def unlink(self, identity: Identity, tenant: str) -> bool:
        """Detach the sender from the channels they linked; False when they were not linked."""
        ...

    async def new_conversation(self, identity: Identity, tenant: str) -> None:
        """Start the sender's next conversation (`/new`); the old one is kept. Linked channels move with it."""
        ...

    async def sign_in_url(self, identity: Identity, tenant: str) -> str:
        """Where the sender signs in with the host's OIDC provider to link this channel identity to their verified
        account. Raises `LinkFailed` (`not_configured` when the host has no OIDC linker; provider errors)."""
        ...


@runtime_checkable
class Channel(Protocol):
    """A wire protocol: parses requests into envelopes and renders replies, through a `ChannelContext`."""

    name: str
    run_hook: RunHook | None
    response_hook: ResponseHook | None

    def contribute(self, ctx: ChannelContext) -> Contribution: ...


class Secret(argparse.Action):
    """The argparse action of a credential flag (`add_argument("--x-token", action=Secret, env="X_TOKEN")`).

    The host's configuration file refuses a literal value for such an option (only a `${VARIABLE}` reference),
    `config show` masks it, and when neither flag nor file sets it the variable `env` names is read.
    `append=True` collects repeated flags into a list.
    """

    def __init__(
        self, option_strings: Sequence[str], dest: str, *, env: str | None = None, append: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.env, self.append = env, append

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        if self.append:
            values = [*(getattr(namespace, self.dest, None) or []), values]
        setattr(namespace, self.dest, values)


class ChannelPlugin(Protocol):
    """The object an `afactors.channels` entry point names: CLI flags and a factory.

    The flags `add_arguments` adds are also the channel's keys in the configuration file (`[channels.<name>]`,
    each flag's name without the `--<name>-` prefix, dashes as underscores); credentials use `Secret`.
    """

    name: str
    needs_credentials: bool

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def create(self, args: argparse.Namespace) -> Channel | None:
        """The channel configured from CLI args, or None when it lacks the credentials it needs."""
        ...


def installed_plugins(names: Collection[str] | None = None) -> dict[str, ChannelPlugin]:
    """Every channel plugin registered in the `afactors.channels` entry-point group, by name; with `names`, only
    those (the others are not imported)."""
    return {ep.name: ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP) if names is None or ep.name in names}


def installed_channel_names() -> list[str]:
    """The names of the registered channel plugins, sorted, without importing any."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


__all__ = [
    "DEFAULT_TENANT",
    "ENDED_STATUSES",
    "ENTRY_POINT_GROUP",
    "STORE_OPTION",
    "ActorUnavailable",
    "Backoff",
    "Channel",
    "ChannelContext",
    "ChannelPlugin",
    "Command",
    "CommittedTurn",
    "Contribution",
    "ConversationBusy",
    "Deliver",
    "Delivery",
    "DeliveryFailed",
    "HookRejected",
    "LeanRequest",
    "LeanResponse",
    "LeanView",
    "LinkCode",
    "LinkFailed",
    "Meter",
    "ResponseHook",
    "Route",
    "RunHook",
    "RunToken",
    "Secret",
    "ServiceTask",
    "StartupError",
    "StoreFull",
    "SystemClosed",
    "TurnHandle",
    "TurnStatus",
    "TurnView",
    "Unauthorized",
    "installed_channel_names",
    "installed_plugins",
    "new_turn_id",
]
