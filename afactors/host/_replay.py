"""`DeadLetterReplay`: give dead letters of a conversation another go where the conversation is owned.

On a cluster node a conversation's rows are written by its owner only (under its lease): a redrive or an admin replay
asked of another node hands the dead letters to the owner (`Forwarder.replay`, the owner's
`POST /v1/cluster/dead-letters/replay`), as a push is handed over. Each dead letter moves once (its commit expects it
as read) however many nodes are asked.

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from afactors import admin
from afactors.actors import ActorSystem
from afactors.cluster import Forwarder
from afactors.model import ConversationKey

BATCH = 1000
"""Dead letters moved per commit, and per request to the owner (about 100 KB: far below the nodes' body limit)."""


@attrs.frozen
class DeadLetterReplay:
    """`await replay(key, dead_keys)`: how many of those dead letters of conversation `key` moved, here when this
    node owns the conversation (or takes it, free), else on its owner through `forwarder`. Without a forwarder (no
    cluster secret) raises `NotOwner` while another live node owns it; `ActorUnavailable` when no owner took them
    within the forward policy's wait."""

    system: ActorSystem
    forwarder: Forwarder | None = None

    async def here(self, key: ConversationKey, dead_keys: Sequence[str]) -> int:
        """Replay them on this node, through the actor system (fenced by the lease on a cluster node)."""
        return await admin.replay_conversation(self.system.store, key, dead_keys, self.system.push)

    async def __call__(self, key: ConversationKey, dead_keys: Sequence[str]) -> int:
        moved = 0
        for start in range(0, len(dead_keys), BATCH):
            batch = dead_keys[start : start + BATCH]
            if self.forwarder is None:
                moved += await self.here(key, batch)
            else:
                moved += await self.forwarder.replay(key, batch, self.here)
        return moved
