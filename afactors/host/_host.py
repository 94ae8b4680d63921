"""`Host` and `open_host`: store, actor system, channels and the HTTP server in one trio program."""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from functools import partial
from typing import Any

import attrs
import trio
from quart import jsonify

from afactors._tracing import Tracing
from afactors.actors import ActorConfig, ActorSystem, Summarizer, TokenCounter
from afactors.channel import DEFAULT_TENANT, Channel, Contribution, Route
from afactors.cluster import (
    DEFAULT_LEASE,
    ClusterNode,
    Forwarder,
    ForwardPolicy,
    Locator,
    check_advertise,
    lease_forward_policy,
    open_node,
    purge_leases,
)  # fmt: skip
from afactors.host._admin import admin_routes
from afactors.host._auth import ApiKeys
from afactors.host._background import BackgroundTurns
from afactors.host._cluster_routes import ClusterRoutes
from afactors.host._delivery import DeliveryPolicy, Outbox
from afactors.host._identity_routes import IdentityRoutes
from afactors.host._lead import lead
from afactors.host._metrics import HostMetrics
from afactors.host._monitor import TurnMonitor
from afactors.host._oidc import OidcLinker
from afactors.host._push import Pusher, PushResult
from afactors.host._push_routes import PushRoutes
from afactors.host._replay import DeadLetterReplay
from afactors.host._retention import RETENTION_ROLE, RetentionConfig, Sweeper
from afactors.host._routing import ACTIVE_WINDOW, Router
from afactors.host._runs import DEFAULT_TTL, RunTokens
from afactors.host._server import ServerLimits, build_app, serve_app, server_config
from afactors.host._status import StatusSources
from afactors.host._timer_http import timer_routes
from afactors.host._timers import CLUSTER_SLEEP, MAX_SLEEP, Timers
from afactors.host._web import web_routes
from afactors.host.context import HostChannelContext
from afactors.identity import Allowlist, ChannelAuth, IdentityConfig, IdentityService, effective, validate
from afactors.identity.oidc import OidcConfig
from afactors.model import Agent, BusyPolicy, Identity, Message, Reply, ResponseTarget
from afactors.store import URL_SCHEMES, Durability, Store
from afactors.targets import DemoAgent, as_agent

log = logging.getLogger("afactors.host")


