"""The attrs data model: messages, content parts, updates, replies and envelopes."""

from afactors.model.agent import TIMER_OPTION, Agent, NoRecords, TurnContext, TurnRecords
from afactors.model.codec import PartTypeError, converter, describe_error, dumps, loads
from afactors.model.cron import Cron, CronError
from afactors.model.envelope import (
    BUSY_POLICIES,
    HISTORY_EDITS,
    BusyPolicy,
    ConversationKey,
    Envelope,
    EnvelopeKind,
    Identity,
    ReplyTarget,
)
from afactors.model.messages import ENDED_STATUSES, ROLES, ErrorInfo, Message, Reply, Role, Status, Update
from afactors.model.parts import (
    DataPart,
    FunctionCallPart,
    FunctionResultPart,
    Part,
    ReasoningPart,
    TextPart,
    UriPart,
    UsagePart,
)
from afactors.model.timers import Timer, TimerError, TimerSpec, TurnTimers, new_timer

__all__ = [
    "BUSY_POLICIES",
    "ENDED_STATUSES",
    "HISTORY_EDITS",
    "ROLES",
    "Agent",
    "BusyPolicy",
    "ConversationKey",
    "DataPart",
    "Envelope",
    "EnvelopeKind",
    "ErrorInfo",
    "FunctionCallPart",
    "FunctionResultPart",
    "Identity",
    "Message",
    "NoRecords",
    "Part",
    "PartTypeError",
    "ReasoningPart",
    "Reply",
    "ReplyTarget",
    "Role",
    "Status",
    "TextPart",
    "TIMER_OPTION",
    "Timer",
    "TimerError",
    "TimerSpec",
    "TurnContext",
    "TurnTimers",
    "Cron",
    "CronError",
    "new_timer",
    "TurnRecords",
    "Update",
    "UriPart",
    "UsagePart",
    "converter",
    "describe_error",
    "dumps",
    "loads",
]
