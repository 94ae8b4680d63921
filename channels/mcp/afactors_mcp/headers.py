"""The HTTP header rules of Streamable HTTP: Origin, Accept, Content-Type, protocol version, session id. No I/O.

Each check returns nothing or raises the `RpcError` (with its HTTP status) the transport answers with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from afactors_mcp.jsonrpc import INVALID_REQUEST, RpcError
from afactors_mcp.protocol import DEFAULT_HEADER_VERSION, HANDSHAKE_VERSIONS

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
LAST_EVENT_HEADER = "last-event-id"

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_SESSION_ID = re.compile(r"^[\x21-\x7e]{1,256}$")


def origin_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    """DNS-rebinding protection (M-01): a browser's `Origin` must be loopback or listed; no Origin is a non-browser.

    `allowed` holds exact origins (`https://app.example.com`) or `*` for any.
    """
    if origin is None:
        return True
    allowed = tuple(allowed)
    if "*" in allowed or origin in allowed:
        return True
    try:
        parts = urlsplit(origin)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and host is not None and host in LOOPBACK_HOSTS


def check_origin(origin: str | None, allowed: Iterable[str]) -> None:
    if not origin_allowed(origin, allowed):
        raise RpcError(403, INVALID_REQUEST, f"Forbidden: origin {origin!r} is not allowed")


def _media_types(accept: str | None) -> set[str]:
    return {part.split(";", 1)[0].strip().lower() for part in (accept or "").split(",") if part.strip()}


def accepts(accept: str | None, media_type: str) -> bool:
    """Whether an `Accept` header admits `media_type` (wildcards count)."""
    types = _media_types(accept)
    return bool({media_type, media_type.split("/")[0] + "/*", "*/*"} & types)


def check_post_accept(accept: str | None) -> None:
    """A POST must accept both JSON and an event stream (M-02)."""
    if not (accepts(accept, "application/json") and accepts(accept, "text/event-stream")):
        raise RpcError(406, INVALID_REQUEST,
                       "Not Acceptable: Client must accept both application/json and text/event-stream")  # fmt: skip


def check_get_accept(accept: str | None) -> None:
    if not accepts(accept, "text/event-stream"):
        raise RpcError(406, INVALID_REQUEST, "Not Acceptable: Client must accept text/event-stream")


def check_content_type(content_type: str | None) -> None:
    if (content_type or "").split(";", 1)[0].strip().lower() != "application/json":
        raise RpcError(415, INVALID_REQUEST, "Unsupported Media Type: Content-Type must be application/json")


def protocol_version(header: str | None) -> str:
    """The revision a request says it speaks: its `MCP-Protocol-Version`, or the spec's default when absent."""
    if header is None:
        return DEFAULT_HEADER_VERSION
    if header not in HANDSHAKE_VERSIONS:
        raise RpcError(400, INVALID_REQUEST, f"Bad Request: unsupported MCP-Protocol-Version {header!r}",
                       data={"supported": list(HANDSHAKE_VERSIONS)})  # fmt: skip
    return header


def session_id(header: str | None) -> str:
    """The session a request belongs to: missing is 400, a malformed one cannot exist (404)."""
    if header is None or not header.strip():
        raise RpcError(400, INVALID_REQUEST, "Bad Request: Missing session ID")
    if not _SESSION_ID.match(header):
        raise session_not_found()
    return header


def session_not_found() -> RpcError:
    return RpcError(404, INVALID_REQUEST, "Session not found: initialize a new session")
