"""Rendezvous (highest-random-weight) hashing: each conversation's preferred node among the live ones."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(node_id: str, path: str) -> int:
    """The pseudo-random weight of `node_id` for conversation `path` (stable across processes and machines)."""
    digest = hashlib.blake2b(f"{node_id}\0{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preferred(path: str, nodes: Iterable[str]) -> str | None:
    """The node of `nodes` with the highest weight for `path` (None: no nodes). Adding a node moves only the
    conversations it now wins; removing one moves only its own."""
    return max(nodes, key=lambda node: (weight(node, path), node), default=None)
