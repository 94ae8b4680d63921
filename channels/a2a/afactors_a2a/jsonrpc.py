"""The JSON-RPC 2.0 envelope (A-02): parse a request body into a `Call`, build result and error responses.

Pure: no I/O. A2A uses single requests with by-name params; a batch (an array) is refused with -32600, as the
reference server does. A request without an `id` (a JSON-RPC notification) is answered with `"id": null`
(our choice, like the reference server: A2A defines no notifications and a silent server helps nobody).
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson

from afactors_a2a.errors import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, RpcError

RequestId = str | int | None


@attrs.frozen
class Call:
    """One JSON-RPC request: its id (echoed in the answer), method name and by-name params."""

    id: RequestId
    method: str
    params: dict[str, Any]


def _usable_id(value: object) -> bool:
    return value is None or (isinstance(value, str | int) and not isinstance(value, bool))


def parse_call(body: bytes) -> Call:
    """The call in a request body; raises `RpcError` (-32700, -32600, -32602) carrying the id when it is known."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RpcError(PARSE_ERROR, f"Parse error: the request body is not valid JSON ({exc})") from None
    if isinstance(data, list):
        raise RpcError(INVALID_REQUEST, "Invalid Request: batch requests are not supported; send one request object")
    if not isinstance(data, dict):
        raise RpcError(INVALID_REQUEST, f"Invalid Request: expected a JSON object, got {type(data).__name__}")
    request_id = data.get("id")
    if not _usable_id(request_id):
        raise RpcError(INVALID_REQUEST, "Invalid Request: 'id' must be a string, an integer or null")
    if data.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "Invalid Request: 'jsonrpc' must be exactly \"2.0\"", request_id=request_id)
    method = data.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, "Invalid Request: 'method' must be a non-empty string", request_id=request_id)
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(
            INVALID_PARAMS,
            "Invalid params: 'params' must be an object (A2A uses by-name parameters)",
            request_id=request_id,
        )
    return Call(request_id, method, params)


def result_response(request_id: RequestId, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_response(request_id: RequestId, error: RpcError, version: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.error_object(version)}
