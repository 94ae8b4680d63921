"""Conversation actors: one supervised actor per conversation, a bounded mailbox, one turn at a time.

`ActorSystem.open(store, agent)` runs them; channels call `submit(envelope)` and read the `TurnHandle`.
See docs/actors.md for the turn lifecycle, busy policies, supervision, passivation and crash semantics.
"""

from afactors.actors.actor import ActorInfo, ActorStatus, ConversationActor
from afactors.actors.errors import ActorUnavailable, ConversationBusy, SystemClosed
from afactors.actors.handle import TurnHandle
from afactors.actors.keys import new_turn_id
from afactors.actors.supervision import RestartPolicy
from afactors.actors.system import ActorStats, ActorSystem

__all__ = [
    "ActorInfo", "ActorStats", "ActorStatus", "ActorSystem", "ActorUnavailable", "ConversationActor",
    "ConversationBusy", "RestartPolicy", "SystemClosed", "TurnHandle", "new_turn_id",
]
