"""JSON-RPC 2.0 as MCP uses it: parse one message, render results, errors and notifications. No I/O.

MCP narrows JSON-RPC: one message per HTTP body (batches were removed in 2025-06-18), request ids are
strings or integers (never null), and `params` is an object when present.
"""

from __future__ import annotations

from typing import Any

import attrs
import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

RequestId = str | int


class RpcError(Exception):
    """A refusal to send back: the HTTP status it travels with and the JSON-RPC error object.

    `id` is the request's id when it was known (None renders as `null`, as JSON-RPC asks when the id could not
    be read).
    """

    def __init__(self, status: int, code: int, message: str, *, id: RequestId | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.id, self.data = status, code, message, id, data

    def for_request(self, id: RequestId) -> RpcError:
        """The same error, answered to request `id`."""
        return RpcError(self.status, self.code, self.message, id=id, data=self.data)

    def body(self) -> dict[str, Any]:
        return error_body(self.id, self.code, self.message, self.data)


@attrs.frozen
class Request:
    """A call that expects an answer."""

    id: RequestId
    method: str
    params: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class Notification:
    """A one-way message: no answer, no id."""

    method: str
    params: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class Answer:
    """A client's result or error for a request the server sent (this server sends none, so it is acknowledged)."""

    id: RequestId | None


Message = Request | Notification | Answer


def _is_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse_message(body: bytes | str) -> Message:
    """The one JSON-RPC message of a POST body; raises `RpcError` (HTTP 400) when it is not one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RpcError(400, PARSE_ERROR, f"Parse error: the body is not valid JSON ({exc})") from None
    return parse_value(value)


def parse_value(value: object) -> Message:
    """A decoded JSON value as a JSON-RPC message (see `parse_message`)."""
    if isinstance(value, list):
        raise RpcError(400, INVALID_REQUEST, "Invalid Request: batches are not supported; send one message per POST")
    if not isinstance(value, dict):
        raise RpcError(400, INVALID_REQUEST, "Invalid Request: a JSON-RPC message is a JSON object")
    raw_id = value.get("id")
    id = raw_id if _is_id(raw_id) else None
    if value.get("jsonrpc") != "2.0":
        raise RpcError(400, INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', id=id)
    if "method" not in value:
        if ("result" in value) != ("error" in value) and (id is not None or "error" in value):
            return Answer(id)
        raise RpcError(400, INVALID_REQUEST, 'Invalid Request: a message needs a "method" (or is a response)', id=id)
    method = value["method"]
    if not isinstance(method, str) or not method:
        raise RpcError(400, INVALID_REQUEST, 'Invalid Request: "method" must be a non-empty string', id=id)
    if "id" in value and id is None:
        raise RpcError(400, INVALID_REQUEST, 'Invalid Request: "id" must be a string or an integer', id=None)
    params = value.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(400, INVALID_PARAMS, 'Invalid params: "params" must be an object', id=id)
    return Notification(method, params) if id is None else Request(id, method, params)


def result_body(id: RequestId, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "result": result}


def error_body(id: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": id, "error": error}


def notification_body(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}
