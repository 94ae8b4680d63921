"""MCP messages of the agent-as-a-tool server: versions, initialize, the tool, its calls and results. No I/O.

The server offers one tool (by default `ask_agent {prompt, session_id?}`). Everything here is a pure function
of the JSON a client sent and the negotiated protocol version, so the whole protocol surface is unit-tested
without a socket. Wire shapes follow the 2025-11-25 revision; older handshake-era revisions get the same
answers minus what they did not know (`title`, `outputSchema`, `structuredContent` arrived in 2025-06-18).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from afactors_mcp.jsonrpc import INVALID_PARAMS, RequestId, RpcError

LATEST_VERSION = "2025-11-25"
HANDSHAKE_VERSIONS: tuple[str, ...] = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
"""Revisions reachable through `initialize`, oldest first."""
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
"""Stateless revisions (no `initialize`, no session): served when the channel is configured `stateless`."""
DEFAULT_HEADER_VERSION = "2025-03-26"
"""What a request without an `MCP-Protocol-Version` header is assumed to speak (the spec's fallback)."""
STRUCTURED_SINCE = "2025-06-18"

SESSION_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,128}$"
_SESSION_ID = re.compile(SESSION_ID_PATTERN)
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


def structured(version: str) -> bool:
    """Whether `version` knows tool titles, output schemas and structured results."""
    known = (*HANDSHAKE_VERSIONS, *MODERN_VERSIONS)
    return known.index(version) >= known.index(STRUCTURED_SINCE)


def negotiate(requested: str) -> str:
    """The version to answer `initialize` with: the client's when we speak it, else our latest."""
    return requested if requested in HANDSHAKE_VERSIONS else LATEST_VERSION


def _check_tool_name(_: object, __: object, name: str) -> None:
    if not _TOOL_NAME.match(name):
        raise ValueError(f"tool name {name!r} must be 1-128 of A-Z, a-z, 0-9, _, - and .")


@attrs.frozen
class ToolSpec:
    """How the agent is offered as a tool: its name, title and the description a model reads to choose it."""

    name: str = attrs.field(default="ask_agent", validator=_check_tool_name)
    title: str = "Ask the agent"
    description: str = (
        "Send a message to the agent and get its answer. The agent remembers conversations: to continue one, pass "
        "the session_id of an earlier result."
    )

    def definition(self, version: str) -> dict[str, Any]:
        """The tool as `tools/list` shows it to a client of `version`."""
        tool: dict[str, Any] = {"name": self.name, "description": self.description, "inputSchema": INPUT_SCHEMA}
        if structured(version):
            tool["title"] = self.title
            tool["outputSchema"] = OUTPUT_SCHEMA
        tool["annotations"] = {"readOnlyHint": False, "destructiveHint": False, "openWorldHint": True}
        return tool


INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "description": "What to ask or tell the agent."},
        "session_id": {
            "type": "string",
            "pattern": SESSION_ID_PATTERN,
            "description": "The conversation to continue: the session_id of an earlier result.",
        },
    },
    "required": ["prompt"],
    "additionalProperties": False,
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "result": {"type": "string", "description": "The agent's answer (or what went wrong)."},
        "session_id": {"type": "string", "description": "Pass this back as session_id to continue."},
    },
    "required": ["result", "session_id"],
}


@attrs.frozen
class ServerInfo:
    """What `initialize` says about this server."""

    name: str = "afactors"
    version: str = "0.1.0"
    title: str | None = None
    instructions: str | None = None


def invalid(message: str) -> RpcError:
    """A -32602 refusal (sent with HTTP 200: the request was well-formed JSON-RPC, its params were not)."""
    return RpcError(200, INVALID_PARAMS, f"Invalid params: {message}")


@attrs.frozen
class Hello:
    """A parsed `initialize` request."""

    version: str
    client_name: str | None = None


def parse_initialize(params: dict[str, Any]) -> Hello:
    requested = params.get("protocolVersion")
    if not isinstance(requested, str):
        raise invalid("initialize needs protocolVersion (a string)")
    for name in ("capabilities", "clientInfo"):
        if name in params and not isinstance(params[name], dict):
            raise invalid(f"{name} must be an object")
    client_name = (params.get("clientInfo") or {}).get("name")
    return Hello(negotiate(requested), client_name if isinstance(client_name, str) else None)


def initialize_result(version: str, server: ServerInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"name": server.name, "version": server.version}
    if server.title is not None:
        info["title"] = server.title
    result: dict[str, Any] = {
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": info,
    }
    if server.instructions is not None:
        result["instructions"] = server.instructions
    return result


def list_tools_result(tool: ToolSpec, version: str, params: dict[str, Any]) -> dict[str, Any]:
    """`tools/list`: the one tool. A cursor is never issued, so any cursor is invalid."""
    if params.get("cursor") is not None:
        raise invalid("unknown cursor (this server lists every tool on one page)")
    return {"tools": [tool.definition(version)]}


@attrs.frozen
class ToolCall:
    """A parsed `tools/call` of the agent tool."""

    prompt: str
    session_id: str | None = None
    progress_token: str | int | None = None


def progress_token(params: dict[str, Any]) -> str | int | None:
    meta = params.get("_meta")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise invalid("_meta must be an object")
    token = meta.get("progressToken")
    if token is None:
        return None
    if isinstance(token, bool) or not isinstance(token, str | int):
        raise invalid("_meta.progressToken must be a string or an integer")
    return token


def parse_call(params: dict[str, Any], tool: ToolSpec) -> ToolCall:
    """A `tools/call` of `tool`: unknown tool or arguments that break the input schema are -32602."""
    name = params.get("name")
    if not isinstance(name, str):
        raise invalid("tools/call needs the tool's name (a string)")
    if name != tool.name:
        raise invalid(f"unknown tool {name!r} (this server has {tool.name!r})")
    arguments = params.get("arguments", {})
    if not isinstance(arguments, dict):
        raise invalid("arguments must be an object")
    unknown = sorted(set(arguments) - {"prompt", "session_id"})
    if unknown:
        raise invalid(f"unknown argument(s) {', '.join(unknown)}; {tool.name} takes prompt and session_id")
    prompt = arguments.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt is required and must be a non-empty string")
    session_id = arguments.get("session_id")
    if session_id is not None and (not isinstance(session_id, str) or not _SESSION_ID.match(session_id)):
        raise invalid("session_id must be 1-128 of A-Z, a-z, 0-9, '.', '_', ':' and '-'")
    return ToolCall(prompt, session_id, progress_token(params))


def call_result(text: str, session_id: str, version: str, *, is_error: bool = False) -> dict[str, Any]:
    """A `tools/call` result. A failed turn is `isError: true` with the reason as text, never a JSON-RPC error."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": is_error}
    if structured(version):
        result["structuredContent"] = {"result": text, "session_id": session_id}
    return result


def progress_params(token: str | int, progress: int, message: str) -> dict[str, Any]:
    """`notifications/progress`: `progress` must grow with every notification of one call."""
    return {"progressToken": token, "progress": progress, "message": message}


def cancelled_request(params: dict[str, Any]) -> RequestId | None:
    """The request a `notifications/cancelled` names; None when it names none usable (it is then ignored)."""
    request_id = params.get("requestId")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        return None
    return request_id
