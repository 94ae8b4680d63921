"""The stateless 2026-07-28 revision: `server/discover`, the per-request `_meta` envelope, routing headers. No I/O.

A 2026-07-28 request stands alone: no `initialize`, no `Mcp-Session-Id`. It names its revision in
`params._meta["io.modelcontextprotocol/protocolVersion"]` (mirrored in the `MCP-Protocol-Version` header) and
its method in the `Mcp-Method` header (and, for `tools/call`, the tool in `Mcp-Name`). Errors travel with the
HTTP status this revision assigns to each JSON-RPC code (M-20..M-22).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from afactors_mcp.jsonrpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, Request, RpcError
from afactors_mcp.protocol import HANDSHAKE_VERSIONS, MODERN_VERSIONS, ServerInfo, ToolSpec, list_tools_result

HEADER_MISMATCH = -32020
UNSUPPORTED_VERSION = -32022
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"

_STATUS = {PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
           UNSUPPORTED_VERSION: 400, METHOD_NOT_FOUND: 404}  # fmt: skip
_SENTINEL = re.compile(r"^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$")


def modern_status(code: int, default: int = 200) -> int:
    """The HTTP status a 2026-07-28 error with JSON-RPC `code` travels with (`default` for codes without one)."""
    return _STATUS.get(code, default)


def as_modern(error: RpcError) -> RpcError:
    """`error` with the status 2026-07-28 gives its code; other codes (a 503 when full) keep their status."""
    return RpcError(modern_status(error.code, error.status), error.code, error.message, id=error.id, data=error.data)


def _header_value(value: str | None) -> str | None:
    """A routing header's value, decoding the `=?base64?...?=` form clients use for unsafe characters."""
    match = _SENTINEL.match(value or "")
    if match is None:
        return value
    try:
        return base64.b64decode(match[1], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def check_envelope(message: Request, headers: Mapping[str, str]) -> str:
    """The revision of a 2026-07-28 request, after the envelope and routing-header checks (first failure wins)."""
    meta = message.params.get("_meta")
    if not isinstance(meta, dict):
        raise RpcError(400, INVALID_PARAMS, f"params._meta must be an object carrying {VERSION_KEY!r} and "
                                            f"{CAPABILITIES_KEY!r}")  # fmt: skip
    missing = [key for key in (VERSION_KEY, CAPABILITIES_KEY) if key not in meta]
    if missing:
        raise RpcError(400, INVALID_PARAMS, f"params._meta is missing the required key(s): {', '.join(missing)}")
    version = meta[VERSION_KEY]
    if headers.get("mcp-protocol-version") != version:
        raise RpcError(
            400, HEADER_MISMATCH, "mcp-protocol-version header does not match the request's protocol version"
        )
    if headers.get(METHOD_HEADER) != message.method:
        raise RpcError(400, HEADER_MISMATCH, "mcp-method header does not match the request body's method")
    name = message.params.get("name")
    if message.method == "tools/call" and name is not None and _header_value(headers.get(NAME_HEADER)) != name:
        raise RpcError(400, HEADER_MISMATCH, "mcp-name header does not match the request body's 'name' parameter")
    if not isinstance(version, str):
        raise RpcError(400, INVALID_PARAMS, "the protocol version in params._meta must be a string")
    if version not in MODERN_VERSIONS:
        raise RpcError(400, UNSUPPORTED_VERSION, "Unsupported protocol version",
                       data={"supported": list(MODERN_VERSIONS), "requested": version})  # fmt: skip
    return version


def stamped(result: dict[str, Any], server: ServerInfo) -> dict[str, Any]:
    """A 2026-07-28 result: `resultType` and the server's identity in `_meta`."""
    info: dict[str, Any] = {"name": server.name, "version": server.version}
    if server.title is not None:
        info["title"] = server.title
    return {**result, "resultType": "complete", "_meta": {SERVER_INFO_KEY: info}}


def discover_result(server: ServerInfo) -> dict[str, Any]:
    result: dict[str, Any] = {
        "supportedVersions": [*HANDSHAKE_VERSIONS, *MODERN_VERSIONS],
        "capabilities": {"tools": {"listChanged": False}},
        "ttlMs": 0,
        "cacheScope": "private",
    }
    if server.instructions is not None:
        result["instructions"] = server.instructions
    return stamped(result, server)


def list_result(tool: ToolSpec, version: str, params: dict[str, Any], server: ServerInfo) -> dict[str, Any]:
    return stamped({**list_tools_result(tool, version, params), "ttlMs": 0, "cacheScope": "private"}, server)
