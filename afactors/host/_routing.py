"""Response targets resolved on the host, at submit time: a `ResponseTarget` plus the identity registry (linked
members, last seen with address), the channels that can push, and the tiers' deliver policy give a `Routing`.

Resolved once, when the turn is accepted: the routing rides in the envelope (and its inbox row), so a replayed
turn pushes to the same destinations, and the ledger writes one outbox row per destination in the turn's commit.
A request naming something that cannot be reached (an unknown channel, a channel that cannot push, an identity
unknown in the caller's tenant, a channel the sender is not linked on) is refused at submit time (`RoutingError`);
a destination the deliver policy forbids, or a linked channel without a known address, is skipped and recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping

import attrs

from afactors.identity import IdentityService, LinkPolicyContext
from afactors.model import ORIGINATING, Destination, Envelope, Identity, ResponseTarget, Routing, Skipped
from afactors.store import IdentityRecord, Member

log = logging.getLogger("afactors.routing")

ACTIVE_WINDOW = 300.0
"""Seconds a last-seen channel stays "active" (spec-digest §3.11, ADR Q13)."""


class RoutingError(Exception):
    """A response target or push that cannot be delivered as asked; `status` and `code` for the 4xx."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_response_target") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


@attrs.frozen
class _Origin:
    """Where a turn came from: its channel and sender (None for a push without a turn)."""

    channel: str | None = None
    identity: Identity | None = None
    isolation_key: str | None = None