@attrs.frozen
class HostConfig:
    """How `open_host` runs: where state lives, where it listens, who may call, and how actors behave.

    `store`: a `postgresql://` URL to keep the state in PostgreSQL instead of LMDB in `state_dir`.
    `durability`: the store's fsync policy. `api_keys`: bearer keys, each its own tenant (none: everyone is the
    default tenant). `drain_timeout`: seconds running turns (and open connections) get at shutdown.
    `limits`: the HTTP server's connection and request limits. `delivery`: how long the outbox retries pushes
    (`host.outbox.redrive()` puts dead-lettered ones back). `mailbox_size`, `idle_timeout`, `max_active`,
    `busy_policy`, `history_turns`, `history_tokens`, `summarize`, `count_tokens`, `history_budget`,
    `tenant_budget` (bytes of conversation history kept in memory, in all and per tenant): see `ActorConfig`.
    `identity`: resolver and link-code settings (`IdentityConfig`). `http_link_channels`: the channels whose users
    an API key may name on the identity routes (their application authenticates them). `default_allowlist` and
    `channel_auth` (per channel: `ChannelAuth(allowlist="inherit" | None | Allowlist, require_link=False)`) are the
    authorization profiles, checked at startup (`ChannelConfigurationError`) and enforced per message before the
    actor.
    `response_targets`: a channel's default response target for requests that name none (docs/delivery.md);
    `active_window`: seconds a last-seen channel counts as "active". `run_token_ttl`: seconds a continuation token
    (`GET /v1/runs/<token>`) stays valid after it is issued.
    `oidc`: an OpenID Connect provider to sign in with (`OidcConfig`; needs the `afactors[oidc]` extra): the
    linker that verifies claims for linked-claim allowlists.
    `tracer_provider`: an OpenTelemetry `TracerProvider` (the `otel` extra): every turn gets a span from it
    (docs/observability.md); None: no traces.
    `node_id`: this host's id; every HTTP response then carries `X-Afactors-Node: <node_id>`. With a PostgreSQL
    `store` the host runs as that node of a cluster (docs/scale-out.md), advertising `advertise` (`http://host:port`,
    how the other nodes reach this one); `lease_seconds`: its lease (the other nodes hold it dead once its heartbeat
    stood still for half of it, and take its conversations). On LMDB it stays a single host that only names itself.
    `cluster_secret`: the secret nodes of a cluster authenticate forwarded turns with (`open_host(locator=...)`;
    the CLI reads `$AFACTORS_CLUSTER_SECRET`); with it the host serves the internal routes `/v1/cluster/...`, and a
    cluster node forwards a turn of a conversation another node owns to it.
    `forward`: how hard a node tries to hand a turn to its conversation's owner (docs/scale-out.md, Forwarding);
    None (the default): `lease_forward_policy(lease_seconds)` on a cluster node, else `ForwardPolicy()`.
    """

    state_dir: str | os.PathLike[str] = ".afactors"
    store: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    durability: Durability = "durable"
    busy_policy: BusyPolicy = "enqueue"
    api_keys: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    drain_timeout: float = 10.0
    mailbox_size: int = 32
    idle_timeout: float = 600.0
    max_active: int = 10_000
    web_ui: bool = True
    metrics: bool = True
    retention: RetentionConfig = attrs.field(factory=RetentionConfig)
    history_turns: int | None = None
    history_tokens: int | None = None
    summarize: Summarizer | None = attrs.field(default=None, eq=False, repr=False)
    count_tokens: TokenCounter | None = attrs.field(default=None, eq=False, repr=False)
    admin_key: str | None = attrs.field(default=None, repr=False)
    history_budget: int = 256 << 20
    tenant_budget: int = 64 << 20
    limits: ServerLimits = attrs.field(factory=ServerLimits)
    delivery: DeliveryPolicy = attrs.field(factory=DeliveryPolicy)
    identity: IdentityConfig = attrs.Factory(IdentityConfig)
    http_link_channels: tuple[str, ...] = attrs.field(default=("responses", "invocations"), converter=tuple)
    default_allowlist: Allowlist | None = None
    channel_auth: dict[str, ChannelAuth] = attrs.Factory(dict)
    response_targets: dict[str, ResponseTarget] = attrs.Factory(dict)
    active_window: float = ACTIVE_WINDOW
    run_token_ttl: float = DEFAULT_TTL
    oidc: OidcConfig | None = None
    tracer_provider: Any = attrs.field(default=None, repr=False)
    node_id: str | None = None
    cluster_secret: str | None = attrs.field(default=None, repr=False)
    forward: ForwardPolicy | None = None
    advertise: str | None = None
    lease_seconds: float = DEFAULT_LEASE

    @property
    def cluster(self) -> bool:
        """Whether the host runs as a cluster node: a `node_id` on a PostgreSQL store."""
        return self.node_id is not None and (self.store or "").startswith(URL_SCHEMES)

    def check_cluster(self) -> None:
        """Refuse cluster settings that cannot work (`ValueError`): a node needs a URL to advertise."""
        if self.node_id is None:
            if self.advertise is not None:
                raise ValueError("--advertise is for cluster nodes: give --node-id too")
            return
        if not self.node_id or not self.node_id.isprintable() or "/" in self.node_id:
            raise ValueError(f"a node id must be a non-empty printable name without '/', not {self.node_id!r}")
        if not self.cluster:
            return  # an LMDB host only names itself
        if self.advertise is None:
            raise ValueError("a cluster node needs --advertise http://host:port (how the other nodes reach it)")
        check_advertise(self.advertise)
        if self.lease_seconds <= 0:
            raise ValueError(f"--lease-seconds must be positive, not {self.lease_seconds}")

    @property
    def forward_policy(self) -> ForwardPolicy:
        """The forward policy in force: `forward` if given, else one derived from the lease on a cluster node."""
        if self.forward is not None:
            return self.forward
        return lease_forward_policy(self.lease_seconds) if self.cluster else ForwardPolicy()

    def actor_config(self) -> ActorConfig:
        return ActorConfig(
            busy_policy=self.busy_policy, mailbox_size=self.mailbox_size, idle_timeout=self.idle_timeout,
            max_active=self.max_active, drain_timeout=self.drain_timeout, history_turns=self.history_turns,
            history_tokens=self.history_tokens, summarize=self.summarize, count_tokens=self.count_tokens,
            history_budget=self.history_budget, tenant_budget=self.tenant_budget,
        )  # fmt: skip


