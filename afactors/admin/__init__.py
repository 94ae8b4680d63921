"""Operator tools for a stopped state directory: inspect, show, dead letters, purge, export/import, compact.

`python -m afactors inspect|show|dead-letters|purge|export|import|compact ...` (see `afactors.admin.cli`). Each
opens the store itself, so the host must be stopped (a running host holds the state directory's lock).
"""

from afactors.admin._state import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    ExportError,
    conversation_report,
    dead_letters,
    export_lines,
    import_lines,
    inspect_report,
    purge_conversation,
    purge_dead_letters,
    replay_dead_letter,
)

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ExportError",
    "conversation_report",
    "dead_letters",
    "export_lines",
    "import_lines",
    "inspect_report",
    "purge_conversation",
    "purge_dead_letters",
    "replay_dead_letter",
]
