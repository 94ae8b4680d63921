"""Authorization profiles (spec-digest §3.17): allowlists that allow, deny or abstain, the decision order, and
startup validation. Pure except for awaiting allowlists (which may load their lists)."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import ClassVar, Literal, Protocol

import attrs

from afactors.model import Identity

DENIED_TEXT = "You don't have access to this bot."
LINK_TEXT = "Please link your account to continue: send /link on a channel you already use, then /link CODE here."


class Decision(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ABSTAIN = "abstain"  # no opinion yet: not a denial


Claims = Mapping[str, "str | Sequence[str]"]


@attrs.frozen
class AuthContext:
    """What an allowlist sees: the sender, the phase, and (post-link) their key and verified claims."""

    identity: Identity
    phase: Literal["pre_link", "post_link"] = "pre_link"
    isolation_key: str | None = None
    verified_claims: Claims = attrs.Factory(dict)


class Allowlist(Protocol):
    requires_linked_claims: bool

    async def evaluate(self, ctx: AuthContext) -> Decision: ...


def _children(children: Iterable[Allowlist]) -> tuple[Allowlist, ...]:
    return tuple(children)


def _ids(ids: Iterable[object]) -> frozenset[str]:
    return frozenset(str(i) for i in ids)


@attrs.frozen
class AllowAll:
    """Allows everyone in both phases (overrides a host default)."""

    requires_linked_claims: bool = False

    async def evaluate(self, ctx: AuthContext) -> Decision:
        return Decision.ALLOW


@attrs.frozen
class NativeIdAllowlist:
    """Only the listed native ids (of `channel`, when set; another channel's sender gets ABSTAIN)."""

    native_ids: frozenset[str] = attrs.field(converter=_ids)
    channel: str | None = None
    requires_linked_claims: bool = False

    async def evaluate(self, ctx: AuthContext) -> Decision:
        if self.channel is not None and ctx.identity.channel != self.channel:
            return Decision.ABSTAIN
        return Decision.ALLOW if ctx.identity.user_id in self.native_ids else Decision.DENY


@attrs.frozen
class LinkedClaimAllowlist:
    """Linked senders whose verified `claim` (or any value of a multi-valued one) is in `values`."""

    claim: str
    values: frozenset[str] = attrs.field(converter=_ids)
    requires_linked_claims: bool = True

    async def evaluate(self, ctx: AuthContext) -> Decision:
        if ctx.phase == "pre_link":
            return Decision.ABSTAIN
        value = ctx.verified_claims.get(self.claim)
        found = [value] if isinstance(value, str) else list(value or ())
        return Decision.ALLOW if any(v in self.values for v in found) else Decision.DENY


@attrs.frozen
class _Combinator:
    """Children evaluated in order; needs linked claims when any child does. One `decisive` decision of a child
    decides; children that all say `unanimous` decide that; otherwise (and when empty) ABSTAIN."""

    decisive: ClassVar[Decision]
    unanimous: ClassVar[Decision]
    children: tuple[Allowlist, ...] = attrs.field(converter=_children)

    @property
    def requires_linked_claims(self) -> bool:
        return any(c.requires_linked_claims for c in self.children)

    async def evaluate(self, ctx: AuthContext) -> Decision:
        decisions = [await c.evaluate(ctx) for c in self.children]
        if self.decisive in decisions:
            return self.decisive
        if decisions and all(d == self.unanimous for d in decisions):
            return self.unanimous
        return Decision.ABSTAIN


@attrs.frozen
class AnyOf(_Combinator):
    """Any ALLOW allows; all DENY denies; otherwise (and when empty) ABSTAIN."""

    decisive = Decision.ALLOW
    unanimous = Decision.DENY


@attrs.frozen
class AllOf(_Combinator):
    """Any DENY denies; all ALLOW allows; otherwise (and when empty) ABSTAIN."""

    decisive = Decision.DENY
    unanimous = Decision.ALLOW


@attrs.frozen
class CallableAllowlist:
    """`fn(ctx) -> Decision` (plain or async)."""

    fn: Callable[[AuthContext], Decision | Awaitable[Decision]]
    requires_linked_claims: bool = False

    async def evaluate(self, ctx: AuthContext) -> Decision:
        result = self.fn(ctx)
        return Decision(await result if inspect.isawaitable(result) else result)


INHERIT: Literal["inherit"] = "inherit"


@attrs.frozen
class ChannelAuth:
    """A channel's profile: `allowlist` (`"inherit"` the host default, None explicitly open, or its own) and
    `require_link` (the sender must have linked once)."""

    allowlist: Allowlist | None | Literal["inherit"] = INHERIT
    require_link: bool = False


@attrs.frozen
class Allowed:
    reason: str = "allowed"


@attrs.frozen
class LinkRequired:
    reason: str
    message: str = LINK_TEXT


@attrs.frozen
class Denied:
    reason: str
    message: str = DENIED_TEXT


Outcome = Allowed | LinkRequired | Denied


async def decide(
    allowlist: Allowlist | None,
    require_link: bool,
    identity: Identity,
    linked_key: str | None,
    claims: Claims,
) -> Outcome:
    """The decision order of spec-digest §3.17. `linked_key`: the sender's key when they have linked (else None);
    `claims`: their verified claims."""
    pre = AuthContext(identity)
    decision = Decision.ALLOW if allowlist is None else await allowlist.evaluate(pre)
    if decision == Decision.DENY:
        return Denied("allowlist_denied_pre_link")
    if decision == Decision.ALLOW:
        return LinkRequired("link_required") if require_link and linked_key is None else Allowed()
    needs_link = require_link or (allowlist is not None and allowlist.requires_linked_claims)
    if not needs_link:
        return Allowed("abstain_open")
    if linked_key is None:
        return LinkRequired("allowlist_requires_link")
    post = AuthContext(identity, "post_link", linked_key, claims)
    after = Decision.ALLOW if allowlist is None else await allowlist.evaluate(post)
    if after == Decision.ALLOW:
        return Allowed("allowed_post_link")
    if after == Decision.DENY:
        return Denied("allowlist_denied_post_link")
    return Denied("allowlist_abstain_after_link")


class ChannelConfigurationError(ValueError):
    """An authorization configuration that can never allow anyone, or needs what the host lacks."""


def _walk(allowlist: Allowlist) -> Iterable[Allowlist]:
    yield allowlist
    for child in getattr(allowlist, "children", ()):
        yield from _walk(child)


def effective(auth: ChannelAuth, default: Allowlist | None) -> Allowlist | None:
    return default if auth.allowlist == INHERIT else auth.allowlist


def validate(
    channels: Collection[str],
    default: Allowlist | None,
    per_channel: Mapping[str, ChannelAuth],
    *,
    claim_channels: Collection[str] = (),
    has_claim_linker: bool = False,
) -> None:
    """Raise `ChannelConfigurationError` (at startup) for: a profile of an unknown channel; an allowlist needing
    verified claims on a channel that neither requires a link nor emits claims; claims needed but no linker
    verifies any; a `NativeIdAllowlist(channel=X)` naming no channel of this host; an empty native-id list as a
    channel's whole allowlist (it can never allow anyone)."""
    for name in per_channel:
        if name not in channels:
            known = ", ".join(sorted(channels))
            raise ChannelConfigurationError(f"authorization for unknown channel {name!r} (channels: {known})")
    for name in channels:
        auth = per_channel.get(name, ChannelAuth())
        allowlist = effective(auth, default)
        if allowlist is None:
            continue
        if allowlist.requires_linked_claims:
            if not auth.require_link and name not in claim_channels:
                raise ChannelConfigurationError(
                    f"channel {name!r}: its allowlist needs linked claims, but the channel neither requires a link "
                    "nor emits verified claims"
                )
            if not has_claim_linker and name not in claim_channels:
                raise ChannelConfigurationError(
                    f"channel {name!r}: its allowlist needs verified claims, but no identity linker on this host "
                    "verifies claims (configure an OIDC linker)"
                )
        for node in _walk(allowlist):
            if isinstance(node, NativeIdAllowlist) and node.channel is not None and node.channel not in channels:
                raise ChannelConfigurationError(
                    f"channel {name!r}: NativeIdAllowlist(channel={node.channel!r}) names no channel of this host"
                )
        if isinstance(allowlist, NativeIdAllowlist) and not allowlist.native_ids:
            raise ChannelConfigurationError(f"channel {name!r}: an empty NativeIdAllowlist can never allow anyone")
