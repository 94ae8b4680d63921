"""`IdentityService`: channel identities -> durable isolation keys, one-time-code linking, last seen, `/new`.

A host service beside the actor system. Every change is one store commit made while holding the locks of what it
reads and rewrites (the sender, the isolation keys, the code), taken in one order: a code is redeemed at most
once however many redemptions race, a merge is all-or-nothing, and unrelated senders do not wait for each
other (their commits share the store's group commit).

On a store shared by the nodes of a cluster (`shared`) those locks are per process, so each commit also expects
every row it was computed from to be as read (`Expect`), and an operation whose rows another node changed
meanwhile is computed again from fresh reads: two nodes never issue two keys for one channel identity, spend one
code twice or lose a merge. Nor does a shared service cache rows (another node may change them): every lookup
reads the store, and its rate limits count in the store too (`StoredWindow`), so they hold across the nodes.
"""

from __future__ import annotations

import inspect
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from afactors.identity import _codes, _keys
from afactors.identity._errors import IdentityRefused, LinkFailed
from afactors.identity._policy import LinkPolicy, allow_all_links, pairs_allowed
from afactors.identity._stripes import Stripes
from afactors.identity._window import SlidingWindow, StoredWindow, Window
from afactors.model import Identity
from afactors.store import (
    AuditRecord,
    Delete,
    Expect,
    IdentityRecord,
    LinkRecord,
    Member,
    Op,
    Put,
    Store,
    TokenRecord,
    retried,
)

Resolver = Callable[[str, Identity], "str | None | Awaitable[str | None]"]
"""`(tenant, identity) -> isolation key`, or None to refuse the sender; plain or async. A link made by a ceremony
(code, OIDC) takes precedence over it."""

REFUSED_TEXT = "You don't have access to this bot."

_MAX_KEY_CHARS = 128
_CACHE_ENTRIES = 200_000

_RECORDS = "identity records"  # what keeps changing when a change cannot commit (`retried`)

Read = tuple[str, str, Any]
"""(kind, key, the row as read, None: absent): a row a change was computed from."""


@attrs.frozen
class IdentityConfig:
    """How identities resolve and link.

    `resolver`: a custom resolver (default: auto-issue a key on first contact and keep it). `code_ttl`: seconds a
    link code lives. `codes_per_window` codes per identity, and `failures_per_window` wrong redemptions per
    channel identity, per `window` seconds. `seen_interval`: last seen (with the address) is written at most this
    often per channel identity, and whenever the person switches channel identity.
    """

    resolver: Resolver | None = None
    code_ttl: float = 600.0
    codes_per_window: int = 5
    failures_per_window: int = 5
    window: float = 600.0
    seen_interval: float = 30.0
    tiers: dict[str, str] = attrs.Factory(dict)
    link_policy: LinkPolicy = allow_all_links


@attrs.frozen
class Resolved:
    """A sender's isolation key and the conversation their own sessions continue."""

    key: str
    conversation: str


@attrs.frozen
class LinkCode:
    """A one-time code for `/link CODE` on another channel, valid until `expires_at` (epoch seconds)."""

    code: str
    expires_at: float


def _identity_rows(tenant: str, keys: Iterable[str], records: Iterable[IdentityRecord | None]) -> list[Read]:
    """The identity rows `_held` read for `keys`: a record under its own key (merges followed), or absence."""
    return [
        ("identities", _keys.identity_key(tenant, k if r is None else r.key), r)
        for k, r in zip(keys, records, strict=True)
    ]


def _valid_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_CHARS or not key.isprintable() or "/" in key:
        raise ValueError(f"an isolation key must be 1-{_MAX_KEY_CHARS} printable characters without '/': {key!r}")
    return key


