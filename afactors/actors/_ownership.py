"""`Ownership`: how the actor system of a cluster node holds conversations and fences its commits.

The cluster (`afactors.cluster`) implements it over the store's "leases" kind; a single host has none. The system
claims a conversation's lease before it activates its actor (so the snapshot it reads is the last one committed by
anyone), adds the lease's `Expect` to every commit for the conversation, and gives the lease back on passivation.

Must not import: the actor or the system.
"""

from __future__ import annotations

from typing import Protocol

from afactors.model import ConversationKey
from afactors.store import Expect


class Ownership(Protocol):
    """The leases this node holds (see the module docstring)."""

    def lease(self, path: str) -> Expect | None:
        """The condition a commit for conversation `path` carries (the lease as this node holds it), or None when
        this node holds no lease on it."""
        ...

    async def claim(self, key: ConversationKey) -> bool:
        """Hold `key`'s lease, taking it if it is free or its owner is not live. True if this node took it now
        (the conversation may have pending rows another node left), False if it held it already. Raises
        `NotOwner` when a live node holds it."""
        ...

    def release(self, path: str) -> None:
        """Give the lease back (the actor was passivated): at once in memory, in the store in the background."""
        ...

    def lost(self, path: str) -> None:
        """A commit for `path` was fenced: another node holds the lease now; forget it."""
        ...
