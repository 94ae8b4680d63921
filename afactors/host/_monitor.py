"""`TurnMonitor`: which channel submitted each turn, the last turns that ended, and listeners for ended turns.

Fed by the host's channel contexts (`submitted`) and the actor system's `on_turn_ended`; read by the status page
and the metrics. It keeps no message bodies.

Must not import: `afactors.host._host` (it imports this).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable

import attrs

from afactors.actors import EndedTurn
from afactors.model import Envelope

log = logging.getLogger("afactors.turns")

MAX_PENDING = 100_000
"""Turns whose channel is remembered while they run; the oldest are forgotten beyond this (then labelled by
their envelope)."""


@attrs.frozen
class TurnSummary:
    """What an operator sees of one ended turn: ids, channel, status, when it ended (wall clock) and how long it
    took from acceptance (seconds, queueing included)."""

    turn_id: str
    tenant: str
    conversation: str
    channel: str
    status: str
    ended_at: float
    duration: float


def channel_of(envelope: Envelope) -> str:
    """The channel a turn came from when nobody said so: where its reply goes, or who sent it."""
    if envelope.reply_to is not None:
        return envelope.reply_to.channel
    if envelope.identity is not None:
        return envelope.identity.channel
    return "unknown"


class TurnMonitor:
    """Remembers the last `keep` ended turns and tells `listeners` about every one."""

    def __init__(self, keep: int = 50) -> None:
        self.recent: deque[TurnSummary] = deque(maxlen=keep)
        self.listeners: list[Callable[[TurnSummary], None]] = []
        self._channels: OrderedDict[str, str] = OrderedDict()

    def submitted(self, turn_id: str, channel: str) -> None:
        """Note the channel of a turn that has not ended yet."""
        self._channels[turn_id] = channel
        if len(self._channels) > MAX_PENDING:
            self._channels.popitem(last=False)

    def channel(self, turn_id: str, envelope: Envelope) -> str:
        """The channel of a turn that has not ended yet."""
        return self._channels.get(turn_id) or channel_of(envelope)

    def ended(self, ended: EndedTurn) -> None:
        """`ActorSystem.on_turn_ended`: summarise the turn, keep it, and tell the listeners."""
        key = ended.envelope.key
        channel = self._channels.pop(ended.turn_id, None) or channel_of(ended.envelope)
        summary = TurnSummary(
            ended.turn_id, key.tenant, key.conversation, channel, ended.status, ended.ended_at, ended.duration
        )
        self.recent.append(summary)
        if log.isEnabledFor(logging.INFO):
            duration_ms = round(summary.duration * 1000, 3)
            fields = {"turn_id": summary.turn_id, "channel": channel, "status": summary.status}
            log.info("turn %s", summary.status, extra={**fields, "duration_ms": duration_ms})
        for listener in self.listeners:
            listener(summary)
