"""`McpConfig`: everything an MCP channel is configured with."""

from __future__ import annotations

import attrs

from afactors.model import BusyPolicy
from afactors_mcp.protocol import ServerInfo, ToolSpec


def _check_path(_: object, __: object, path: str) -> None:
    if not path.startswith("/") or path.endswith("/") or "<" in path:
        raise ValueError(f"the MCP path must start with / and not end with one, not {path!r}")


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive")


@attrs.frozen
class McpConfig:
    """Everything an `McpChannel` is configured with.

    `allowed_origins`: browser origins (exact, e.g. `https://app.example.com`, or `*`) allowed besides
    loopback ones; a request with any other `Origin` gets 403 (DNS-rebinding protection). `max_sessions` and
    `session_idle_timeout` bound the sessions kept in memory; `keep_streams` is how many finished response
    streams per session stay resumable with `Last-Event-ID`. `retry_ms` is the reconnect delay SSE streams
    announce; `keepalive` the seconds of silence after which a stream sends a comment. `stateless` also serves
    the 2026-07-28 revision (`server/discover` and self-contained requests without sessions); without it the
    discover probe is refused so newer clients fall back to 2025-11-25.
    """

    path: str = attrs.field(default="/mcp", validator=_check_path)
    tool: ToolSpec = attrs.field(factory=ToolSpec)
    server: ServerInfo = attrs.field(factory=ServerInfo)
    allowed_origins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    max_sessions: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    session_idle_timeout: float = attrs.field(default=3600.0, validator=_positive)
    keep_streams: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    retry_ms: int = attrs.field(default=1000, validator=attrs.validators.ge(0))
    keepalive: float = attrs.field(default=15.0, validator=_positive)
    stateless: bool = False
    busy_policy: BusyPolicy | None = None
