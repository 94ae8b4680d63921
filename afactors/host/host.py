"""`Host` and `open_host`: store, actor system, channels and the HTTP server in one trio program."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import trio
from quart import jsonify

from afactors.actors import ActorSystem, TurnHandle
from afactors.host.auth import ApiKeys
from afactors.host.channel import Channel, Contribution, Route
from afactors.host.context import ChannelContext, TurnLog
from afactors.host.delivery import Outbox
from afactors.host.server import build_app, serve_app, server_config
from afactors.model import BusyPolicy
from afactors.store import Durability, Store
from afactors.targets import DemoAgent, as_agent

log = logging.getLogger("afactors.host")


class Host:
    """A running host. Create it with `open_host`; read `urls`, `channels`, `system`, `store`."""

    def __init__(self, store: Store, system: ActorSystem, api_keys: ApiKeys, nursery: trio.Nursery) -> None:
        self.store = store
        self.system = system
        self.api_keys = api_keys
        self.urls: list[str] = []
        self.channels: dict[str, Channel] = {}
        self.contributions: dict[str, Contribution] = {}
        self.ready = trio.Event()
        self.shutting_down = trio.Event()
        self.turn_logs: dict[str, TurnLog] = {}
        self.outbox: Outbox | None = None
        self._nursery = nursery

    def track(self, turn_id: str, handle: TurnHandle) -> None:
        """Keep the live updates of a background turn for watchers until it ends."""
        turn_log = self.turn_logs[turn_id] = TurnLog()

        async def pump() -> None:
            try:
                async for update in handle.updates():
                    turn_log.append(update)
                await handle.reply()
            finally:
                turn_log.close()
                self.turn_logs.pop(turn_id, None)

        self._nursery.start_soon(pump)

    async def _readiness(self) -> object:
        if self.shutting_down.is_set():
            return jsonify({"status": "stopping"}), 503
        if not self.ready.is_set():
            return jsonify({"status": "starting"}), 503
        return jsonify({"status": "healthy", "channels": sorted(self.channels)})


@asynccontextmanager
async def open_host(
    target: object = None,
    *,
    channels: Iterable[Channel] = (),
    state_dir: str | os.PathLike[str] = ".afactors",
    host: str = "127.0.0.1",
    port: int = 8000,
    durability: Durability = "durable",
    busy_policy: BusyPolicy = "enqueue",
    api_keys: Sequence[str] = (),
    drain_timeout: float = 10.0,
    mailbox_size: int = 32,
    idle_timeout: float = 600.0,
    max_active: int = 10_000,
) -> AsyncIterator[Host]:
    """Run a host inside the caller's trio program until the block exits, then shut down in order.

    Shutdown: stop intake (the server stops accepting and channel services stop), let running turns finish
    within `drain_timeout`, cancel the rest (their inbox rows replay on the next start), final commit.
    """
    agent = as_agent(target if target is not None else DemoAgent())
    async with Store.open(state_dir, durability=durability) as store:
        async with ActorSystem.open(
            store,
            agent,
            busy_policy=busy_policy,
            mailbox_size=mailbox_size,
            idle_timeout=idle_timeout,
            max_active=max_active,
            drain_timeout=drain_timeout,
        ) as system:
            async with trio.open_nursery() as nursery:
                async with trio.open_nursery() as services:
                    the_host = Host(store, system, ApiKeys(api_keys), services)
                    routes: list[Route] = [Route("/readiness", the_host._readiness, methods=("GET",))]
                    for channel in channels:
                        contribution = channel.contribute(ChannelContext(the_host, channel))
                        the_host.channels[channel.name] = channel
                        the_host.contributions[channel.name] = contribution
                        routes.extend(contribution.routes)
                    stop_server = trio.Event()
                    the_host.urls = await nursery.start(
                        serve_app, build_app(routes), server_config(host, port, drain_timeout), stop_server
                    )
                    the_host.outbox = Outbox(
                        store, {name: c.deliver for name, c in the_host.contributions.items() if c.deliver is not None}
                    )
                    await services.start(the_host.outbox.run)
                    system.on_outbox = the_host.outbox.notify
                    for contribution in the_host.contributions.values():
                        for hook in contribution.on_startup:
                            await hook()
                        for task in contribution.tasks:
                            await services.start(task)
                    the_host.ready.set()
                    log.info("afactors serving %s", ", ".join(the_host.urls))
                    try:
                        yield the_host
                    finally:
                        the_host.shutting_down.set()
                        stop_server.set()
                        services.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                for contribution in the_host.contributions.values():
                    for hook in contribution.on_shutdown:
                        await hook()
