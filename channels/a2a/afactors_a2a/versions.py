"""A2A-Version negotiation (A-16) and the method names of each protocol version (A2A 1.0 and v0.3, §3.1).

Pure. A missing or empty `A2A-Version` header means 0.3; patch numbers are ignored; any other Major.Minor than
1.0 or 0.3 is -32009. A method of the other version than the one negotiated is -32009 too (the reference server
answers a v1 method without the header that way); a method of neither is -32601.
"""

from __future__ import annotations

import re

from afactors_a2a.errors import METHOD_NOT_FOUND, VERSION_NOT_SUPPORTED, RpcError

V1 = "1.0"
V03 = "0.3"
SUPPORTED = (V1, V03)
HEADER = "A2A-Version"

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.\d+)?\s*$")

OPERATIONS: dict[str, dict[str, str]] = {
    V1: {
        "SendMessage": "send",
        "SendStreamingMessage": "stream",
        "GetTask": "get",
        "ListTasks": "list",
        "CancelTask": "cancel",
        "SubscribeToTask": "subscribe",
        "CreateTaskPushNotificationConfig": "push_set",
        "GetTaskPushNotificationConfig": "push_get",
        "ListTaskPushNotificationConfigs": "push_list",
        "DeleteTaskPushNotificationConfig": "push_delete",
        "GetExtendedAgentCard": "extended_card",
    },
    V03: {
        "message/send": "send",
        "message/stream": "stream",
        "tasks/get": "get",
        "tasks/cancel": "cancel",
        "tasks/resubscribe": "subscribe",
        "tasks/pushNotificationConfig/set": "push_set",
        "tasks/pushNotificationConfig/get": "push_get",
        "tasks/pushNotificationConfig/list": "push_list",
        "tasks/pushNotificationConfig/delete": "push_delete",
        "agent/getAuthenticatedExtendedCard": "extended_card",
    },
}
"""Method name -> the channel's operation, per version. v0.3 has no ListTasks over JSON-RPC."""

STREAMING = frozenset({"stream", "subscribe"})


def negotiate(header: str | None) -> str:
    """The protocol version a request asks for (its Major.Minor), or -32009."""
    if header is None or not header.strip():
        return V03
    match = _VERSION.match(header)
    version = f"{match[1]}.{match[2]}" if match else None
    if version not in SUPPORTED:
        raise RpcError(
            VERSION_NOT_SUPPORTED,
            f"A2A version {header.strip()!r} is not supported; send {HEADER}: {V1} (or omit it for {V03})",
            metadata={"supportedVersions": ", ".join(SUPPORTED)},
        )
    return version


def operation(method: str, version: str) -> str:
    """The operation `method` names under `version`: -32009 if it belongs to the other version, else -32601."""
    found = OPERATIONS[version].get(method)
    if found is not None:
        return found
    for other, table in OPERATIONS.items():
        if method in table:
            raise RpcError(
                VERSION_NOT_SUPPORTED,
                f"Method {method!r} belongs to A2A {other}, but the request was handled as A2A {version}"
                + (f" (send {HEADER}: {other})" if other == V1 else f" (omit {HEADER} or send {HEADER}: {other})"),
            )
    raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method!r}")
