"""`Locator`: the narrow interface the host forwards by, and `Peer`, a node it forwards to."""

from __future__ import annotations

from typing import Protocol

import attrs

from afactors.model import ConversationKey


@attrs.frozen
class Peer:
    """A node of the cluster: its id and the base URL it advertises to the others (`http://host:port`)."""

    node_id: str
    url: str


class Locator(Protocol):
    """Where a conversation's turns run.

    `locate` returns None when this node owns `key`'s conversation, taking its lease when it is free or expired;
    otherwise the peer that holds the lease, to forward the envelope to.
    """

    @property
    def node_id(self) -> str:
        """This node's id."""
        ...

    async def locate(self, key: ConversationKey) -> Peer | None:
        """None: run `key`'s turns here (this node holds its lease); else the owner to forward them to."""
        ...
