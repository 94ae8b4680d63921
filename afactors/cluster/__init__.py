"""Several afactors nodes on one PostgreSQL store: who owns a conversation, and where its turns run.

The host depends on `Locator` only: before a turn is handed to a conversation actor, `locate(key)` says whether
this node owns the conversation (None: run it here) or which peer does (forward the envelope to it).
"""

from afactors.cluster._forward import ForwardedTurn, Forwarder, ForwardPolicy
from afactors.cluster._locator import Locator, Peer

__all__ = ["ForwardPolicy", "ForwardedTurn", "Forwarder", "Locator", "Peer"]
