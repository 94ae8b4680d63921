"""afactors channel: AG-UI (`RunAgentInput` in, server-sent AG-UI events out). See docs/channels/agui.md."""

from afactors_agui.channel import DEFAULT_PATH, AguiChannel, AguiPlugin, plugin
from afactors_agui.events import PROTOCOL_VERSION, EventStream, sse_frame
from afactors_agui.request import AguiError, RunRequest, parse_run_input

__all__ = [
    "DEFAULT_PATH",
    "PROTOCOL_VERSION",
    "AguiChannel",
    "AguiError",
    "AguiPlugin",
    "EventStream",
    "RunRequest",
    "parse_run_input",
    "plugin",
    "sse_frame",
]