class IdentityService:
    """The identity registry of one store (all tenants, never crossing); `shared`: the store is a cluster's (see
    the module docstring)."""

    def __init__(self, store: Store, config: IdentityConfig | None = None, *, shared: bool = False) -> None:
        self.store = store
        self.config = config or IdentityConfig()
        self._senders = Stripes()  # (tenant, channel, native id): first contact issues one key
        self._keys = Stripes()  # (tenant, isolation key): read-modify-write of identity records
        self._code_lock = trio.Lock()  # codes are rare; one lock makes "spent" exact
        self._cache: dict[tuple[str, str], Any] | None = None if shared else {}  # None: shared, read the store
        self._codes = self._window("codes", self.config.codes_per_window, shared)
        self._failures = self._window("failures", self.config.failures_per_window, shared)

    def _window(self, name: str, limit: int, shared: bool) -> Window:
        """A rate limit's counter: in the store when it is shared (every node counts the same events), else in
        memory."""
        window = self.config.window
        return StoredWindow(self.store, name, limit, window) if shared else SlidingWindow(limit, window)

    # -- reads -----------------------------------------------------------------------------------------------

    def _read(self, kind: str, key: str) -> Any:
        """An identity or link row, from the write-through cache (this service is their only writer), or from the
        store when it is shared."""
        if self._cache is None:
            return self.store.get(kind, key)
        cached = self._cache.get((kind, key))
        if cached is None:
            cached = self.store.get(kind, key)
            if cached is not None:
                if len(self._cache) >= _CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[(kind, key)] = cached
        return cached

    async def _commit(self, ops: list[Op], read: Iterable[Read] = ()) -> bool:
        """Commit, then bring the cache up to date with what was written (a failed commit drops the rows).

        On a shared store: only if every row of `read` is still as read, else nothing is written and it returns
        False (the caller computes the change again)."""
        if self._cache is None:
            return await self.store.commit(ops, expect=[Expect(kind, key, value) for kind, key, value in read])
        cached = [(op.kind, op.key) for op in ops if op.kind in ("identities", "links")]
        try:
            await self.store.commit(ops)
        except BaseException:
            for entry in cached:
                self._cache.pop(entry, None)
            raise
        for op in ops:
            if op.kind in ("identities", "links"):
                if isinstance(op, Put):
                    self._cache[(op.kind, op.key)] = op.value
                else:
                    self._cache.pop((op.kind, op.key), None)
        return True

    def record(self, tenant: str, key: str) -> IdentityRecord | None:
        """The identity under `key` (following merges), or None."""
        for _ in range(16):  # merges form short chains; a bound keeps a corrupt cycle from looping
            record: IdentityRecord | None = self._read("identities", _keys.identity_key(tenant, key))
            if record is None or record.merged_into is None:
                return record
            key = record.merged_into
        return None

    def link(self, tenant: str, channel: str, native_id: str) -> LinkRecord | None:
        return self._read("links", _keys.link_key(tenant, channel, native_id))  # type: ignore[no-any-return]

    def lookup(self, tenant: str, channel: str, native_id: str) -> IdentityRecord | None:
        """The identity a channel identity resolves to today without a custom resolver, or None if unknown."""
        link = self.link(tenant, channel, native_id)
        return None if link is None else self.record(tenant, link.key)

    def audit(self, tenant: str, key: str) -> list[AuditRecord]:
        """The audit trail of an isolation key, oldest first."""
        return [record for _, record in self.store.scan("audit", _keys.audit_prefix(tenant, key))]

    # -- resolution ------------------------------------------------------------------------------------------

    async def resolve(self, tenant: str, identity: Identity, address: dict[str, Any] | None = None) -> Resolved:
        """The isolation key of a sender (auto-issued and persisted on first contact); records where they were
        last seen. Raises `IdentityRefused` when a custom resolver returns None."""
        link = self.link(tenant, identity.channel, identity.user_id)
        resolver = self.config.resolver
        if link is not None and (link.via != "auto" or resolver is None):
            key: str | None = link.key
        elif resolver is not None:
            result = resolver(tenant, identity)
            key = await result if inspect.isawaitable(result) else result
            if key is None:
                raise IdentityRefused(REFUSED_TEXT, "resolver_refused")
            key = _valid_key(key)
        else:
            key = None
        now = time.time()
        record = None if key is None else self.record(tenant, key)
        if record is None or self._stale(record, identity, now):
            record = await self._seen(tenant, identity, address or {}, key, now)
        return Resolved(record.key, record.conversation)

    def _stale(self, record: IdentityRecord, identity: Identity, now: float) -> bool:
        member = record.members.get(f"{identity.channel}/{identity.user_id}")
        return (
            member is None
            or record.last != member.ref
            or member.last_seen_at is None
            or now - member.last_seen_at >= self.config.seen_interval
        )

    async def _seen(
        self, tenant: str, identity: Identity, address: dict[str, Any], key: str | None, now: float
    ) -> IdentityRecord:
        """Create or update the sender's identity: member, last seen, the link row when the key is auto-issued."""
        ref = f"{identity.channel}/{identity.user_id}"

        async def attempt() -> IdentityRecord | None:
            ops: list[Op] = []
            read: list[Read] = []
            chosen = key
            if chosen is None:  # re-read: a racing first contact may have issued the key meanwhile
                link_at = _keys.link_key(tenant, identity.channel, identity.user_id)
                link = self.link(tenant, identity.channel, identity.user_id)
                read.append(("links", link_at, link))
                if link is None:
                    chosen = "u" + secrets.token_hex(12)
                    ops.append(Put("links", link_at, LinkRecord(chosen, "auto", now)))
                else:
                    chosen = link.key
            async with self._held(tenant, chosen) as records:
                [record] = records
                read += _identity_rows(tenant, [chosen], records)
                record = record or IdentityRecord(tenant, chosen, _keys.conversation_of(chosen), created_at=now)
                via = "auto" if ops else "resolver"
                member = record.members.get(ref) or Member(identity.channel, identity.user_id, now, via)
                member = attrs.evolve(member, last_seen_at=now, address=address or member.address)  # keep the last
                record = attrs.evolve(record, members={**record.members, ref: member}, last=ref)
                ops.append(Put("identities", _keys.identity_key(tenant, record.key), record))
                return record if await self._commit(ops, read) else None

        async with self._senders.hold(f"{tenant}/{ref}"):
            return await retried(attempt, _RECORDS)

    @asynccontextmanager
    async def _held(self, tenant: str, *keys: str) -> AsyncIterator[list[IdentityRecord | None]]:
        """Hold the locks of the identities `keys` lead to (following merges) and yield their records as they
        stand (None: not created yet). A merge that lands while waiting for a lock is followed."""
        while True:
            live = [self.record(tenant, key) for key in keys]
            names = [f"{tenant}/{r.key if r is not None else k}" for r, k in zip(live, keys, strict=True)]
            async with self._keys.hold(*names):
                again = [self.record(tenant, key) for key in keys]
                if [r and r.key for r in again] == [r and r.key for r in live]:
                    yield again
                    return

    async def new_conversation(self, tenant: str, identity: Identity) -> str:
        """Move the sender's sessions to a fresh conversation (the old one is kept); returns its id."""
        resolved = await self.resolve(tenant, identity)

        async def attempt() -> str | None:
            async with self._held(tenant, resolved.key) as records:
                [record] = records
                assert record is not None
                fresh = f"{_keys.conversation_of(record.key)}#{secrets.token_hex(4)}"
                ops: list[Op] = [
                    Put("identities", _keys.identity_key(tenant, record.key), attrs.evolve(record, conversation=fresh)),
                    self._audit(tenant, record.key, "new_conversation", time.time(), identity, {"conversation": fresh}),
                ]
                return fresh if await self._commit(ops, _identity_rows(tenant, [resolved.key], records)) else None

        return await retried(attempt, _RECORDS)

    # -- one-time-code linking -------------------------------------------------------------------------------

    async def issue_code(self, tenant: str, identity: Identity) -> LinkCode:
        """A one-time code for the sender's identity; raises `LinkFailed("rate_limited")` past the per-identity
        limit."""
        resolved = await self.resolve(tenant, identity)
        now = time.time()
        limit_key = f"{tenant}/{resolved.key}"
        if not await self._codes.take(limit_key, now):
            raise LinkFailed("Too many link codes; try again later.", "rate_limited")
        code = _codes.new_code()
        digest = _codes.digest(tenant, code)
        token = TokenRecord("link", tenant, resolved.key, digest, now + self.config.code_ttl, now,
                            {"channel": identity.channel, "native_id": identity.user_id})  # fmt: skip
        await self._commit([Put("tokens", _keys.code_key(digest), token)])  # a fresh random key: no condition
        return LinkCode(code, token.expires_at)

    async def redeem(self, tenant: str, identity: Identity, code: str) -> IdentityRecord:
        """Merge the sender's identity (every channel identity it has) onto the code's, in one commit with an
        audit record; the code is spent. Raises `LinkFailed` for a wrong, expired, spent or rate-limited code."""
        ref = f"{tenant}/{identity.channel}/{identity.user_id}"
        now = time.time()
        if self._failures.full(ref, now):
            raise LinkFailed("Too many attempts; try again later.", "rate_limited")
        normal = _codes.normalize(code)
        candidate = _codes.digest(tenant, normal) if normal is not None else ""
        resolved = await self.resolve(tenant, identity)
        code_at = _keys.code_key(candidate)

        async def attempt() -> IdentityRecord | None:
            token: TokenRecord | None = self.store.get("tokens", code_at) if normal else None
            if (
                token is None
                or token.purpose != "link"
                or token.tenant != tenant
                or not _codes.same(token.digest, candidate)
            ):
                await self._failures.add(ref, now)
                raise LinkFailed("That code is not valid. Send /link on the other channel for a new one.",
                                 "invalid_code")  # fmt: skip
            spend: list[Op] = [Delete("tokens", code_at)]
            read: list[Read] = [("tokens", code_at, token)]  # spent once, whichever node redeems it
            if token.expires_at <= now:
                if await self._commit(spend, read):
                    raise LinkFailed("That code has expired. Send /link on the other channel for a new one.",
                                     "expired_code")  # fmt: skip
                return None
            async with self._held(tenant, token.key, resolved.key) as records:
                target, source = records
                assert source is not None
                read += _identity_rows(tenant, [token.key, resolved.key], records)
                if target is None or target.key == source.key:
                    return source if await self._commit(spend, read) else None
                if not self._may_link(target, source):
                    if await self._commit(spend, read):
                        raise LinkFailed("These channels cannot be linked.", "policy")
                    return None
                ops, merged = self._merge(tenant, source, target, identity, now)
                return merged if await self._commit(spend + ops, read) else None

        async with self._code_lock:
            return await retried(attempt, _RECORDS)

    def _may_link(self, target: IdentityRecord, source: IdentityRecord) -> bool:
        config = self.config
        sources = {m.channel for m in target.members.values()}
        destinations = {m.channel for m in source.members.values()}
        return pairs_allowed(config.link_policy, config.tiers, sources, destinations, "link")

    def _merge(
        self, tenant: str, source: IdentityRecord, target: IdentityRecord, by: Identity, now: float, via: str = "code"
    ) -> tuple[list[Op], IdentityRecord]:
        """The ops that move every channel identity of `source` onto `target` (and audit it on both), and the
        target as they leave it."""
        moved = {ref: attrs.evolve(m, linked_at=now, via=via) for ref, m in source.members.items()}
        ops: list[Op] = [
            Put("links", _keys.link_key(tenant, m.channel, m.native_id), LinkRecord(target.key, via, now))
            for m in moved.values()
        ]
        by_ref = f"{by.channel}/{by.user_id}"
        merged = attrs.evolve(target, members={**target.members, **moved}, last=by_ref,
                              claims={**source.claims, **target.claims})  # fmt: skip
        ops += [
            Put("identities", _keys.identity_key(tenant, target.key), merged),
            Put("identities", _keys.identity_key(tenant, source.key),
                attrs.evolve(source, members={}, merged_into=target.key)),
            self._audit(tenant, target.key, "link", now, by, {"merged": source.key, "members": sorted(moved),
                                                               "via": via}),
            self._audit(tenant, source.key, "merged", now, by, {"into": target.key}),
        ]  # fmt: skip
        return ops, merged

    async def link_claims(
        self, tenant: str, identity: Identity, claims: dict[str, str], keys: dict[str, str], *, via: str = "oidc"
    ) -> IdentityRecord:
        """Record verified `claims` on the sender's person, and merge every identity that presented one of the
        same `keys` (claim name -> value) onto the one that presented it first (the sender then continues its
        conversation); one commit, audited. Raises `LinkFailed("policy")` when the link policy forbids it."""
        resolved = await self.resolve(tenant, identity)
        now = time.time()

        async def attempt() -> IdentityRecord | None:
            rows = [(at, self._read("links", at)) for at in
                    (_keys.claim_key(tenant, name, value) for name, value in keys.items())]  # fmt: skip
            read: list[Read] = [("links", at, row) for at, row in rows]
            owners = [row.key for _, row in rows if row is not None]
            async with self._held(tenant, *owners, resolved.key) as records:
                read += _identity_rows(tenant, [*owners, resolved.key], records)
                live: dict[str, IdentityRecord] = {r.key: r for r in records if r is not None}
                target, *sources = live.values()
                for source in sources:
                    if not self._may_link(target, source):
                        raise LinkFailed("These channels cannot be linked.", "policy")
                ops: list[Op] = []
                for source in sources:
                    merge_ops, target = self._merge(tenant, source, target, identity, now, via)
                    ops += merge_ops
                target = attrs.evolve(target, claims={**target.claims, **claims})
                ops += [Put("links", at, LinkRecord(target.key, via, now)) for at, _ in rows]
                ops += [
                    Put("identities", _keys.identity_key(tenant, target.key), target),
                    self._audit(tenant, target.key, "claims", now, identity, {"via": via, "claims": sorted(claims)}),
                ]
                return target if await self._commit(ops, read) else None

        async with self._code_lock:  # claim rows are read and rewritten here only
            return await retried(attempt, _RECORDS)

    async def unlink(self, tenant: str, channel: str, native_id: str, *, action: str = "unlink") -> bool:
        """Detach a channel identity from the person it was linked to: it gets a fresh key and conversation of its
        own. False when it is not linked to anything else. `action` names it in the audit (`unlink`, `revoke`)."""
        ref = f"{channel}/{native_id}"
        link_at = _keys.link_key(tenant, channel, native_id)

        async def attempt() -> bool | None:
            link = self.link(tenant, channel, native_id)
            found = None if link is None else self.record(tenant, link.key)
            if found is None:
                return False
            async with self._held(tenant, found.key) as records:
                [record] = records
                if record is None or ref not in record.members or len(record.members) < 2:
                    return False
                now = time.time()
                member = record.members[ref]
                rest = {r: m for r, m in record.members.items() if r != ref}
                last = max(rest.values(), key=lambda m: m.last_seen_at or 0.0).ref
                fresh = "u" + secrets.token_hex(12)
                members = {ref: attrs.evolve(member, linked_at=now, via=action)}
                alone = IdentityRecord(tenant, fresh, _keys.conversation_of(fresh), now, members, last=ref)
                who = Identity(channel, native_id)
                ops: list[Op] = [
                    Put("identities", _keys.identity_key(tenant, record.key),
                        attrs.evolve(record, members=rest, last=last)),
                    Put("identities", _keys.identity_key(tenant, fresh), alone),
                    Put("links", link_at, LinkRecord(fresh, action, now)),
                    self._audit(tenant, record.key, action, now, who, {"new_key": fresh}),
                    self._audit(tenant, fresh, action, now, who, {"from": record.key}),
                ]  # fmt: skip
                read = [("links", link_at, link), *_identity_rows(tenant, [found.key], records)]
                return True if await self._commit(ops, read) else None

        async with self._senders.hold(f"{tenant}/{ref}"):
            return await retried(attempt, _RECORDS)

    @staticmethod
    def _audit(tenant: str, key: str, action: str, now: float, who: Identity, detail: dict[str, Any]) -> Put:
        record = AuditRecord(tenant, action, key, now, who.channel, who.user_id, detail)
        return Put("audit", _keys.audit_key(tenant, key, time.time_ns(), secrets.token_hex(3)), record)