class Host:
    """A running host, made by `open_host`: read `urls`, `channels`, `system`, `store`, `outbox`, `timers`,
    `identity`, `runs` (continuation tokens); a cluster node's `cluster` (`ClusterNode`) and `locator`."""

    def __init__(self, store: Store, system: ActorSystem, config: HostConfig) -> None:
        self.store = store
        self.system = system
        self.timers = Timers(store, system, max_sleep=CLUSTER_SLEEP if config.cluster else MAX_SLEEP)
        self.config = config
        self.urls: list[str] = []
        self.channels: dict[str, Channel] = {}
        self.contributions: dict[str, Contribution] = {}
        self.ready = trio.Event()
        self.shutting_down = trio.Event()
        self.outbox: Outbox | None = None
        self.runs: RunTokens | None = None
        self.monitor = TurnMonitor()
        self.sweeper = Sweeper(store, system, config.retention)
        self.identity = IdentityService(store, config.identity, shared=config.cluster)
        self.router = Router(
            self.identity, lambda: self.channels.keys(), self._pushers, active_window=config.active_window,
            defaults=config.response_targets,
        )  # fmt: skip
        self.pusher = Pusher(store, system, self.router)
        self.cluster: ClusterNode | None = None
        self.locator: Locator | None = None

    def _pushers(self) -> list[str]:
        return [name for name, c in self.contributions.items() if c.deliver is not None]

    async def push(
        self,
        target: ResponseTarget,
        message: str | Message | Reply,
        *,
        idempotency_key: str,
        tenant: str = DEFAULT_TENANT,
        user: Identity | None = None,
    ) -> PushResult:
        """Push `message` without a turn (a notification, a broadcast) to `target`'s destinations: explicit
        `ResponseTarget.to_identities([...])`, or the `channels`/`all_linked`/`active` channels of `user`'s person.
        One durable outbox row per destination, committed with the push's audit and `idempotency_key` (asking
        again with the same key queues nothing). Raises `RoutingError` (unknown channel or identity, a channel
        that cannot push, no destination) or `ValueError` (a bad key). See docs/delivery.md."""
        return await self.pusher.push(tenant, target, message, idempotency_key=idempotency_key, user=user)

    def stop_now(self) -> None:
        """Skip the rest of a graceful shutdown: cut running turns now (uncommitted; inboxed ones replay on the next
        start). Their callers get a "cancelled"/"shutdown" reply, so open streams can still end properly."""
        self.shutting_down.set()
        self.system.stop_now()

    async def _readiness(self) -> object:
        if self.shutting_down.is_set():
            return jsonify({"status": "stopping"}), 503
        if not self.ready.is_set():
            return jsonify({"status": "starting"}), 503
        if self.store.full:
            reason = "the disk holding the state is full: writes are refused until space is freed"
            return jsonify({"status": "degraded", "reason": "store_full", "message": reason}), 503
        return jsonify({"status": "healthy", "channels": sorted(self.channels)})


def _lifetime(agent: Agent) -> AbstractAsyncContextManager[object]:
    """What the host enters around everything else: an adapted agent that is an async context manager (its
    resources, e.g. an adapter's event loop thread, live as long as the host), or nothing."""
    return agent if isinstance(agent, AbstractAsyncContextManager) else nullcontext()


def _tracing(provider: Any, monitor: TurnMonitor, busy_policy: str) -> Tracing:
    """Turn spans from `provider` (imports OpenTelemetry: only called when traces are on)."""
    from afactors.host._otel import OtelTracing

    return OtelTracing(provider, monitor.channel, busy_policy)


def _forwarding(locator: Locator | None, config: HostConfig) -> AbstractAsyncContextManager[Forwarder | None]:
    """A forwarder to the owners of conversations `locator` places elsewhere, open until the server has stopped (its
    requests may still wait on forwarded turns); nothing without a locator."""
    if locator is None or not config.cluster_secret:
        return nullcontext()
    return Forwarder.open(locator, config.cluster_secret, config.forward_policy, config.limits.max_body_bytes)


