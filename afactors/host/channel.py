"""What a channel gives the host (`Contribution`) and how the host finds channels (`ChannelPlugin`)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from afactors.model import Envelope, Reply

if TYPE_CHECKING:
    from afactors.host.context import ChannelContext

ENTRY_POINT_GROUP = "afactors.channels"


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
"""Rewrite a finished reply for its destination."""


@attrs.frozen
class Route:
    """An HTTP (or websocket) route: `rule` in Quart syntax, a Quart view function."""

    rule: str
    view: Callable[..., Awaitable[Any]]
    methods: tuple[str, ...] = ("POST",)
    websocket: bool = False


@attrs.frozen
class Command:
    """A chat command a channel offers (Telegram's /start, /new ...)."""

    name: str
    description: str


@attrs.frozen
class Delivery:
    """A finished turn's reply to push to `address` (a `ReplyTarget`'s address), from the durable outbox."""

    turn_id: str
    address: dict[str, Any]
    reply: Reply
    attempt: int = 1


class DeliveryFailed(Exception):
    """Raised by a channel's `deliver` to say how to go on: retry after `retry_after` seconds, or give up."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after, self.permanent = retry_after, permanent


Deliver = Callable[[Delivery], Awaitable[None]]
"""Pushes one reply. Returning means delivered (the outbox row is deleted); raising means retry or dead-letter."""

ServiceTask = Callable[..., Awaitable[None]]
"""A background service, started with `nursery.start(task)`: it must call `task_status.started()` when ready."""


@attrs.frozen
class Contribution:
    """Everything a channel adds to a host.

    `deliver`: how to push replies of envelopes that carry a `reply_to` for this channel. Such a turn's commit
    writes an outbox row; the host calls `deliver` (in order per address, retrying with jittered backoff) and
    deletes the row once it returns, so a reply survives a crash between commit and send.
    """

    routes: Sequence[Route] = ()
    tasks: Sequence[ServiceTask] = ()
    commands: Sequence[Command] = ()
    on_startup: Sequence[Callable[[], Awaitable[None]]] = ()
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    deliver: Deliver | None = None


@runtime_checkable
class Channel(Protocol):
    """A wire protocol: parses requests into envelopes and renders replies, through a `ChannelContext`."""

    name: str
    run_hook: RunHook | None
    response_hook: ResponseHook | None

    def contribute(self, ctx: ChannelContext) -> Contribution: ...


class ChannelPlugin(Protocol):
    """The object an `afactors.channels` entry point names: CLI flags and a factory."""

    name: str
    needs_credentials: bool

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def create(self, args: argparse.Namespace) -> Channel | None:
        """The channel configured from CLI args, or None when it lacks the credentials it needs."""
        ...


def installed_plugins() -> dict[str, ChannelPlugin]:
    """Every channel plugin registered in the `afactors.channels` entry-point group, by name."""
    return {ep.name: ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)}

