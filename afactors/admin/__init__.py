"""Operator tools for a stopped state directory: inspect, show, dead letters, timers, purge, export/import, compact.

`python -m afactors inspect|show|dead-letters|timers|purge|export|import|compact ...` (see `afactors.admin.cli`). Each
opens the store itself, so the host must be stopped (a running host holds the state directory's lock).
"""

from afactors.admin._state import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    ConversationReplay,
    ConversationWrite,
    ExportError,
    cancel_timer,
    conversation_key,
    conversation_report,
    dead_letters,
    export_lines,
    has_conversation,
    import_lines,
    inspect_report,
    purge_conversation,
    purge_dead_letters,
    purge_timers,
    replay_conversation,
    replay_dead_letter,
    timers,
)

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ConversationReplay",
    "ConversationWrite",
    "ExportError",
    "cancel_timer",
    "conversation_key",
    "conversation_report",
    "dead_letters",
    "export_lines",
    "has_conversation",
    "import_lines",
    "inspect_report",
    "purge_conversation",
    "purge_dead_letters",
    "purge_timers",
    "replay_conversation",
    "replay_dead_letter",
    "timers",
]
