"""JSON-RPC 2.0 and A2A error codes (checklist A-02, A-03) and their wire form in each protocol version.

Pure: no I/O. Every refusal the channel makes is an `RpcError`; the transport renders it with `error_object`.
"""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOTIFICATION_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005
INVALID_AGENT_RESPONSE = -32006
EXTENDED_AGENT_CARD_NOT_CONFIGURED = -32007
EXTENSION_SUPPORT_REQUIRED = -32008
VERSION_NOT_SUPPORTED = -32009

REASONS: dict[int, str] = {
    PARSE_ERROR: "PARSE_ERROR",
    INVALID_REQUEST: "INVALID_REQUEST",
    METHOD_NOT_FOUND: "METHOD_NOT_FOUND",
    INVALID_PARAMS: "INVALID_PARAMS",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    TASK_NOT_FOUND: "TASK_NOT_FOUND",
    TASK_NOT_CANCELABLE: "TASK_NOT_CANCELABLE",
    PUSH_NOTIFICATION_NOT_SUPPORTED: "PUSH_NOTIFICATION_NOT_SUPPORTED",
    UNSUPPORTED_OPERATION: "UNSUPPORTED_OPERATION",
    CONTENT_TYPE_NOT_SUPPORTED: "CONTENT_TYPE_NOT_SUPPORTED",
    INVALID_AGENT_RESPONSE: "INVALID_AGENT_RESPONSE",
    EXTENDED_AGENT_CARD_NOT_CONFIGURED: "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
    EXTENSION_SUPPORT_REQUIRED: "EXTENSION_SUPPORT_REQUIRED",
    VERSION_NOT_SUPPORTED: "VERSION_NOT_SUPPORTED",
}
"""The `google.rpc.ErrorInfo` reason of each code (v1 `error.data`, A-03)."""

ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
ERROR_DOMAIN = "a2a-protocol.org"


class RpcError(Exception):
    """A JSON-RPC error answer. `http_status` is 200 for JSON-RPC level errors (the HTTP exchange worked) and the
    matching 4xx for transport-level ones (wrong HTTP method, content type, size, credentials).
    `request_id` is the id to answer with when the error is raised before the request's id is known to the caller.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        metadata: dict[str, str] | None = None,
        http_status: int = 200,
        request_id: str | int | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.metadata = code, message, metadata or {}
        self.http_status, self.request_id = http_status, request_id

    def error_object(self, version: str) -> dict[str, Any]:
        """The JSON-RPC `error` member: v1 carries a `google.rpc.ErrorInfo` list in `data`, v0.3 a plain object."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if version == "0.3":
            if self.metadata:
                error["data"] = dict(self.metadata)
            return error
        info = {"@type": ERROR_INFO_TYPE, "reason": REASONS.get(self.code, "UNKNOWN_ERROR"), "domain": ERROR_DOMAIN}
        error["data"] = [{**info, "metadata": dict(self.metadata)}]
        return error


def invalid_params(message: str, field: str | None = None) -> RpcError:
    return RpcError(INVALID_PARAMS, f"Invalid params: {message}", metadata={"field": field} if field else None)


def task_not_found(task_id: str) -> RpcError:
    return RpcError(TASK_NOT_FOUND, f"Task not found: {task_id!r}", metadata={"taskId": task_id})


def unsupported(message: str) -> RpcError:
    return RpcError(UNSUPPORTED_OPERATION, message)
