"""Conversation actors: one supervised actor per conversation, a bounded mailbox, one turn at a time.

`ActorSystem.open(store, agent)` runs them; channels call `submit(envelope)` and read the `TurnHandle`.
See docs/actors.md for the turn lifecycle, busy policies, supervision, passivation and crash semantics.
`afactors.actors.ledger` is the one writer of a turn's durable bookkeeping rows; the rest lives in private modules.
"""

from afactors.actors._actor import ActorInfo, ActorStatus, ConversationActor
from afactors.actors._errors import ActorUnavailable, ConversationBusy, NotOwner, SystemClosed
from afactors.actors._handle import TurnHandle
from afactors.actors._history import Summarizer, TokenCounter, estimate_tokens
from afactors.actors._keys import new_turn_id
from afactors.actors._owner import ActorOwner
from afactors.actors._ownership import Ownership
from afactors.actors._supervision import RestartPolicy
from afactors.actors._system import ActorConfig, ActorStats, ActorSystem, EndedTurn, TurnInfo

__all__ = [
    "ActorConfig",
    "ActorInfo",
    "ActorOwner",
    "ActorStats",
    "ActorStatus",
    "ActorSystem",
    "ActorUnavailable",
    "ConversationActor",
    "ConversationBusy",
    "EndedTurn",
    "NotOwner",
    "Ownership",
    "RestartPolicy",
    "Summarizer",
    "SystemClosed",
    "TokenCounter",
    "TurnHandle",
    "TurnInfo",
    "estimate_tokens",
    "new_turn_id",
]