def _join_cluster(host: Host, node: ClusterNode, locator: Locator | None, replay: DeadLetterReplay) -> None:
    """Make a host a cluster node's: its locator; deliveries only for what it owns (the sweeper hands over what
    dead nodes left), leases kept while their deliveries run, redrives by the owner, stale lease rows purged by
    retention."""
    outbox = host.outbox
    assert outbox is not None
    host.cluster = node
    host.locator = locator or node.locator(host.system)
    outbox.recover = False
    outbox.leases = node.leases
    outbox.drained = host.system.release_idle
    outbox.replay = replay
    node.leases.keep = outbox.delivering
    host.sweeper.also["leases"] = partial(purge_leases, node.leases.store, node.registry, host.sweeper.config.batch)


async def _run_startup_hooks(contributions: Iterable[Contribution]) -> None:
    """Run every channel's startup hooks, all of them even when some fail; then raise the first failure."""
    errors: list[Exception] = []
    for contribution in contributions:
        for hook in contribution.on_startup:
            try:
                await hook()
            except Exception as exc:
                errors.append(exc)
    if errors:
        raise errors[0]


@asynccontextmanager
async def open_host(
    target: object = None,
    config: HostConfig | None = None,
    *,
    channels: Iterable[Channel] = (),
    locator: Locator | None = None,
    **settings: Any,
) -> AsyncIterator[Host]:
    """Run a host inside the caller's trio program until the block exits, then shut down in order.

    `settings` are `HostConfig` fields overriding `config` (`open_host(agent, port=0, state_dir=...)` works).
    Shutdown: channel services stop and intake closes (new turns get the channels' 503 `shutting_down`, the
    listener stays open meanwhile), running turns get `drain_timeout` to finish, then the server stops
    accepting and closes its connections, the turns still running are cancelled (their inbox rows replay on
    the next start), final commit.
    The target is checked first (`as_agent`: a target of no accepted shape is refused before anything opens); an
    adapted agent that is an async context manager is entered before the store opens and exited after it closes.
    `locator`: in a cluster, where each conversation's turns run; a turn of a conversation another node owns is
    forwarded to it (needs `cluster_secret`; docs/scale-out.md).
    """
    config = attrs.evolve(config or HostConfig(), **settings)
    if locator is not None and not config.cluster_secret:
        raise ValueError("a cluster node needs a cluster secret (cluster_secret, $AFACTORS_CLUSTER_SECRET)")
    channels = list(channels)
    validate([c.name for c in channels], config.default_allowlist, config.channel_auth,
             has_claim_linker=config.oidc is not None)  # fmt: skip
    if config.oidc is not None and importlib.util.find_spec("jwt") is None:
        raise RuntimeError("the OIDC linker needs PyJWT: install the extra, pip install 'afactors[oidc]'")
    config.check_cluster()
    agent = as_agent(target if target is not None else DemoAgent())
    node_option = {"node": config.node_id} if config.cluster else {}
    store_at = config.store or config.state_dir
    async with _lifetime(agent), Store.open(store_at, durability=config.durability, **node_option) as store:
        async with AsyncExitStack() as cluster_scope:
            node = None
            if config.cluster and config.node_id is not None and config.advertise is not None:
                node = await cluster_scope.enter_async_context(
                    open_node(store, config.node_id, config.advertise, config.lease_seconds)
                )
            system = await cluster_scope.enter_async_context(
                ActorSystem.open(store, agent, config.actor_config(), ownership=None if node is None else node.leases)
            )
            if locator is None and node is not None and config.cluster_secret:
                locator = node.locator(system)  # with a secret, turns of others' conversations are forwarded
            forwarder = await cluster_scope.enter_async_context(_forwarding(locator, config))
            async with trio.open_nursery() as nursery, trio.open_nursery() as services:
                the_host = Host(store, system, config)
                background = BackgroundTurns(system, services)
                background.track_recovered()
                api_keys = ApiKeys(config.api_keys)
                system.on_turn_ended = the_host.monitor.ended
                if config.tracer_provider is not None:
                    system.tracing = _tracing(config.tracer_provider, the_host.monitor, config.busy_policy)
                routes: list[Route] = [Route("/readiness", the_host._readiness, methods=("GET",))]
                sources = StatusSources(
                    system, store, background, the_host.monitor, lambda: sorted(the_host.channels),
                    lambda: the_host.outbox, cluster=lambda: None if node is None else node.summary(),
                )  # fmt: skip
                if config.web_ui:
                    routes.extend(web_routes(sources, api_keys))
                replay = DeadLetterReplay(system, forwarder)
                if config.admin_key:
                    routes.extend(admin_routes(store, system, config.admin_key, replay))
                metrics = HostMetrics(sources, the_host.sweeper) if config.metrics else None
                if metrics is not None:
                    the_host.monitor.listeners.append(metrics.turn_ended)
                    store.on_transaction = metrics.transaction
                    routes.extend(metrics.routes())
                routes.extend(timer_routes(the_host.timers, api_keys, time.time, the_host.router))
                runs = the_host.runs = RunTokens(store, system, api_keys, ttl=config.run_token_ttl)
                if forwarder is not None and metrics is not None:
                    forwarder.observe = metrics.forwarded
                contexts: dict[str, HostChannelContext] = {}
                oidc = None
                if config.oidc is not None:
                    oidc = OidcLinker(config.oidc, the_host.identity, store, api_keys, the_host.channels,
                                      config.http_link_channels, lambda: the_host.urls[0])  # fmt: skip
                for channel in channels:
                    auth = config.channel_auth.get(channel.name, ChannelAuth())
                    ctx = HostChannelContext(
                        channel, system=system, store=store, api_keys=api_keys, background=background,
                        identity=the_host.identity, router=the_host.router, shutting_down=the_host.shutting_down,
                        monitor=the_host.monitor,
                        allowlist=effective(auth, config.default_allowlist), require_link=auth.require_link,
                        runs=runs, oidc=oidc, meters=None if metrics is None else metrics.meter,
                        tracing=system.tracing, forwarder=forwarder,
                    )  # fmt: skip
                    contexts[channel.name] = ctx
                    contribution = channel.contribute(ctx)
                    the_host.channels[channel.name] = channel
                    the_host.contributions[channel.name] = contribution
                    routes.extend(contribution.routes)
                identity_routes = IdentityRoutes(
                    the_host.identity, api_keys, the_host.channels, config.http_link_channels
                )
                own = [
                    *identity_routes.routes(),
                    *PushRoutes(the_host.pusher, api_keys).routes(),
                    *runs.routes(),
                    *(oidc.routes() if oidc is not None else ()),
                ]
                if config.cluster_secret:
                    own.extend(ClusterRoutes(
                        config.cluster_secret, "" if locator is None else locator.node_id, locator, system, contexts,
                        background, replay.here, heartbeat=config.forward_policy.heartbeat,
                        max_body_bytes=config.limits.max_body_bytes,
                    ).routes())  # fmt: skip
                routes[1:1] = own  # before any channel's catch-all
                stop_server = trio.Event()
                server = server_config(config.host, config.port, config.drain_timeout, config.limits)
                app = build_app(routes, config.limits, config.node_id)
                the_host.urls = await nursery.start(serve_app, app, server, stop_server)
                delivers = {name: c.deliver for name, c in the_host.contributions.items() if c.deliver is not None}
                hooks = {name: c.response_hook for name, c in the_host.channels.items() if c.response_hook is not None}
                the_host.outbox = Outbox(store, delivers, policy=config.delivery, hooks=hooks)
                if node is not None:
                    _join_cluster(the_host, node, locator, replay)
                await services.start(the_host.outbox.run)
                if node is not None:
                    await services.start(node.sweep, system, the_host.outbox.notify)
                if config.retention.enabled:  # on one host among those sharing the store
                    await services.start(partial(lead, store, RETENTION_ROLE, the_host.sweeper.run))
                system.on_outbox = the_host.outbox.notify
                system.on_timer = the_host.timers.wake
                system.route_timer = the_host.router.route_timer
                await services.start(the_host.timers.run)
                await _run_startup_hooks(the_host.contributions.values())
                for contribution in the_host.contributions.values():
                    for task in contribution.tasks:
                        await services.start(task)
                the_host.ready.set()
                log.info("afactors serving %s", ", ".join(the_host.urls))
                try:
                    yield the_host
                finally:
                    the_host.shutting_down.set()
                    services.cancel_scope.cancel()
                    with trio.CancelScope(shield=True):
                        if not await system.drain(config.drain_timeout):
                            server.graceful_timeout = 0.5  # the turns left are cut: don't wait for them twice
                    stop_server.set()
            with trio.CancelScope(shield=True):
                for contribution in the_host.contributions.values():
                    for hook in contribution.on_shutdown:
                        await hook()
