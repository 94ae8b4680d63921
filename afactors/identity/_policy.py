"""Confidentiality tiers and the link/deliver policy (spec-digest §3.18): which channels may be linked, and
(for delivery) which may receive what another started. Tiers are opaque strings compared for equality."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Literal

import attrs


@attrs.frozen
class LinkPolicyContext:
    """One directed pair: from `source` (where it started) to `destination`, for `operation`."""

    source_channel: str
    source_tier: str | None
    destination_channel: str
    destination_tier: str | None
    operation: Literal["link", "deliver"]


LinkPolicy = Callable[[LinkPolicyContext], bool]


def allow_all_links(ctx: LinkPolicyContext) -> bool:
    """The default: any channel may be linked with (and deliver to) any other."""
    return True


def deny_all_links(ctx: LinkPolicyContext) -> bool:
    """No links at all; replies go only where the request came from."""
    return False


def same_tier_only(ctx: LinkPolicyContext) -> bool:
    """Only channels of equal tier (None equals None)."""
    return ctx.source_tier == ctx.destination_tier


def _pairs(pairs: Iterable[tuple[str | None, str | None]]) -> frozenset[tuple[str | None, str | None]]:
    return frozenset(pairs)


@attrs.frozen
class ExplicitPairs:
    """Only the listed directed `(source tier, destination tier)` pairs, plus equal tiers when `same_tier`."""

    pairs: frozenset[tuple[str | None, str | None]] = attrs.field(converter=_pairs)
    same_tier: bool = True

    def __call__(self, ctx: LinkPolicyContext) -> bool:
        if self.same_tier and ctx.source_tier == ctx.destination_tier:
            return True
        return (ctx.source_tier, ctx.destination_tier) in self.pairs


def pairs_allowed(
    policy: LinkPolicy,
    tiers: dict[str, str],
    sources: Collection[str],
    destinations: Collection[str],
    operation: Literal["link", "deliver"],
) -> bool:
    """Whether `policy` allows every pair from a source channel to a destination channel."""
    return all(
        policy(LinkPolicyContext(s, tiers.get(s), d, tiers.get(d), operation))
        for s in sources
        for d in destinations
        if s != d
    )