class Router:
    """Resolves response targets for one host. `channels()` names the host's channels and `pushers()` those
    whose contribution has a `deliver`; both are read at resolve time (channels contribute after the router is
    made)."""

    def __init__(
        self,
        identity: IdentityService,
        channels: Callable[[], Collection[str]],
        pushers: Callable[[], Collection[str]],
        *,
        active_window: float = ACTIVE_WINDOW,
        defaults: Mapping[str, ResponseTarget] | None = None,
    ) -> None:
        self._identity = identity
        self._channels, self._pushers = channels, pushers
        self.active_window = active_window
        self.defaults = dict(defaults or {})

    def default(self, channel: str) -> ResponseTarget | None:
        """The channel's default response target (None: originating, no routing)."""
        return self.defaults.get(channel)

    def for_turn(self, tenant: str, target: ResponseTarget, channel: str, sender: Identity | None,
                 isolation_key: str | None) -> Routing:  # fmt: skip
        """Where a turn's answer goes. `sender`/`isolation_key`: the resolved sender (None when the envelope names
        nobody; then only `originating`, `none` and `identities` can be resolved)."""
        return self._resolve(tenant, target, _Origin(channel, sender, isolation_key))

    def for_timer(self, tenant: str, target: ResponseTarget, sender: Identity | None) -> Routing:
        """Where a timer's answer goes: resolved as for a turn its `sender` (who set it) sends on their own channel,
        whose originating destination is the timer's reply address."""
        if sender is None:
            return self.for_turn(tenant, target, "", None, None)
        return self.for_turn(tenant, target, sender.channel, sender, self._known(tenant, sender).key)

    def route_timer(self, envelope: Envelope) -> Envelope:
        """A firing timer's envelope with its response target resolved now (`ActorSystem.route_timer`). A target
        that no longer resolves (the person unlinked, a channel gone) is logged and dropped: the turn answers
        the timer's reply address only."""
        if envelope.response_target is None:
            return envelope
        try:
            routing = self.for_timer(envelope.key.tenant, envelope.response_target, envelope.identity)
        except RoutingError as error:
            log.warning("timer turn %s of %s: its response target no longer resolves (%s); it answers its reply "
                        "address only", envelope.turn_id, envelope.key.path, error.message)  # fmt: skip
            return attrs.evolve(envelope, response_target=None, routing=None)
        return attrs.evolve(envelope, routing=routing)

    def for_push(self, tenant: str, target: ResponseTarget, user: Identity | None) -> Routing:
        """Where a push without a turn goes: `identities`, or `channels`/`all_linked`/`active` of `user`'s person."""
        if target.kind in ("originating", "none"):
            raise RoutingError(f"a push has no originating channel: response target {target.kind!r} cannot be pushed")
        if target.kind == "channels" and ORIGINATING in target.channels:
            raise RoutingError("a push has no originating channel: 'originating' cannot be named")
        key = None
        if target.kind != "identities":
            if user is None:
                raise RoutingError(f"a push to {target.kind!r} needs the 'user' whose channels it goes to")
            record = self._known(tenant, user)
            key = record.key
        routing = self._resolve(tenant, target, _Origin(None, None, key))
        if not routing.destinations:
            reasons = ", ".join(f"{s.channel}: {s.reason}" for s in routing.skipped) or "none linked"
            raise RoutingError(f"no destination of this push can receive it ({reasons})", 409, "no_destination")
        return routing

    # -- resolution ------------------------------------------------------------------------------------------

    def _resolve(self, tenant: str, target: ResponseTarget, origin: _Origin) -> Routing:
        if target.kind == "originating":
            return Routing(target)
        if target.kind == "none":
            return Routing(target, originating=False)
        if target.kind == "identities":
            originating, found = self._identities(tenant, target, origin)
            return self._allowed(target, origin, originating, found, ())
        for name in target.channels:  # a bad name is told before anything else
            if name not in (ORIGINATING, origin.channel):
                self._check_channel(name)
        record = self._person(tenant, target, origin)
        if target.kind == "channels":
            originating, found = self._named(target, origin, record)
            return self._allowed(target, origin, originating, found, ())
        mine = self._own_ref(origin)
        if target.kind == "active":
            return self._active(target, origin, record, mine)
        members = [m for ref, m in sorted(record.members.items()) if ref != mine]
        found, skipped = self._reachable(members, target.echo_input)
        return self._allowed(target, origin, origin.channel is not None, found, skipped)

    def _active(self, target: ResponseTarget, origin: _Origin, record: IdentityRecord, mine: str | None) -> Routing:
        """Where the person was seen most recently, other than where this request comes from (its own resolution
        has just made that the last seen), if within the window and it can be pushed to; else originating."""
        others = [m for ref, m in record.members.items() if ref != mine and m.last_seen_at is not None]
        last = max(others, key=lambda m: m.last_seen_at or 0.0, default=None)
        if last is None or time.time() - (last.last_seen_at or 0.0) > self.active_window:
            return Routing(target, originating=origin.channel is not None)
        found, skipped = self._reachable([last], target.echo_input)
        return self._allowed(target, origin, not found, found, skipped)

    def _identities(self, tenant: str, target: ResponseTarget, origin: _Origin) -> tuple[bool, list[Destination]]:
        originating, found = False, []
        mine = self._own_ref(origin)
        for who in target.identities:
            self._check_channel(who.channel)
            if f"{who.channel}/{who.user_id}" == mine:
                originating = True
                continue
            record = self._known(tenant, who)
            member = record.members.get(f"{who.channel}/{who.user_id}")
            found.append(self._destination(who.channel, who.user_id, member, target.echo_input))
        return originating, found

    def _named(self, target: ResponseTarget, origin: _Origin, record: IdentityRecord) -> tuple[bool, list[Destination]]:
        originating, found = False, []
        mine = self._own_ref(origin)
        for name in target.channels:
            if name in (ORIGINATING, origin.channel):
                originating = True
                continue
            members = [m for ref, m in sorted(record.members.items()) if m.channel == name and ref != mine]
            if not members:
                raise RoutingError(f"the user is not linked on channel {name!r}", 409, "not_linked")
            found += [self._destination(name, m.native_id, m, target.echo_input) for m in members]
        return originating, found

    def _allowed(
        self, target: ResponseTarget, origin: _Origin, originating: bool, found: list[Destination],
        skipped: tuple[Skipped, ...],
    ) -> Routing:  # fmt: skip
        """Apply the deliver policy (from the originating channel's tier); with nothing left, the originating
        channel answers (spec-digest §3.18)."""
        kept: list[Destination] = []
        dropped = list(skipped)
        config = self._identity.config
        for d in found:
            if origin.channel is not None and d.channel != origin.channel:
                pair = LinkPolicyContext(origin.channel, config.tiers.get(origin.channel), d.channel,
                                         config.tiers.get(d.channel), "deliver")  # fmt: skip
                if not config.link_policy(pair):
                    dropped.append(Skipped(d.channel, d.user_id, "link_policy"))
                    continue
            kept.append(d)
        if not kept and origin.channel is not None:
            originating = True
        return Routing(target, originating=originating, destinations=tuple(kept), skipped=tuple(dropped))

    # -- pieces ----------------------------------------------------------------------------------------------

    def _check_channel(self, name: str) -> None:
        if name not in self._channels():
            known = ", ".join(sorted(self._channels())) or "none"
            raise RoutingError(f"unknown channel {name!r} (channels: {known})", 400, "unknown_channel")
        if name not in self._pushers():
            pushers = ", ".join(sorted(self._pushers())) or "none"
            raise RoutingError(f"channel {name!r} cannot push replies (channels that can: {pushers})", 400,
                               "cannot_push")  # fmt: skip

    def _known(self, tenant: str, who: Identity) -> IdentityRecord:
        record = self._identity.lookup(tenant, who.channel, who.user_id)
        if record is None:
            raise RoutingError(f"unknown identity {who.channel}/{who.user_id}", 404, "unknown_identity")
        return record

    def _person(self, tenant: str, target: ResponseTarget, origin: _Origin) -> IdentityRecord:
        record = None if origin.isolation_key is None else self._identity.record(tenant, origin.isolation_key)
        if record is None:
            raise RoutingError(f"response target {target.kind!r} needs a sender the host knows (send one)", 400,
                               "sender_required")  # fmt: skip
        return record

    @staticmethod
    def _own_ref(origin: _Origin) -> str | None:
        return None if origin.identity is None else f"{origin.channel}/{origin.identity.user_id}"

    def _reachable(self, members: list[Member], echo: bool) -> tuple[list[Destination], tuple[Skipped, ...]]:
        """The members that can be pushed to, and the others with the reason."""
        found, skipped = [], []
        pushers = self._pushers()
        for m in members:
            if m.channel not in pushers:
                skipped.append(Skipped(m.channel, m.native_id, "cannot_push"))
            elif not m.address:
                skipped.append(Skipped(m.channel, m.native_id, "no_address"))
            else:
                found.append(Destination(m.channel, m.native_id, dict(m.address), echo))
        return found, tuple(skipped)

    @staticmethod
    def _destination(channel: str, user: str, member: Member | None, echo: bool) -> Destination:
        if member is None or not member.address:
            raise RoutingError(f"no address is known for {channel}/{user} (they have not written to this bot on "
                               f"{channel} yet)", 409, "no_address")  # fmt: skip
        return Destination(channel, user, dict(member.address), echo)
