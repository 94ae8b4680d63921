"""Several afactors nodes on one PostgreSQL store: who owns a conversation, and where its turns run.

The host depends on `Locator` only: before a turn is handed to a conversation actor, `locate(key)` says whether
this node owns the conversation (None: run it here) or which peer does (forward the envelope to it). A node is run
by `open_node` (its registry and heartbeat, its leases, the takeover sweeper); `docs/scale-out.md` has the design.
"""

from afactors.cluster._forward import ForwardedTurn, Forwarder, ForwardPolicy
from afactors.cluster._leases import FLOOR, FREE, Leases
from afactors.cluster._locator import Locator, Peer
from afactors.cluster._node import (
    DEFAULT_LEASE,
    ClusterNode,
    LeaseLocator,
    check_advertise,
    lease_forward_policy,
    open_node,
)
from afactors.cluster._purge import purge_leases
from afactors.cluster._registry import Registry
from afactors.cluster._rendezvous import preferred
from afactors.cluster._wire import PushRequest

__all__ = [
    "DEFAULT_LEASE",
    "FLOOR",
    "FREE",
    "ClusterNode",
    "ForwardPolicy",
    "ForwardedTurn",
    "Forwarder",
    "LeaseLocator",
    "Leases",
    "Locator",
    "Peer",
    "PushRequest",
    "Registry",
    "check_advertise",
    "lease_forward_policy",
    "open_node",
    "preferred",
    "purge_leases",
]
